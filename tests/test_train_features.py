"""Loop features recipes need: Restormer's progressive patches, starting from a finished stage (init_from)."""
import jax
import numpy as np
import pytest

from train_helpers import tiny_config

from jaxir.train.loop import load_inference_variables, train


def test_progressive_stages_train_through_the_loop(tmp_path):
    config = tiny_config(4, with_eval=False)
    config.data.progressive = {"milestones": [2, 2], "patch_sizes": [16, 24], "batch_sizes": [8, 16]}
    metrics = train(config, tmp_path)
    assert metrics["step"] == 4 and metrics["rejected_steps"] == 0


def test_progressive_batch_sizes_must_split_over_devices(tmp_path):
    config = tiny_config(4, with_eval=False)
    config.data.progressive = {"milestones": [2, 2], "patch_sizes": [16, 24], "batch_sizes": [8, 5]}
    with pytest.raises(ValueError, match="batch_size=5"):
        train(config, tmp_path)


def test_init_from_a_finished_stage(tmp_path):
    first = tiny_config(2, with_eval=False, ema_decay=0.0)
    first.optim.ema_decay = 0.0
    train(first, tmp_path / "stage1")
    stage1 = load_inference_variables(first, tmp_path / "stage1")["params"]

    second = tiny_config(1, with_eval=False)
    second.optim.update({"lr": 0.0, "weight_decay": 0.0, "warmup_steps": 0, "schedule": "constant", "ema_decay": 0.0})
    second.train.init_from = str(tmp_path / "stage1")
    train(second, tmp_path / "stage2")
    stage2 = load_inference_variables(second, tmp_path / "stage2")["params"]
    # With a zero learning rate the second stage keeps exactly the weights it started from.
    for a, b in zip(jax.tree_util.tree_leaves(stage1), jax.tree_util.tree_leaves(stage2)):
        np.testing.assert_array_equal(a, b)

    second.train.init_from = str(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="init_from"):
        train(second, tmp_path / "stage3")


def test_all_in_one_mixture_trains_with_per_task_synthesis(tmp_path):
    """The 3-task protocol through the loop: noise synthesised per denoising task, paired tasks as loaded."""
    from test_mixtures import fixture_sources

    from data_pipelines.mixtures import make_mixture
    from jaxir.train.data import register_source, task_degradations

    register_source("tiny_aio3", lambda: make_mixture("aio3", fixture_sources()))
    degradations = task_degradations(make_mixture("aio3", fixture_sources()))
    assert sorted(degradations) == [0, 1, 2]  # denoise_15/25/50; derain and dehaze are paired
    assert [spec[0]["sigma"] * 255 for _, spec in sorted(degradations.items())] == pytest.approx([15, 25, 50])

    config = tiny_config(3, with_eval=False)
    config.data.train = {"source": "tiny_aio3", "kwargs": {}}
    config.data.crop_size = 8
    config.data.degradation = None
    metrics = train(config, tmp_path)
    assert metrics["step"] == 3 and metrics["rejected_steps"] == 0
