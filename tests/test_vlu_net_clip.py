"""VLU-Net with its CLIP degradation extractor (`vlu_net_clip`, method 'vlu').

- An official-layout LightningModule state dict (the golden VLUNet as `net.*`, a small open_clip CLIP with
  embed_dim 512 and the adapters of net/clip.py as `model_degradation.*`, text side included) converts by
  the registry's hooks, and the model restores as VLUNet fed the vector torch computes (open_clip's
  encode_image, then the adapter, on the resized, normalised input).
- The method loads the extractor from an open_clip file + clip_tuned.pth-style adapter file and keeps it
  frozen; a tiny model trains through the loop on the bundled all-in-one mixture; `jaxir eval
  --benchmark allinone3` and `jaxir restore` run it with one input.
- The adapter fine-tuning (method 'vlu_align'): the descriptions' tokens are open_clip's, both towers load
  from an open_clip file, only the adapters learn, through the loop on the mixture with the task labels.
"""
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_allinone_train import small_config  # noqa: F401 (also registers the bundled_aio3 source)

from jaxir import registry
from jaxir.convert.state_dict import convert_state_dict
from jaxir.methods import build_method
from jaxir.models.vlu_net import DegradationExtractor
from jaxir.parity import golden_inputs, golden_state_dict, load_golden

TINY_CLIP = dict(clip_image_size=32, clip_patch_size=16, clip_width=32, clip_layers=1, clip_heads=2)
TINY = dict(de_dim=3, dim=16, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 2, 2, 4], **TINY_CLIP)
CLIP_CONFIG = dict(embed_dim=512, vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=16, head_width=16),
                   text_cfg=dict(context_length=8, vocab_size=40, width=16, heads=2, layers=1))


def _torch_side(seed=0):
    """(open_clip CLIP, image adapter, text adapter) in torch with random weights, and their numpy state dicts."""
    torch = pytest.importorskip("torch")
    from test_open_clip import _open_clip_module

    model_lib = _open_clip_module("model")
    torch.manual_seed(seed)
    clip = model_lib.CLIP(**CLIP_CONFIG).eval()

    def adapter():  # net/clip.py's adapter
        nn = torch.nn
        return nn.Sequential(nn.Linear(512, 512), nn.LayerNorm(512), nn.GELU(), nn.Linear(512, 512),
                             nn.LayerNorm(512), nn.GELU(), nn.Linear(512, 512), nn.LayerNorm(512)).eval()

    rng = np.random.default_rng(seed)
    modules = (clip, adapter(), adapter())
    for m in modules:  # perturb every tensor (LayerNorm weights, biases) so a wrong mapping shows
        sd = {k: torch.from_numpy(np.asarray(v.detach().numpy() + 0.05 * rng.normal(size=v.shape), np.float32))
              for k, v in m.state_dict().items()}
        m.load_state_dict(sd)
    return modules


def _numpy(module):
    return {k: v.detach().numpy() for k, v in module.state_dict().items()}


def _torch_vector(clip, adapter, image_nhwc, size=32):
    import torch
    import torch.nn.functional as F

    from jaxir.models.clip import OPENAI_MEAN, OPENAI_STD

    t = torch.from_numpy(np.asarray(image_nhwc).transpose(0, 3, 1, 2))
    h, w = t.shape[-2:]
    nh, nw = (size, int(size * w / h)) if h <= w else (int(size * h / w), size)
    t = F.interpolate(t, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
    top, left = (nh - size) // 2, (nw - size) // 2
    t = t[..., top:top + size, left:left + size]
    t = (t - torch.tensor(OPENAI_MEAN)[:, None, None]) / torch.tensor(OPENAI_STD)[:, None, None]
    with torch.no_grad():
        return adapter(clip.encode_image(t)).numpy()


@pytest.fixture(scope="module")
def torch_side():
    return _torch_side()


# About 4 CPU-minutes on a loaded machine (the golden-width VLUNet runs twice, unjitted).
@pytest.mark.slow
def test_lightning_checkpoint_converts_and_matches_torch_extractor(golden_dir, torch_side):
    clip, image_adapter, text_adapter = torch_side
    meta, arrays = load_golden(golden_dir / "vlu_net.npz")
    image = golden_inputs(meta, arrays)[0]
    state = {f"net.{k}": v for k, v in golden_state_dict(arrays).items()}
    for side, adapter in (("ad_imageEncoder", image_adapter), ("ad_textEncoder", text_adapter)):
        state.update({f"model_degradation.{side}.clip_model.{k}": v for k, v in _numpy(clip).items()})
        state.update({f"model_degradation.{side}.adapter.{k}": v for k, v in _numpy(adapter).items()})

    kwargs = {**meta["kwargs"], **TINY_CLIP}
    entry = registry.get_entry("vlu_net_clip")
    model = entry.builder(**kwargs)
    variables = convert_state_dict(state, model, jnp.asarray(image), hooks=entry.convert_hooks)

    vector = _torch_vector(clip, image_adapter, image)
    net = registry.build_model("vlu_net", **{k: v for k, v in kwargs.items() if not k.startswith("clip_")})
    want = net.apply({"params": variables["params"]["net"]}, jnp.asarray(image), jnp.asarray(vector))
    got = model.apply(variables, jnp.asarray(image))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)
    # the restoration is weakly sensitive to the vector, so the vector itself is held against torch's
    extractor = DegradationExtractor(**{k[5:] if k.startswith("clip_") else k: v for k, v in TINY_CLIP.items()})
    got_vector = extractor.apply({"params": variables["params"]["model_degradation"]}, jnp.asarray(image))
    np.testing.assert_allclose(np.asarray(got_vector), vector, atol=2e-4)


