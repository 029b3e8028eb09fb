"""GenDeg: μ/σ binning as edit_dataset.py, the conditioner's projections, and `jaxir gendeg generate`
with small random weights writing a paired folder that a restoration config trains on."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

transformers = pytest.importorskip("transformers")

from jaxir import io as jio  # noqa: E402
from jaxir.cli import main  # noqa: E402
from jaxir.diffusion.latent import autoencoder_kl as akl  # noqa: E402
from jaxir.diffusion.latent import clip_text, gendeg  # noqa: E402
from jaxir.models.ldm_unet import build_ldm_unet  # noqa: E402


def test_stats_binning_matches_numpy_digitize():
    s = gendeg.stats(0.35, 0.4)
    assert s.shape == (2, 129) and s.sum() == 2
    assert s[0].argmax() == 64  # 0.35 / (0.7 / 128) = 64 exactly -> bin 64 (right=False)
    assert s[1].argmax() == 127  # the top edge folds into the last regular bin
    assert gendeg.null_stats()[:, -1].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError):
        gendeg.stats(-0.1, 0.1)


def test_conditioner_keeps_text_and_adds_projected_stats():
    cond = gendeg.GenDegConditioner(context_length=5, dim=8)
    variables = gendeg.init_conditioner(cond, jax.random.key(0))
    text = jax.random.normal(jax.random.key(1), (2, 5, 8))
    st = jnp.asarray(np.stack([gendeg.stats(0.1, 0.2), gendeg.null_stats()]))
    out = cond.apply(variables, text, st)
    p = variables["params"]
    projected = jnp.swapaxes(st @ p["stats_proj"]["kernel"] + p["stats_proj"]["bias"], 1, 2)  # (2, 5, 2)
    want = text + projected @ p["cc_projection"]["kernel"][8:]
    np.testing.assert_allclose(np.asarray(out), np.asarray(want), atol=1e-5)


def _tiny_model(tmp_path):
    vocab = ["<|startoftext|>", "<|endoftext|>"] + [c + s for s in ("", "</w>") for c in "abcdefghijklmnopqrstuvwxyz"]
    (tmp_path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    tok = transformers.CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    keys = jax.random.split(jax.random.key(0), 4)
    kw = {"unet": dict(in_channels=8, out_channels=4, model_channels=32, num_res_blocks=1, attention_resolutions=(2,),
                       channel_mult=(1, 2), num_heads=2, context_dim=32),
          "vae": dict(block_out_channels=(32,), layers_per_block=1, norm_num_groups=8),
          "text_encoder": dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                               num_attention_heads=2, max_position_embeddings=77),
          "conditioner": dict(context_length=77, dim=32)}
    unet, vae = build_ldm_unet(**kw["unet"]), akl.AutoencoderKL(**kw["vae"])
    text, cond = clip_text.CLIPTextModel(**kw["text_encoder"]), gendeg.GenDegConditioner(**kw["conditioner"])
    model = gendeg.GenDegModel(
        unet, unet.init(keys[0], jnp.zeros((1, 8, 8, 8)), jnp.zeros((1,), jnp.int32), jnp.zeros((1, 77, 32))),
        vae, vae.init(keys[1], jnp.zeros((1, 8, 8, 3))), text, text.init(keys[2], jnp.zeros((1, 77), jnp.int32)),
        cond, gendeg.init_conditioner(cond, keys[3]), tok)
    gendeg.save(tmp_path / "gendeg", model, kw)
    return model


@pytest.mark.slow  # ~60 s CPU: compiles the guided DDIM loop and a short restoration training run
def test_generate_writes_pairs_a_restoration_config_trains_on(tmp_path):
    _tiny_model(tmp_path)
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(16, 16), (19, 26)]):
        jio.write_image(tmp_path / "clean" / f"im{i}.png", rng.uniform(size=(h, w, 3)))
    assert main(["gendeg", "generate", "--model", str(tmp_path / "gendeg"), "--clean", str(tmp_path / "clean"),
                 "--out", str(tmp_path / "gen"), "--degradation", "haze", "--mu", "0.2", "--sigma", "0.1",
                 "--steps", "2"]) == 0
    for stem, shape in (("im0", (16, 16, 3)), ("im1", (16, 24, 3))):
        degraded, clean = (jio.read_image(tmp_path / "gen" / d / f"{stem}.png") for d in ("input", "target"))
        assert degraded.shape == clean.shape == shape
        assert np.abs(degraded - clean).mean() > 1e-3  # random weights: a different image, not a copy
    assert json.loads((tmp_path / "gen" / "gendeg.json").read_text())["images"] == ["im0", "im1"]

    from train_helpers import tiny_config

    from jaxir.train.loop import train
    config = tiny_config(num_steps=2, with_eval=False)
    config.data.train = {"source": "paired_folder",
                         "kwargs": {"input_dir": str(tmp_path / "gen" / "input"),
                                    "target_dir": str(tmp_path / "gen" / "target")}}
    config.data.degradation = []
    config.data.crop_size = 8
    metrics = train(config, tmp_path / "run")
    assert metrics["step"] == 2 and np.isfinite(metrics["train_loss"])
