"""GenDeg: μ/σ binning as edit_dataset.py, the conditioner's projections, and `jaxir gendeg generate`
with small random weights writing a paired folder that a restoration config trains on."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

transformers = pytest.importorskip("transformers")

from jaxir import io as jio  # noqa: E402
from jaxir import registry  # noqa: E402
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


def _diffusers_to_compvis(sd, levels):
    """Test-side inverse naming (checked against diffusers' own single-file converter below)."""
    import re
    out = {}
    for key, value in sd.items():
        k = key.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
        k = re.sub(r"down_blocks\.(\d+)\.resnets\.(\d+)", r"down.\1.block.\2", k)
        k = re.sub(r"down_blocks\.(\d+)\.downsamplers\.0", r"down.\1.downsample", k)
        k = k.replace("mid_block.resnets.0", "mid.block_1").replace("mid_block.resnets.1", "mid.block_2")
        k = k.replace("mid_block.attentions.0.group_norm", "mid.attn_1.norm")
        k = re.sub(r"mid_block\.attentions\.0\.to_(q|k|v)\.", r"mid.attn_1.\1.", k)
        k = k.replace("mid_block.attentions.0.to_out.0", "mid.attn_1.proj_out")
        m = re.match(r"decoder\.up_blocks\.(\d+)\.(resnets\.(\d+)|upsamplers\.0)\.(.*)", k)
        if m:
            b = levels - 1 - int(m.group(1))
            inner = f"block.{m.group(3)}" if m.group(3) is not None else "upsample"
            k = f"decoder.up.{b}.{inner}.{m.group(4)}"
        if "mid.attn_1." in k and k.endswith("weight") and value.ndim == 2 and ".norm." not in k:
            value = value[:, :, None, None]
        out[k] = value
    return out


def test_compvis_vae_names_convert_as_diffusers_does():
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
    types = 3
    ref = diffusers.AutoencoderKL(block_out_channels=(8, 16, 16), down_block_types=("DownEncoderBlock2D",) * types,
                                  up_block_types=("UpDecoderBlock2D",) * types, layers_per_block=1, norm_num_groups=4)
    d = {k: v.numpy() for k, v in ref.state_dict().items()}
    compvis = _diffusers_to_compvis(d, types)
    theirs = convert_ldm_vae_checkpoint({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in compvis.items()},
                                        dict(ref.config))
    assert sorted(theirs) == sorted(d)  # the test's CompVis naming is the real one
    ours = akl.compvis_to_diffusers({**compvis, "loss.logvar": np.zeros(())}, types)
    assert sorted(ours) == sorted(d)
    for k in d:
        np.testing.assert_array_equal(ours[k], d[k])


def test_official_checkpoint_layout_converts(golden_dir, tmp_path):
    """A LatentDiffusion-style state dict (golden U-Net, the tiny VAE/CLIP/conditioner under official names,
    an EMA entry) splits and converts: the U-Net reproduces the official output, the rest round-trips."""
    import re

    from flax import traverse_util

    from jaxir.parity import golden_inputs, golden_state_dict, load_golden, nhwc_to_nchw
    meta, arrays = load_golden(golden_dir / "gendeg_unet.npz")
    model = _tiny_model(tmp_path)
    ckpt = {f"model.diffusion_model.{k}": v for k, v in golden_state_dict(arrays).items()}
    # the tiny model's VAE and CLIP weights written under the official (CompVis / transformers) names
    vae_sd = {}
    for path, leaf in traverse_util.flatten_dict(model.vae_vars["params"]).items():
        name, kind = ".".join(path[:-1]), path[-1]
        leaf = np.asarray(leaf)
        if kind == "kernel":
            leaf = leaf.transpose(3, 2, 0, 1) if leaf.ndim == 4 else leaf.T
        vae_sd[f"{name}.{'weight' if kind in ('kernel', 'scale') else 'bias'}"] = leaf
    vae_sd = {re.sub(r"_(\d+)(?=\.|$)", r".\1", k): v for k, v in vae_sd.items()}
    ckpt.update({f"first_stage_model.{k}": v for k, v in _diffusers_to_compvis(vae_sd, 1).items()})
    for path, leaf in traverse_util.flatten_dict(model.text_vars["params"]).items():
        name = re.sub(r"_(\d+)$", r".\1", ".".join(path[:-1]).replace("layers_", "layers."))
        leaf = np.asarray(leaf)
        key = {"kernel": "weight", "scale": "weight", "embedding": "weight", "bias": "bias"}[path[-1]]
        ckpt[f"cond_stage_model.transformer.{name}.{key}"] = leaf.T if path[-1] == "kernel" else leaf
    for name in ("stats_proj", "cc_projection"):
        p = model.conditioner_vars["params"][name]
        ckpt[f"{name}.weight"], ckpt[f"{name}.bias"] = np.asarray(p["kernel"]).T, np.asarray(p["bias"])
    ckpt["model_ema.decay"] = np.float32(0.999)
    kwargs = {"unet": registry.get_entry("ldm_unet").translate_kwargs(meta["kwargs"]),
              "vae": dict(block_out_channels=(32,), layers_per_block=1, norm_num_groups=8),
              "text_encoder": dict(vocab_size=model.text.vocab_size, hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=77),
              "conditioner": dict(context_length=77, dim=32)}
    # through a .safetensors file and `jaxir gendeg convert`, as a user converts the released checkpoint
    from safetensors.numpy import save_file
    save_file({k: np.ascontiguousarray(v) for k, v in ckpt.items()}, str(tmp_path / "gendeg.safetensors"))
    (tmp_path / "kwargs.json").write_text(json.dumps(kwargs))
    assert main(["gendeg", "convert", str(tmp_path / "gendeg.safetensors"), "--tokenizer",
                 str(tmp_path / "gendeg" / "tokenizer"), "--out", str(tmp_path / "converted"),
                 "--kwargs", str(tmp_path / "kwargs.json")]) == 0
    converted = gendeg.load(tmp_path / "converted")
    x, t, c = golden_inputs(meta, arrays)
    got = nhwc_to_nchw(np.asarray(converted.unet.apply(converted.unet_vars, x, t, c)))
    np.testing.assert_allclose(got, arrays["output_0"], atol=1e-4, rtol=1e-4)
    for a, b in ((converted.vae_vars, model.vae_vars), (converted.text_vars, model.text_vars),
                 (converted.conditioner_vars, model.conditioner_vars)):
        for u, w in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
            np.testing.assert_allclose(np.asarray(u), np.asarray(w), atol=0)
