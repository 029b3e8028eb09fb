"""ADM / consistency-model U-Net: blocks against closed forms, official .pt conversion, class labels.

Numerical parity of the whole network is tests/test_parity.py (guided_unet, cm_unet).
"""
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxir import registry
from jaxir.cli import main
from jaxir.io import load_weights
from jaxir.models.unet_blocks import GroupNorm32, timestep_embedding
from jaxir.parity import golden_inputs, golden_state_dict, load_golden, nhwc_to_nchw


def test_timestep_embedding_formula():
    t = np.array([0.0, 3.5, -700.0], np.float32)
    got = np.asarray(timestep_embedding(jnp.asarray(t), 7))
    half = 3
    freqs = np.exp(-math.log(10000.0) * np.arange(half) / half)
    want = np.concatenate([np.cos(t[:, None] * freqs), np.sin(t[:, None] * freqs), np.zeros((3, 1))], axis=1)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_group_norm_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(3.0, 2.0, (2, 5, 4, 64)).astype(np.float32)
    module = GroupNorm32()
    scale, bias = np.linspace(0.5, 2, 64, dtype=np.float32), np.linspace(-1, 1, 64, dtype=np.float32)
    got = module.apply({"params": {"scale": scale, "bias": bias}}, jnp.asarray(x))
    norm = torch.nn.GroupNorm(32, 64)
    norm.weight.data, norm.bias.data = torch.from_numpy(scale), torch.from_numpy(bias)
    want = norm(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).detach().numpy()
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)


def test_official_pt_converts_through_the_cli(golden_dir, tmp_path):
    """A plain state dict saved by torch (as the released .pt files) -> `jaxir convert` -> the official output."""
    torch = pytest.importorskip("torch")
    meta, arrays = load_golden(golden_dir / "guided_unet.npz")
    torch.save({k: torch.from_numpy(np.array(v)) for k, v in golden_state_dict(arrays).items()}, tmp_path / "m.pt")
    kwargs = registry.get_entry("adm_unet").translate_kwargs(meta["kwargs"])
    out = tmp_path / "m.msgpack"
    assert main(["convert", str(tmp_path / "m.pt"), str(out), "--model", "adm_unet",
                 "--model-kwargs", json.dumps(kwargs)]) == 0
    name, saved_kwargs, variables = load_weights(out)
    model = registry.build_model(name, **saved_kwargs)
    x, t = golden_inputs(meta, arrays)
    got = nhwc_to_nchw(np.asarray(model.apply(variables, x, t)))
    np.testing.assert_allclose(got, arrays["output_0"], atol=1e-4, rtol=1e-4)


def test_class_labels_change_the_output_and_are_required():
    model = registry.build_model("cm_unet", in_channels=3, model_channels=32, out_channels=3, num_res_blocks=1,
                                 attention_resolutions=(2,), channel_mult=(1, 2), num_classes=5,
                                 num_head_channels=16, use_scale_shift_norm=True, resblock_updown=True)
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    t = jnp.array([1.0, -20.0])
    variables = model.init(jax.random.key(1), x, t, jnp.array([0, 1]))
    # The final conv is zero-initialised in the official code but random here; perturb it so the output depends on y.
    variables = jax.tree_util.tree_map(lambda v: v + 0.05, variables)
    a = model.apply(variables, x, t, jnp.array([0, 1]))
    b = model.apply(variables, x, t, jnp.array([3, 1]))
    assert float(jnp.abs(a[0] - b[0]).max()) > 1e-4
    np.testing.assert_allclose(np.asarray(a[1]), np.asarray(b[1]), atol=1e-6)
    with pytest.raises(ValueError, match="class-conditional"):
        model.apply(variables, x, t)