def test_method_loads_the_extractor_files_and_freezes_it(tmp_path, torch_side):
    import torch

    clip, image_adapter, text_adapter = torch_side
    torch.save(clip.state_dict(), tmp_path / "open_clip_pytorch_model.bin")
    learnable = {f"ad_imageEncoder.adapter.{k}": v for k, v in image_adapter.state_dict().items()}
    learnable.update({f"ad_textEncoder.adapter.{k}": v for k, v in text_adapter.state_dict().items()})
    torch.save({"epoch": 0, "learnable_params": learnable}, tmp_path / "clip_tuned.pth")

    method = build_method({"name": "vlu", "kwargs": {"clip": str(tmp_path / "open_clip_pytorch_model.bin"),
                                                     "adapter": str(tmp_path / "clip_tuned.pth")}})
    method.wrap_model(registry.build_model("vlu_net_clip", **TINY), registry.get_entry("vlu_net_clip"))
    x = jax.random.uniform(jax.random.key(0), (2, 24, 40, 3))
    extractor = DegradationExtractor(**{k[5:] if k.startswith("clip_") else k: v for k, v in TINY_CLIP.items()})
    # prepare touches the extractor only: a stand-in for the network's parameters keeps the test light
    params = {"net": {"output": {"kernel": jnp.ones((3, 3, 16, 3))}},
              "model_degradation": extractor.init(jax.random.key(1), x)["params"]}
    prepared = jax.jit(method.prepare)(params)
    np.testing.assert_array_equal(prepared["net"]["output"]["kernel"], params["net"]["output"]["kernel"])
    # the extractor now computes torch's vector
    vector = extractor.apply({"params": prepared["model_degradation"]}, x)
    np.testing.assert_allclose(np.asarray(vector), _torch_vector(clip, image_adapter, np.asarray(x)), atol=2e-4)
    trainable = method.trainable(prepared)
    assert not any(jax.tree.leaves(trainable["model_degradation"])) and all(jax.tree.leaves(trainable["net"]))
    with pytest.raises(ValueError, match="both"):
        build_method({"name": "vlu", "kwargs": {"clip": "a.bin"}})
    with pytest.raises(ValueError, match="vlu_net_clip"):
        build_method({"name": "vlu"}).wrap_model(registry.build_model("nafnet"), registry.get_entry("nafnet"))


