"""MPMF-Net: its pieces' conventions, and a few training steps with the paper's loss terms."""
import math

import jax
import numpy as np
import pytest

from aio_fixtures import BUNDLED_WEATHER
from experiments.base import base_config
from jaxir.config import load_config
from jaxir.models.mpmf_net import attention_flags, make_coord, positional_encoding, relative_positions
from jaxir.train.loop import load_inference_variables, train

TINY = {"embed_dims": [6, 12, 24, 12, 6], "depths": [1, 2, 1, 1, 1, 1], "num_heads": [1, 2, 3, 1, 1],
        "mlp_ratios": [2.0, 2.0, 2.0, 2.0, 2.0]}


def test_official_attention_placement():
    # attn_ratio * depth blocks at the end of each layer (paper config: layer2 16 blocks, ratio 1/2).
    assert attention_flags(16, 1 / 2) == [False] * 8 + [True] * 8
    assert attention_flags(2, 1 / 4) == [False, False]
    assert attention_flags(1, 3 / 4) == [False]


def test_coordinates_and_encodings():
    coord = make_coord(2, 4)
    np.testing.assert_allclose(coord[:, 0, 0], [-0.5, 0.5])
    np.testing.assert_allclose(coord[0, :, 1], [-0.75, -0.25, 0.25, 0.75])
    enc = np.asarray(positional_encoding(np.asarray([[0.5, -0.25]], np.float32)))
    # (coordinate, sin/cos, frequency) order: sin(0.5 * 2^l * pi) first.
    np.testing.assert_allclose(enc[0, :4], np.sin(0.5 * np.pi * 2.0 ** np.arange(4)), atol=1e-6)
    np.testing.assert_allclose(enc[0, 4:8], np.cos(0.5 * np.pi * 2.0 ** np.arange(4)), atol=1e-6)
    assert enc.shape == (1, 16)
    rel = relative_positions(2)
    assert rel.shape == (4, 4, 2)
    np.testing.assert_allclose(rel[0, 3], [-np.log(2), -np.log(2)])


@pytest.mark.slow
def test_trains_with_the_paper_losses_on_the_bundled_weather_mixture(tmp_path):
    recipe = load_config("experiments/mpmf_net_awtd.py")
    config = base_config()
    config.model.name, config.model.kwargs = "mpmf_net", TINY
    config.data.train = {"source": BUNDLED_WEATHER, "kwargs": {}}
    config.data.eval, config.data.crop_size, config.data.batch_size = None, 32, 8
    config.loss = recipe.loss
    config.optim.update({"lr": 1e-3, "schedule": "constant"})
    config.train.update({"num_steps": 2, "log_every": 1, "ckpt_every": 2, "eval_every": 0})
    metrics = train(config, tmp_path)
    assert metrics["rejected_steps"] == 0 and math.isfinite(metrics["train_loss"])
    variables = load_inference_variables(config, tmp_path)
    # The window attention's relative-position buffer rides along as a constant collection.
    assert "buffers" in variables
    leaves = jax.tree_util.tree_leaves(variables["params"])
    assert all(np.isfinite(leaf).all() for leaf in leaves)


@pytest.mark.slow  # ~1.5 min on 2 cores
def test_inference_returns_the_full_resolution_restoration():
    # Outputs are (restored, 1/4-scale INR output); inference must take the first, at any multiple-of-4 size.
    from jaxir import registry
    from jaxir.inference import make_predict_fn

    model = registry.build_model("mpmf_net", **TINY)
    entry = registry.get_entry("mpmf_net")
    variables = model.init(jax.random.key(0), np.zeros((1, 32, 32, 3), np.float32))
    image = np.random.default_rng(0).uniform(size=(1, 34, 38, 3)).astype(np.float32)
    restored = make_predict_fn(model, variables, entry.pad_multiple, entry.min_size)(image)
    # The INR output is a quarter of the padded size (9 x 10): only the restoration crops back to 34 x 38.
    assert restored.shape == image.shape and np.isfinite(restored).all()
