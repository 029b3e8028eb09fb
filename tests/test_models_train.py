"""Every registered architecture trains a few steps through the shared loop on the bundled photos.

Each model uses its paper recipe's loss terms (from its experiments/ config) on
synthetic degradations of the photos scikit-image and scikit-learn ship, with a
small width so the run fits the CPU test budget.
"""
import math

import jax
import numpy as np
import pytest

from experiments.base import base_config
from jaxir.config import load_config
from jaxir.train.loop import load_inference_variables, train

MOTION = [{"name": "motion_blur", "kernel_size": 9}, {"name": "gaussian_noise", "sigma": 10 / 255}]
DEFOCUS = [{"name": "defocus_blur", "radius": (1.0, 3.0), "kernel_size": 9}]

# model -> (small kwargs, crop, experiments config whose loss terms to use, degradation)
CASES = {
    "nafnet": ({"width": 8, "enc_blk_nums": [1, 1], "middle_blk_num": 1, "dec_blk_nums": [1, 1]}, 32,
               "experiments/nafnet_gopro.py", MOTION),
    "nafnet_baseline": ({"width": 8, "enc_blk_nums": [1, 1], "middle_blk_num": 1, "dec_blk_nums": [1, 1]}, 32,
                        "experiments/nafnet_sidd.py:baseline-width32", MOTION),
    "mimo_unet": ({"base_channel": 8, "num_res": 1}, 32, "experiments/mimo_unet_gopro.py", MOTION),
    "mimo_unet_plus": ({"base_channel": 8, "num_res": 1}, 32, "experiments/mimo_unet_plus_gopro.py", MOTION),
    "xydeblur": ({"base_channel": 4, "num_res_enc": 1, "num_res_dec": 1}, 32, "experiments/xydeblur_gopro.py", MOTION),
    "restormer": ({"dim": 8, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 1, "heads": [1, 2, 2, 4]}, 32,
                  "experiments/restormer_gopro.py", MOTION),
    "stripformer": ({"channels": [8, 8, 10], "decoder_dim": 6, "heads": 5, "decoder_heads": 3}, 32,
                    "experiments/stripformer_gopro.py", MOTION),
    # ConvIR's pooled branches need at least 256 pixels a side; P2IKT runs at its full paper width.
    "convir": ({"base_channel": 8, "num_res": 1}, 256, "experiments/convir_gopro.py", MOTION),
    "p2ikt": ({}, 64, "experiments/p2ikt_dpdd.py", DEFOCUS),
    # GroupNorm(32) needs 32 channels per level.
    "dvsr": ({"predictor_channels": 32, "predictor_mult": [1, 2], "denoiser_channels": 32, "denoiser_mult": [1, 1],
              "num_res_blocks": 1}, 32, "experiments/dvsr_gopro.py", MOTION),
    "mair_unet": ({"dim": 8, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 1, "ssm_ratio": 1.0,
                   "scan_len": 4, "scan_method": "chunked", "scan_chunk": 64}, 32, "experiments/mair_gopro.py", MOTION),
    "mambairv2": ({"upscale": 1, "embed_dim": 12, "d_state": 4, "depths": [1], "num_heads": [2], "window_size": 8,
                   "inner_rank": 4, "num_tokens": 8, "mlp_ratio": 1.0}, 32, "experiments/mambairv2_cbsd68.py",
                  [{"name": "gaussian_noise", "sigma": 15 / 255}]),
    "acl": ({"dim": 8, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 1, "heads": [1, 1, 2, 2]}, 32,
            "experiments/acl_gopro.py", MOTION),
    "mair": ({"upscale": 1, "upsampler": "", "embed_dim": 8, "depths": [2], "d_state": 4, "ssm_ratio": 1.0,
              "mlp_ratio": 1.5, "scan_len": 4, "scan_method": "chunked", "scan_chunk": 64}, 32,
             "experiments/mair_cbsd68.py", [{"name": "gaussian_noise", "sigma": 15 / 255}]),
}
# Each of these compiles for minutes on 2 cores: kept out of the default run (CI budget).
SLOW = {"convir", "p2ikt", "dvsr", "mambairv2", "mair", "mair_unet", "stripformer", "restormer", "acl"}


def small_config(name, kwargs, crop, recipe, degradation):
    config = base_config()
    config.model.name = name
    config.model.kwargs = kwargs
    try:
        config.loss = load_config(recipe).loss
    except Exception as err:  # a recipe not written yet must not hide the training check
        pytest.fail(f"recipe {recipe} for {name} does not load: {err}")
    config.data.train = {"source": "bundled", "kwargs": {"split": "train"}}
    config.data.eval = None
    config.data.crop_size = crop
    config.data.batch_size = 8  # one image per simulated device (tests/conftest.py)
    config.data.degradation = degradation
    config.optim.update({"lr": 1e-3, "schedule": "constant"})
    config.train.update({"num_steps": 3, "log_every": 1, "ckpt_every": 3, "eval_every": 0})
    return config


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in CASES])
def test_trains_a_few_steps(tmp_path, name):
    kwargs, crop, recipe, degradation = CASES[name]
    config = small_config(name, kwargs, crop, recipe, degradation)
    metrics = train(config, tmp_path)
    assert metrics["rejected_steps"] == 0
    assert math.isfinite(metrics["train_loss"])
    trained = load_inference_variables(config, tmp_path)["params"]
    from jaxir import registry
    from jaxir.train.loop import init_input_shape

    model = registry.build_model(name, **kwargs)
    shape = init_input_shape(config, model, registry.get_entry(name))
    initial = model.init(jax.random.key(int(config.train.seed)), np.zeros(shape, np.float32))["params"]
    moved = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda a, b: float(np.abs(a - b).max()), trained, initial))
    assert all(np.isfinite(jax.tree_util.tree_leaves(trained)[0]).ravel())
    assert max(moved) > 0, "no parameter changed"
