"""Checkpointing: exact resume after SIGKILL, keep-last-N with keep-best, iterator state, evaluate()."""
import os
import pathlib
import signal
import subprocess
import sys
import time

import grain
import jax
import numpy as np
import pytest

from train_helpers import tiny_config

from jaxir.train import sharding as shd
from jaxir.train.checkpoint import Checkpointer
from jaxir.train.loop import build_model, evaluate, init_input_shape, load_inference_variables
from jaxir.train.metric_writers import read_metrics
from jaxir.train.optim import make_optimizer
from jaxir.train.state import abstract_state, create_sharded_state

WORKER = pathlib.Path(__file__).with_name("train_resume_worker.py")
NUM_STEPS = 16


def _run_worker(workdir, cache_dir, delay=0.0):
    # A shared persistent compilation cache: only the first of the three runs compiles.
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(cache_dir), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1")
    args = [sys.executable, str(WORKER), str(workdir), str(NUM_STEPS), str(delay)]
    return subprocess.Popen(args, cwd=WORKER.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _finish(proc, timeout=120):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out.decode(errors="replace")[-4000:]


def _restore_final(workdir):
    config = tiny_config(NUM_STEPS)
    model, entry = build_model(config)
    tx, _ = make_optimizer(config.optim, NUM_STEPS)
    target = abstract_state(model, tx, init_input_shape(config, model, entry), use_ema=True)
    checkpointer = Checkpointer(pathlib.Path(workdir) / "checkpoints", read_only=True)
    try:
        assert checkpointer.latest_step() == NUM_STEPS
        return checkpointer.restore(target)
    finally:
        checkpointer.close()


def test_resume_after_sigkill_is_bitwise_exact(tmp_path):
    straight, killed, cache = tmp_path / "straight", tmp_path / "killed", tmp_path / "jax_cache"
    _finish(_run_worker(straight, cache))
    # The delay only slows record reading, so there is time to kill the run between checkpoints.
    killed_proc = _run_worker(killed, cache, delay=0.05)
    first_ckpt = killed / "checkpoints" / str(NUM_STEPS // 2)
    deadline = time.monotonic() + 120
    while not first_ckpt.is_dir():
        assert killed_proc.poll() is None, killed_proc.communicate()[0].decode(errors="replace")[-4000:]
        assert time.monotonic() < deadline, "the run never wrote its mid-way checkpoint"
        time.sleep(0.02)
    time.sleep(0.3)  # a few more steps, then the hard kill
    killed_proc.send_signal(signal.SIGKILL)
    killed_proc.communicate(timeout=60)
    assert killed_proc.returncode == -signal.SIGKILL
    assert not (killed / "checkpoints" / str(NUM_STEPS)).exists(), "the killed run finished before the kill"

    _finish(_run_worker(killed, cache))  # resumes from the killed run's last checkpoint

    a, b = _restore_final(straight), _restore_final(killed)
    leaves_a, tree_a = jax.tree.flatten(jax.device_get(a))
    leaves_b, tree_b = jax.tree.flatten(jax.device_get(b))
    assert tree_a == tree_b
    for x, y in zip(leaves_a, leaves_b):  # params, optimizer state, EMA, RNG, counters
        assert np.array_equal(np.asarray(x), np.asarray(y))
    assert int(a.step) == NUM_STEPS
    # Training moved the parameters (the comparison is not between two untouched states).
    losses = [m["loss"] for m in read_metrics(straight) if m["split"] == "train"]
    assert len(losses) == NUM_STEPS // 2 and losses[-1] < losses[0]
    # metrics.jsonl of the killed-and-resumed run: lines past its checkpoint were dropped, none doubled.
    assert [m["loss"] for m in read_metrics(killed) if m["split"] == "train"] == losses
    config = tiny_config(NUM_STEPS)

    # The straight run's workdir also serves evaluation and inference.
    scores = evaluate(config, straight)
    assert set(scores) >= {"psnr", "ssim", "input_psnr", "input_ssim", "psnr_gain"}
    assert np.isfinite(scores["psnr"])
    variables = load_inference_variables(config, straight)
    assert np.array_equal(variables["params"]["Conv_0"]["kernel"], np.asarray(a.ema_params["Conv_0"]["kernel"]))
    assert (straight / "samples.png").is_file() and (straight / "metrics.jsonl").is_file()


@pytest.fixture(scope="module")
def tiny_state():
    config = tiny_config()
    model, entry = build_model(config)
    tx, _ = make_optimizer(config.optim, 10)
    shape = init_input_shape(config, model, entry)
    state, shardings = create_sharded_state(model, tx, shape, 0, True, shd.make_mesh())
    return state, abstract_state(model, tx, shape, True, shardings)


def test_keep_last_and_best_coexist(tmp_path, tiny_state):
    state, target = tiny_state
    checkpointer = Checkpointer(tmp_path / "ckpt", keep_last=2, async_save=False)
    psnrs = {1: 10.0, 2: 30.0, 3: None, 4: 20.0, 5: 15.0, 6: None}
    for step, psnr in psnrs.items():
        stepped = state.replace(step=state.step + step)
        checkpointer.save(step, stepped, None, metrics=None if psnr is None else {"psnr": psnr})
    checkpointer.wait()
    # The best (step 2) survives beside the last two; the others are gone.
    assert checkpointer.all_steps() == [2, 5, 6]
    assert checkpointer.best_step() == 2
    assert int(checkpointer.restore(target, step=2).step) == 2
    checkpointer.close()
    # A new manager (a restarted run) sees the same steps and the same best.
    again = Checkpointer(tmp_path / "ckpt", keep_last=2, read_only=True)
    assert again.latest_step() == 6 and again.best_step() == 2
    with pytest.raises(ValueError, match="psnr"):
        Checkpointer(tmp_path / "other", keep_last=1).save(1, state, None, metrics={"ssim": 0.5})


def test_iterator_state_restored_with_train_state(tmp_path, tiny_state):
    state, target = tiny_state
    dataset = grain.MapDataset.range(100).shuffle(seed=3).to_iter_dataset()
    iterator = iter(dataset)
    for _ in range(7):
        next(iterator)
    checkpointer = Checkpointer(tmp_path / "ckpt", keep_last=1)
    checkpointer.save(7, state, iterator)
    checkpointer.wait()
    expected = [next(iterator) for _ in range(5)]
    fresh = iter(dataset)
    restored = checkpointer.restore(target, fresh)
    assert [next(fresh) for _ in range(5)] == expected
    for x, y in zip(jax.tree.leaves(restored), jax.tree.leaves(state)):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    # Saved atomically: no temporary directory is left behind once finalised.
    assert [p.name for p in (tmp_path / "ckpt").iterdir() if p.name != "_CHECKPOINT_METADATA"] == ["7"]
    checkpointer.close()


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    config = tiny_config()
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        load_inference_variables(config, tmp_path)
    with pytest.raises(FileNotFoundError, match="no training workdir or weights file"):
        evaluate(config, tmp_path / "nowhere")


def test_evaluate_a_converted_weights_file(tmp_path):
    from jaxir.io import save_weights
    from train_helpers import TINY_MODEL, TinyNet

    # All-zero weights: the residual net is the identity, so restored == degraded input.
    model = TinyNet(features=4)
    variables = jax.tree.map(np.zeros_like, jax.device_get(model.init(jax.random.key(0), np.zeros((1, 8, 8, 3)))))
    save_weights(tmp_path / "w.msgpack", TINY_MODEL, {"features": 4}, variables)
    scores = evaluate(tiny_config(), tmp_path / "w.msgpack")
    assert scores["psnr"] == pytest.approx(scores["input_psnr"], abs=1e-4)
    assert scores["psnr_gain"] == pytest.approx(0.0, abs=1e-4)
