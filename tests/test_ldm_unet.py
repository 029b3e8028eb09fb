"""LDM U-Net (spatial transformers): remat and bfloat16 keep the function, the context is attended to.

Numerical parity with GenDeg's official UNetModel and the 859,532,484-parameter paper count are
tests/test_parity.py (gendeg_unet).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxir import registry

SMALL = dict(in_channels=8, out_channels=4, model_channels=32, num_res_blocks=1, attention_resolutions=(2, 1),
             channel_mult=(1, 2), num_heads=4, context_dim=16)


def _inputs():
    keys = jax.random.split(jax.random.key(0), 2)
    return (jax.random.normal(keys[0], (2, 8, 8, 8)), jnp.array([3, 900], jnp.int32),
            jax.random.normal(keys[1], (2, 5, 16)))


@pytest.fixture(scope="module")
def small():
    model = registry.build_model("ldm_unet", **SMALL)
    variables = model.init(jax.random.key(1), *_inputs())
    # perturb so the zero-free random init makes every branch matter (as the golden files do)
    variables = jax.tree_util.tree_map(lambda v: v + 0.02, variables)
    return model, variables


@pytest.mark.slow  # ~2 min on 2 cores
def test_remat_keeps_outputs_and_gradients(small):
    model, variables = small
    remat = registry.build_model("ldm_unet", remat=True, **SMALL)
    x, t, c = _inputs()

    def loss(m):
        return lambda v: jnp.mean(m.apply(v, x, t, c) ** 2)

    a, ga = jax.value_and_grad(loss(model))(variables)
    b, gb = jax.value_and_grad(loss(remat))(variables)
    np.testing.assert_allclose(float(a), float(b), rtol=1e-5)
    for u, w in zip(jax.tree_util.tree_leaves(ga), jax.tree_util.tree_leaves(gb)):
        np.testing.assert_allclose(np.asarray(u), np.asarray(w), atol=1e-5, rtol=1e-4)


def test_cross_attention_reads_the_context(small):
    model, variables = small
    x, t, c = _inputs()
    a = model.apply(variables, x, t, c)
    b = model.apply(variables, x, t, c.at[0].multiply(-1.0))
    assert float(jnp.abs(a[0] - b[0]).max()) > 1e-4
    np.testing.assert_allclose(np.asarray(a[1]), np.asarray(b[1]), atol=1e-6)
    # any context length; a wrong width is refused
    assert model.apply(variables, x, t, c[:, :2]).shape == (2, 8, 8, 4)
    with pytest.raises(ValueError, match="context"):
        model.apply(variables, x, t, c[..., :8])


def test_bfloat16_compute_stays_close(small):
    model, variables = small
    low = registry.build_model("ldm_unet", dtype=jnp.bfloat16, **SMALL)
    x, t, c = _inputs()
    ref = np.asarray(model.apply(variables, x, t, c))
    got = np.asarray(low.apply(variables, x, t, c))
    assert got.dtype == np.float32 and np.isfinite(got).all()
    assert np.abs(got - ref).max() < 0.1 * np.abs(ref).max()


def test_official_kwargs_refuse_plain_attention():
    entry = registry.get_entry("ldm_unet")
    with pytest.raises(ValueError, match="spatial"):
        entry.translate_kwargs({"in_channels": 4, "use_spatial_transformer": False})
