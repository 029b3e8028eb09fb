"""OSDFace's code selection against a direct transcription of the official loop (parity of the whole
embedder: tests/test_parity.py, osdface_vre)."""
import jax.numpy as jnp
import numpy as np

from jaxir.diffusion.latent.osdface_vre import select_codes


def _official_loop(z, e, n_min):
    flat = z.reshape(-1, z.shape[-1])
    d = (flat ** 2).sum(1, keepdims=True) + (e ** 2).sum(1) - 2 * flat @ e.T
    codes, values = d.argmin(1), d.min(1)
    seen, chosen = set(), []
    for code in codes[np.argsort(values, kind="stable")]:
        if code not in seen:
            seen.add(code)
            chosen.append(code)
        if len(chosen) >= n_min:
            break
    out = np.zeros((n_min, e.shape[1]), np.float32)
    out[:len(chosen)] = e[chosen]
    return out


def test_selection_orders_distinct_codes_and_zero_fills():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(12, 4)).astype(np.float32)
    # latents near a few codes, repeated, so duplicates must be skipped and fewer than n_min exist
    picks = rng.integers(0, 5, size=(2, 3, 3))
    z = (e[picks] + 0.05 * rng.normal(size=(2, 3, 3, 4))).astype(np.float32)
    got = np.asarray(select_codes(jnp.asarray(z), jnp.asarray(e), 8))
    for i in range(2):
        np.testing.assert_allclose(got[i], _official_loop(z[i], e, 8), atol=0)
    assert np.all(got[:, -1] == 0)  # at most 5 distinct codes
    small = np.asarray(select_codes(jnp.asarray(z), jnp.asarray(e), 2))
    np.testing.assert_allclose(small, got[:, :2], atol=0)
