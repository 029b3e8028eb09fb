import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxir import registry
from jaxir.models.p2ikt import inverse_gaussian_bank
from jaxir.parity import load_golden


def test_kernel_bank_reproduces_official_gcm_weight(golden_dir):
    """The Wiener inverse Gaussian bank is computed with jnp.fft, not stored, and equals the official one."""
    _, arrays = load_golden(golden_dir / "p2ikt.npz")
    official = arrays["aux/GCM.weight"][:, 0]
    bank = np.asarray(inverse_gaussian_bank(5, 5))
    assert bank.shape == official.shape == (18, 5, 5)
    np.testing.assert_allclose(bank, official, atol=1e-5)
    # The official construction's quirk: the inverse kernels peak off-centre.
    peak = np.unravel_index(np.argmax(bank[3]), bank[3].shape)
    assert peak != (2, 2)
    np.testing.assert_array_equal(bank[0], np.eye(5)[2][:, None] * np.eye(5)[2][None, :])


def test_four_outputs_at_three_scales_and_size_check():
    model = registry.build_model("p2ikt")
    x = jax.random.uniform(jax.random.key(0), (1, 32, 48, 3))
    variables = jax.eval_shape(lambda: model.init(jax.random.key(1), x))
    outputs = jax.eval_shape(lambda v: model.apply(v, x), variables)
    assert [o.shape for o in outputs] == [(1, 8, 12, 3), (1, 16, 24, 3), (1, 32, 48, 3), (1, 32, 48, 3)]
    with pytest.raises(ValueError, match="divisible by 16"):
        model.init(jax.random.key(0), jnp.zeros((1, 40, 40, 3)))
