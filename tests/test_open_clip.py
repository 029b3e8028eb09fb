"""open_clip's CLIP (ViT image tower + text tower) against open_clip_torch 3.3.0 with random, perturbed
weights on a small config; ViT-B/32's parameter count against open_clip's; the preprocessing against
torch's antialiased bicubic resize; the VLU-Net degradation descriptions' token ids against open_clip's
tokenizer."""
import importlib
import importlib.util
import pathlib
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
if importlib.util.find_spec("open_clip") is None:
    pytest.skip("open_clip_torch is not installed (the `torch` extra)", allow_module_level=True)

from jaxir.models import clip  # noqa: E402
from jaxir.parity import count_params  # noqa: E402


def _open_clip_module(name):
    """open_clip's `name` submodule. open_clip's package __init__ imports torchvision (transforms), whose
    PyPI wheels need a CUDA build of torch; where it cannot load (the CPU torch pinned here) the model code,
    which needs torchvision only for a FrozenBatchNorm2d import in utils.py, is loaded without the __init__."""
    try:
        return importlib.import_module(f"open_clip.{name}")
    except (ImportError, RuntimeError):
        pass
    for key in [k for k in sys.modules if k == "open_clip" or k.startswith("open_clip.")]:
        del sys.modules[key]
    root = pathlib.Path(importlib.util.find_spec("open_clip").origin).parent
    package = types.ModuleType("open_clip")
    package.__path__ = [str(root)]
    sys.modules["open_clip"] = package
    stand_in = {n: types.ModuleType(n) for n in ("torchvision", "torchvision.ops", "torchvision.ops.misc")}
    stand_in["torchvision.ops.misc"].FrozenBatchNorm2d = type("FrozenBatchNorm2d", (torch.nn.Module,), {})
    saved = {n: sys.modules.get(n) for n in stand_in}
    sys.modules.update(stand_in)
    try:
        importlib.import_module("open_clip.utils")
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m
    return importlib.import_module(f"open_clip.{name}")


SMALL = dict(embed_dim=16, vision_cfg=dict(image_size=32, layers=2, width=32, patch_size=8, head_width=16),
             text_cfg=dict(context_length=12, vocab_size=60, width=24, heads=2, layers=2))


@pytest.fixture(scope="module")
def small_pair():
    model_lib = _open_clip_module("model")
    torch.manual_seed(0)
    ref = model_lib.CLIP(**SMALL).eval()
    rng = np.random.default_rng(0)
    sd = {k: v.detach().numpy() + 0.05 * rng.normal(size=v.shape).astype(np.float32)
          for k, v in ref.state_dict().items()}
    ref.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in sd.items()}, strict=False)
    model = clip.OpenCLIP(**clip.open_clip_kwargs(SMALL))
    return ref, sd, model


def test_open_clip_towers_match(small_pair):
    ref, sd, model = small_pair
    rng = np.random.default_rng(1)
    image = rng.normal(size=(2, 3, 32, 32)).astype(np.float32)
    ids = np.zeros((2, 12), np.int64)
    ids[0, :5] = [3, 17, 40, 8, 59]  # the end-of-text token is the highest id
    ids[1, :8] = [5, 9, 11, 2, 33, 21, 7, 59]
    with torch.no_grad():
        want_image = ref.encode_image(torch.from_numpy(image)).numpy()
        want_text = ref.encode_text(torch.from_numpy(ids)).numpy()
    variables = clip.convert_open_clip(sd, model, image_size=32)
    got_image, got_text = model.apply(variables, jnp.asarray(image.transpose(0, 2, 3, 1)), jnp.asarray(ids))
    np.testing.assert_allclose(np.asarray(got_image), want_image, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(got_text), want_text, atol=1e-4, rtol=1e-4)
    # the text tower is causal: tokens after the end-of-text one change nothing
    ids2 = ids.copy()
    ids2[0, 6:] = 4
    _, text2 = model.apply(variables, jnp.asarray(image.transpose(0, 2, 3, 1)), jnp.asarray(ids2))
    np.testing.assert_allclose(np.asarray(text2)[0], np.asarray(got_text)[0], atol=1e-5)
    assert count_params(model, jnp.zeros((1, 32, 32, 3)), jnp.zeros((1, 12), jnp.int32)) == sum(
        v.size for v in sd.values())


def test_vit_b32_counts_open_clip():
    model_lib = _open_clip_module("model")
    config = {"embed_dim": 512, "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}}
    with torch.device("meta"):
        ref = model_lib.CLIP(**config)
    want = sum(p.numel() for p in ref.parameters())
    model = clip.OpenCLIP()
    assert clip.open_clip_kwargs(config) == {f.name: getattr(model, f.name) for f in
                                             [clip.OpenCLIP.__dataclass_fields__[k] for k in
                                              clip.open_clip_kwargs(config)]}
    got = count_params(model, jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32),
                       jax.ShapeDtypeStruct((1, 77), jnp.int32))
    assert got == want == 151_277_313
    visual = count_params(clip.OpenCLIPVisual(), jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32))
    assert visual == sum(p.numel() for p in ref.visual.parameters()) == 87_849_216


def test_preprocess_matches_torch_antialiased_bicubic():
    import torch.nn.functional as F

    rng = np.random.default_rng(2)
    image = rng.uniform(size=(1, 20, 28, 3)).astype(np.float32)
    got = np.asarray(clip.preprocess(jnp.asarray(image), size=32))
    # torchvision Resize(32, BICUBIC, antialias=True) on a tensor, then CenterCrop(32) and Normalize
    t = torch.from_numpy(image.transpose(0, 3, 1, 2))
    resized = F.interpolate(t, size=(32, 44), mode="bicubic", align_corners=False, antialias=True)
    left = (44 - 32) // 2  # torchvision: int(32 * 28 / 20)
    want = resized[..., left:left + 32].numpy().transpose(0, 2, 3, 1)
    want = (want - np.asarray(clip.OPENAI_MEAN)) / np.asarray(clip.OPENAI_STD)
    assert got.shape == (1, 32, 32, 3)
    np.testing.assert_allclose(got, want, atol=2e-4)