# Compiling VLU-Net + CLIP's train step took > 40 min on the loaded 2-core machine: run by hand.
@pytest.mark.heavy
def test_trains_on_the_mixture_with_the_extractor_frozen(tmp_path):
    from jaxir.train.loop import build_model, load_inference_variables, train

    config = small_config("experiments/vlu_net_aio3.py", dict(TINY), "aio3")
    assert config.method.name == "vlu" and config.model.name == "vlu_net_clip"
    metrics = train(config, tmp_path)
    assert metrics["rejected_steps"] == 0 and math.isfinite(metrics["train_loss"])
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("loss/l1" in row for row in logged)
    trained = load_inference_variables(config, tmp_path)["params"]
    model, _ = build_model(config)
    # the loop's initialisation (jaxir.train.state.make_init_fn): the extractor still holds it, the net moved
    params_key, dropout_key, _ = jax.random.split(jax.random.key(config.train.seed), 3)
    fresh = jax.jit(lambda: model.init({"params": params_key, "dropout": dropout_key},
                                       jnp.zeros((1, 16, 16, 3)), train=False))()["params"]
    assert jax.tree.structure(fresh) == jax.tree.structure(trained)
    for a, b in zip(jax.tree.leaves(fresh["model_degradation"]), jax.tree.leaves(trained["model_degradation"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    moved = [not np.array_equal(np.asarray(a), np.asarray(b))
             for a, b in zip(jax.tree.leaves(fresh["net"]), jax.tree.leaves(trained["net"]))]
    assert sum(moved) > len(moved) // 2


# About 4 CPU-minutes on a loaded machine (the network compiles for every image size of the fixture).
@pytest.mark.slow
def test_eval_benchmark_and_restore_run_with_one_input(tmp_path, monkeypatch, capsys):
    from test_evaluation import _random_variables, _write_allinone

    from jaxir import evaluation
    from jaxir.cli import main
    from jaxir.inference import load_restorer
    from jaxir.io import save_weights

    monkeypatch.setenv(evaluation.CACHE_ENV, str(tmp_path / "cache"))
    _write_allinone(tmp_path / "data", np.random.default_rng(3))
    model = registry.build_model("vlu_net_clip", **TINY)
    weights = tmp_path / "vlu.msgpack"
    save_weights(weights, "vlu_net_clip", TINY, _random_variables(model, (1, 32, 32, 3)))
    out = tmp_path / "out"
    code = main(["eval", "--config", "experiments/vlu_net_aio3.py", "--checkpoint", str(weights),
                 "--benchmark", "allinone3", "--data-dir", str(tmp_path / "data"), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    result = json.loads((out / "allinone3.json").read_text())
    assert result["model"]["name"] == "vlu_net_clip"
    assert [row["name"] for row in result["sets"]] == ["denoise_15", "denoise_25", "denoise_50", "derain", "dehaze"]
    assert all(math.isfinite(row["metrics"]["psnr"]) for row in result["sets"])

    restore = load_restorer(weights=str(weights))
    image = np.random.default_rng(0).uniform(size=(21, 30, 3)).astype(np.float32)
    restored = restore(image)
    assert restored.shape == image.shape and np.isfinite(restored).all()


def test_description_tokens_are_open_clips():
    from test_open_clip import _open_clip_module

    from jaxir.models.vlu_net import DESCRIPTION_TOKENS, DESCRIPTIONS, description_ids

    ids = _open_clip_module("tokenizer").SimpleTokenizer()(list(DESCRIPTIONS))  # open_clip.get_tokenizer('ViT-B-32')
    np.testing.assert_array_equal(description_ids(7), ids.numpy())
    assert [t[-1] for t in DESCRIPTION_TOKENS] == [49407] * 7


def test_align_method_loads_both_towers_and_trains_only_the_adapters(tmp_path, torch_side):
    import torch

    from jaxir.models.clip import preprocess
    from jaxir.models.vlu_net import _ImageTower, _TextTower

    clip = torch_side[0]
    torch.save(clip.state_dict(), tmp_path / "open_clip_pytorch_model.bin")
    text = dict(vocab_size=40, context_length=8, text_width=16, text_heads=2, text_layers=1)
    method = build_method({"name": "vlu_align", "kwargs": {"clip": str(tmp_path / "open_clip_pytorch_model.bin"),
                                                           "num_tasks": 5, **text}})
    aligner = method.wrap_model(registry.build_model("vlu_net_clip", **TINY), registry.get_entry("vlu_net_clip"))
    x = jax.random.uniform(jax.random.key(0), (2, 24, 40, 3))
    params = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                          jax.eval_shape(aligner.init, jax.random.key(1), x)["params"])
    prepared = jax.jit(method.prepare)(params)
    image = _ImageTower(16, 32, 1, 2).apply({"params": prepared["ad_imageEncoder"]["clip_model"]}, preprocess(x, 32))
    np.testing.assert_allclose(np.asarray(image), _torch_vector(clip, torch.nn.Identity(), np.asarray(x)), atol=2e-4)
    ids = np.array([[3, 17, 30, 39, 0, 0, 0, 0], [5, 9, 11, 2, 33, 21, 7, 39]])
    got = _TextTower(40, 8, 16, 2, 1).apply({"params": prepared["ad_textEncoder"]["clip_model"]}, jnp.asarray(ids))
    with torch.no_grad():
        want = clip.encode_text(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(np.asarray(got), want, atol=2e-4)
    assert not any(np.any(np.asarray(a)) for a in jax.tree.leaves(prepared["ad_imageEncoder"]["adapter_0"]))
    trainable = method.trainable(prepared)
    for side in ("ad_imageEncoder", "ad_textEncoder"):
        assert not any(jax.tree.leaves(trainable[side]["clip_model"]))
        assert all(jax.tree.leaves({k: v for k, v in trainable[side].items() if k != "clip_model"}))


# A few CPU-minutes (compiling the train step).
@pytest.mark.slow
def test_adapter_fine_tuning_trains_on_the_mixture(tmp_path):
    from jaxir.train.loop import build_model, load_inference_variables, train

    config = small_config("experiments/vlu_net_clip_align.py:aio3", dict(TINY), "aio3")
    assert config.method.name == "vlu_align" and config.loss.target == "task"
    config.method.kwargs.update({"text_width": 16, "text_heads": 2, "text_layers": 1})
    metrics = train(config, tmp_path)
    assert metrics["rejected_steps"] == 0 and math.isfinite(metrics["train_loss"])
    trained = load_inference_variables(config, tmp_path)["params"]
    model, _ = build_model(config)
    params_key, dropout_key, _ = jax.random.split(jax.random.key(config.train.seed), 3)
    fresh = jax.jit(lambda: model.init({"params": params_key, "dropout": dropout_key},
                                       jnp.zeros((1, 16, 16, 3)), train=False))()["params"]
    for side in ("ad_imageEncoder", "ad_textEncoder"):
        for a, b in zip(jax.tree.leaves(fresh[side]["clip_model"]), jax.tree.leaves(trained[side]["clip_model"])):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert not np.array_equal(np.asarray(fresh[side]["adapter_0"]["kernel"]),
                                  np.asarray(trained[side]["adapter_0"]["kernel"]))
    logits = model.apply({"params": trained}, jnp.full((2, 16, 16, 3), 0.5))
    assert logits.shape == (2, 5)
