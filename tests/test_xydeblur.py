import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxir import registry
from jaxir.models.xydeblur import rotate_features, unrotate_features


def test_rotation_round_trip_on_non_square_features():
    x = jnp.arange(2 * 3 * 5 * 4, dtype=jnp.float32).reshape(2, 3, 5, 4)
    rotated = rotate_features(x)
    assert rotated.shape == (2, 5, 3, 4)
    np.testing.assert_array_equal(unrotate_features(rotated), x)
    # A 90-degree rotation: the official transpose(2,3).flip(2) on NCHW.
    np.testing.assert_array_equal(rotated[0, :, :, 0], np.rot90(np.asarray(x[0, :, :, 0])))


def test_outputs_sum_and_shared_decoder():
    model = registry.build_model("xydeblur", base_channel=4, num_res_enc=1, num_res_dec=1)
    x = jax.random.uniform(jax.random.key(0), (1, 12, 8, 3))
    variables = model.init(jax.random.key(1), x)
    out_x, out_y, final = model.apply(variables, x)
    assert out_x.shape == out_y.shape == final.shape == x.shape
    np.testing.assert_allclose(final, out_x + out_y + x, atol=1e-6)
    # One decoder, applied twice: no second copy of its weights.
    assert set(variables["params"]) == {"Encoder1", "Encoder2", "Encoder3", "Convs1_1", "Convs1_2",
                                        "Decoder1_1", "Decoder1_2", "Decoder1_3", "Decoder1_4"}


def test_rejects_sizes_not_divisible_by_four():
    model = registry.build_model("xydeblur", base_channel=4, num_res_enc=1, num_res_dec=1)
    with pytest.raises(ValueError, match="divisible by 4"):
        model.init(jax.random.key(0), jnp.zeros((1, 10, 8, 3)))
