import flax.linen as nn
import jax
import numpy as np
import pytest

from jaxir.models.blocks import Conv2d
from jaxir.ops.tiling import tiled_apply


class TinyConvNet(nn.Module):
    """Fully convolutional, receptive-field radius 3."""

    @nn.compact
    def __call__(self, x, train=False):
        x = nn.relu(Conv2d(8, 3, padding=1, name="a")(x))
        x = nn.relu(Conv2d(8, 3, padding=1, name="b")(x))
        return Conv2d(3, 3, padding=1, name="c")(x) + x[..., :3]


@pytest.mark.parametrize("shape,tile,overlap", [((45, 70, 3), 24, 12), ((64, 64, 3), 32, 16), ((20, 33, 3), 16, 12)])
def test_tiled_equals_untiled_for_fully_convolutional_model(shape, tile, overlap):
    model = TinyConvNet()
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    variables = model.init(jax.random.key(0), image[None])
    apply = jax.jit(lambda x: model.apply(variables, x))
    whole = np.asarray(apply(image[None]))[0]
    tiled = tiled_apply(lambda x: apply(x), image, tile=tile, overlap=overlap)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_tiles_with_too_small_overlap_differ_near_seams():
    """The exactness above is not vacuous: with no overlap, seams show."""
    model = TinyConvNet()
    image = np.random.default_rng(1).random((40, 40, 3), dtype=np.float32)
    variables = model.init(jax.random.key(0), image[None])
    apply = jax.jit(lambda x: model.apply(variables, x))
    whole = np.asarray(apply(image[None]))[0]
    tiled = tiled_apply(lambda x: apply(x), image, tile=16, overlap=0)
    assert np.abs(tiled - whole).max() > 1e-3


def test_bad_tile_arguments_raise():
    with pytest.raises(ValueError, match="tile"):
        tiled_apply(lambda x: x, np.zeros((8, 8, 3), np.float32), tile=8, overlap=8)
