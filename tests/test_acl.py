"""ACL: the properties its paper relies on — linear attention equals the quadratic form it replaces, its causal
form is a (decay-free) selective scan, its cost grows linearly in the pixels — and the network runs."""
import jax
import jax.numpy as jnp
import numpy as np

from jaxir import registry
from jaxir.models.acl import causal_linear_attention, feature_map, linear_attention
from jaxir.ops.scan import selective_scan


def qkv(seed=0, n=24, d=4, e=5):
    keys = jax.random.split(jax.random.key(seed), 3)
    q, k = (feature_map(jax.random.normal(key, (2, n, d))) for key in keys[:2])
    return q, k, jax.random.normal(keys[2], (2, n, e))


def naive(q, k, v, causal=False):
    scores = np.einsum("bnd,bmd->bnm", np.asarray(q, np.float64), np.asarray(k, np.float64))
    if causal:
        scores = scores * np.tril(np.ones(scores.shape[1:]))
    return np.einsum("bnm,bme->bne", scores, np.asarray(v, np.float64)) / scores.sum(-1, keepdims=True)


def test_linear_attention_equals_the_quadratic_form():
    q, k, v = qkv()
    np.testing.assert_allclose(linear_attention(q, k, v), naive(q, k, v), rtol=1e-5, atol=1e-5)


def test_causal_linear_attention_equals_masked_quadratic_and_a_scan():
    q, k, v = qkv(1)
    out = causal_linear_attention(q, k, v)
    np.testing.assert_allclose(out, naive(q, k, v, causal=True), rtol=1e-5, atol=1e-5)
    # S_t = S_{t-1} + k_t v_t^T, o_t = q_t S_t: Mamba's scan with A = 0, Δ = 1, B = k, C = q, u = v.
    b, n, d = q.shape
    e = v.shape[-1]
    ones = jnp.ones((b, e, n))
    zero_a = jnp.zeros((e, d))
    num = selective_scan(v.swapaxes(1, 2), ones, zero_a, k.swapaxes(1, 2), q.swapaxes(1, 2), method="chunked",
                         chunk_size=5)
    den = selective_scan(jnp.ones((b, 1, n)), jnp.ones((b, 1, n)), jnp.zeros((1, d)), k.swapaxes(1, 2),
                         q.swapaxes(1, 2))
    np.testing.assert_allclose((num / den).swapaxes(1, 2), out, rtol=1e-5, atol=1e-5)


def test_cost_grows_linearly_with_pixels():
    def flops(fn, n):
        q, k, v = (jax.ShapeDtypeStruct((1, n, 16), jnp.float32),) * 3
        return jax.jit(fn).lower(q, k, v).compile().cost_analysis()["flops"]

    quadratic = lambda q, k, v: jax.nn.softmax(q @ k.swapaxes(-1, -2), -1) @ v
    linear_ratio = flops(linear_attention, 4096) / flops(linear_attention, 1024)
    quadratic_ratio = flops(quadratic, 4096) / flops(quadratic, 1024)
    assert 3.5 < linear_ratio < 4.5
    assert quadratic_ratio > 12


def test_network_forward():
    model = registry.build_model("acl", dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 1, 2, 2))
    x = jax.random.uniform(jax.random.key(0), (1, 16, 24, 3))
    variables = jax.jit(model.init)(jax.random.key(1), x)
    out = jax.jit(model.apply)(variables, x)
    assert out.shape == x.shape and np.isfinite(np.asarray(out)).all()
    assert float(jnp.abs(out - x).max()) > 0  # the blocks contribute (training: tests/test_models_train.py)
    assert variables["params"]["encoder_level1_0"]["lem"]["dilated_2"]["kernel"].shape == (3, 3, 1, 16)
