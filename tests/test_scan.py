"""The selective scan: associative, chunked and sequential forms agree (values and gradients),
and match the pure-PyTorch sequential recurrence of mamba_ssm's selective_scan_ref."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxir.ops.scan import METHODS, selective_scan

jax.config.update("jax_default_matmul_precision", "highest")


def make_inputs(seed=0, batch=2, d=8, n=4, length=37, groups=2, layout="grouped"):
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)
    bc_shape = {"grouped": (batch, groups, n, length), "shared": (batch, n, length), "invariant": (d, n)}[layout]
    return dict(
        u=f(batch, d, length), delta=0.5 * f(batch, d, length),
        A=-np.exp(0.5 * f(d, n)).astype(np.float32), B=f(*bc_shape), C=f(*bc_shape),
        D=f(d), z=f(batch, d, length), delta_bias=0.3 * f(d),
    )


def positive_steps(x, flags):
    """Without softplus, Δ must stay positive (a decaying state) as Mamba's steps are."""
    if not flags["delta_softplus"]:
        x = dict(x, delta=np.abs(x["delta"]), delta_bias=np.abs(x["delta_bias"]))
    return x


CASES = [
    ("grouped", dict(delta_softplus=True), False),  # MaIR: 4 direction groups, no z
    ("shared", dict(delta_softplus=True), True),  # MambaIRv2 / Mamba: z gating
    ("invariant", dict(delta_softplus=False), True),  # an S4D-style time-invariant B, C
]


@pytest.mark.parametrize("layout,flags,use_z", CASES)
def test_three_forms_agree_with_gradients(layout, flags, use_z):
    x = make_inputs(layout=layout)
    x = positive_steps(x, flags)
    if not use_z:
        x.pop("z")

    def loss(method, args):
        out, last = selective_scan(**args, **flags, return_last_state=True, method=method, chunk_size=8)
        weights = jnp.cos(jnp.arange(out.size, dtype=jnp.float32)).reshape(out.shape)
        return jnp.sum(out * weights) + jnp.sum(last ** 2), (out, last)

    results = {m: jax.value_and_grad(lambda a: loss(m, a), has_aux=True)(x) for m in METHODS}
    (_, (ref_out, ref_last)), ref_grads = results["sequential"]
    assert ref_out.shape == x["u"].shape and ref_last.shape == (2, 8, 4)
    assert np.abs(np.asarray(ref_out)).max() > 1e-2
    for method in ("associative", "chunked"):
        (_, (out, last)), grads = results[method]
        np.testing.assert_allclose(out, ref_out, atol=1e-5, rtol=1e-5, err_msg=method)
        np.testing.assert_allclose(last, ref_last, atol=1e-5, rtol=1e-5, err_msg=method)
        for key in x:
            np.testing.assert_allclose(grads[key], ref_grads[key], atol=1e-5, rtol=1e-4, err_msg=f"{method} d/d{key}")


@pytest.mark.parametrize("chunk", [1, 5, 37, 100])
def test_chunked_any_chunk_length(chunk):
    x = make_inputs(length=37)
    ref = selective_scan(**x, delta_softplus=True, method="sequential")
    out = selective_scan(**x, delta_softplus=True, method="chunked", chunk_size=chunk)
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=1e-5)


def test_recurrence_by_hand():
    """One channel, one state: h_t = exp(Δ a) h_{t-1} + Δ b u_t, y = c h + d u."""
    u = np.array([[[1.0, 2.0, -1.0]]], np.float32)
    delta = np.full((1, 1, 3), 0.5, np.float32)
    A, B, C = np.array([[-1.0]], np.float32), np.ones((1, 1, 3), np.float32), np.full((1, 1, 3), 2.0, np.float32)
    h, want = 0.0, []
    for t in range(3):
        h = np.exp(-0.5) * h + 0.5 * u[0, 0, t]
        want.append(2.0 * h + 3.0 * u[0, 0, t])
    for method in METHODS:
        out = selective_scan(u, delta, A, B, C, D=np.array([3.0], np.float32), method=method, chunk_size=2)
        np.testing.assert_allclose(np.asarray(out)[0, 0], want, rtol=1e-6, err_msg=method)


@pytest.mark.parametrize("layout,flags,use_z", CASES)
def test_matches_pytorch_sequential_reference(layout, flags, use_z):
    torch = pytest.importorskip("torch")
    from jaxir.torch_reference.selective_scan import selective_scan_ref

    x = positive_steps(make_inputs(seed=1, layout=layout), flags)
    if not use_z:
        x.pop("z")
    want, want_last = selective_scan_ref(**{k: torch.from_numpy(v) for k, v in x.items()}, **flags,
                                         return_last_state=True)
    for method in METHODS:
        out, last = selective_scan(**x, **flags, return_last_state=True, method=method, chunk_size=16)
        np.testing.assert_allclose(out, want.numpy(), atol=1e-5, rtol=1e-5, err_msg=method)
        np.testing.assert_allclose(last, want_last.numpy(), atol=1e-5, rtol=1e-5, err_msg=method)


def test_bfloat16_inputs_keep_dtype():
    x = {k: jnp.asarray(v, jnp.bfloat16) if k in ("u", "delta", "z") else v for k, v in make_inputs().items()}
    out = selective_scan(**x, delta_softplus=True, method="chunked", chunk_size=8)
    ref = selective_scan(**{k: jnp.asarray(v, jnp.float32) for k, v in x.items()}, delta_softplus=True)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(out, np.float32), ref, atol=0.1, rtol=0.02)


def test_rejects_unknown_method():
    with pytest.raises(ValueError, match="method"):
        selective_scan(**make_inputs(), method="cuda")


def test_op_bench_records_every_form(tmp_path):
    import argparse

    from jaxir.bench import run_op_bench

    record = tmp_path / "BENCH.md"
    args = argparse.Namespace(op="selective_scan", lengths="16", channels=4, d_state=2, chunk=8, steps=1,
                              torch=False, record=str(record))
    run_op_bench(args)
    text = record.read_text()
    assert "## Selective scan" in text
    for form in ("jax associative", "jax chunked (chunk 8)", "jax sequential"):
        assert f"| 16 | 4 | 2 | {form} |" in text
