"""Multi-process training on jax.distributed: launch plans, per-process data shards, and a real 2-process run."""
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from data_pipelines.pipelines import ProgressiveSchedule, make_train_dataset
from jaxir.train.distributed import plan
from train_helpers import RandomImages

TESTS = pathlib.Path(__file__).parent
ROOT = TESTS.parent
CONFIG = TESTS / "distributed_config.py"
NUM_STEPS = 16


# ---------------------------------------------------------------------------- launch plans


def test_plan_reads_flags_then_environment_then_clusters():
    env = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3"}
    launch = plan(env=env)
    assert launch.distributed and launch.kwargs() == {"coordinator_address": "10.0.0.1:1234",
                                                      "num_processes": 4, "process_id": 3}
    # Flags win over the environment.
    assert plan(process_id=1, env=env).process_id == 1
    assert not plan(env={}).distributed
    assert not plan("off", env=env).distributed
    single = {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "1", "JAX_PROCESS_ID": "0"}
    assert not plan(env=single).distributed and plan("on", env=single).distributed
    # Clusters that launched several processes: JAX's own detection fills in the rest.
    for cluster_env, reason in (({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "16"}, "SLURM"),
                                ({"OMPI_COMM_WORLD_SIZE": "2"}, "Open MPI"),
                                ({"TPU_WORKER_HOSTNAMES": "t0,t1,t2,t3"}, "Cloud TPU slice")):
        launch = plan(env=cluster_env)
        assert launch.distributed and launch.reason == reason and launch.kwargs() == {}
    assert not plan(env={"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"}).distributed
    assert not plan(env={"TPU_WORKER_HOSTNAMES": "localhost"}).distributed


def test_plan_rejects_incomplete_or_wrong_values():
    with pytest.raises(ValueError, match="JAX_PROCESS_ID"):
        plan(env={"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2"})
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        plan(env={"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"})
    with pytest.raises(ValueError, match="integer"):
        plan(env={"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "two", "JAX_PROCESS_ID": "0"})
    with pytest.raises(ValueError, match="mode"):
        plan("sometimes", env={})


# ---------------------------------------------------------------------------- per-process data


def _batches(dataset, n):
    iterator = iter(dataset)
    return [next(iterator) for _ in range(n)]


@pytest.mark.parametrize("processes", [2, 4])
def test_process_batches_concatenate_to_the_single_process_batch(processes):
    """Process p's batch j is rows p*L:(p+1)*L of the 1-process global batch j, bit for bit.

    This is what `jax.make_array_from_process_local_data` assembles, so every step sees
    the same global batch (records, crops, flips, per-record seeds) whatever the process count
    (when the number of records divides by it: otherwise each epoch drops its remainder).
    """
    source = RandomImages(num=12, height=20, width=20)  # 12 records: every epoch splits evenly
    global_batch = 4
    single = _batches(make_train_dataset(source, crop_size=16, batch_size=global_batch, seed=5, shard=(0, 1)), 7)
    parts = [_batches(make_train_dataset(source, crop_size=16, batch_size=global_batch // processes, seed=5,
                                         shard=(p, processes)), 7) for p in range(processes)]
    for step, whole in enumerate(single):
        for key, value in whole.items():
            joined = np.concatenate([parts[p][step][key] for p in range(processes)])
            np.testing.assert_array_equal(joined, value)
    # The shards are disjoint within a step.
    assert len({int(s) for p in range(processes) for s in parts[p][0]["seed"]}) == global_batch


def test_progressive_batches_are_split_the_same_way():
    source = RandomImages(num=12, height=20, width=20)
    schedule = lambda div: ProgressiveSchedule(milestones=(2, 3), patch_sizes=(8, 16),  # noqa: E731
                                               batch_sizes=(4 // div, 2 // div))
    single = _batches(make_train_dataset(source, schedule=schedule(1), seed=2, shard=(0, 1)), 5)
    parts = [_batches(make_train_dataset(source, schedule=schedule(2), seed=2, shard=(p, 2)), 5) for p in range(2)]
    for step, whole in enumerate(single):
        assert whole["target"].shape[1] == (8 if step < 2 else 16)
        for key, value in whole.items():
            np.testing.assert_array_equal(np.concatenate([parts[0][step][key], parts[1][step][key]]), value)


# ---------------------------------------------------------------------------- 2 processes on localhost


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _launch(workdir, cache, devices, process=None, port=None, delay=0.0):
    """`jaxir train` on the test config as one process of `devices` CPU devices (or process `process` of 2)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(TESTS)]),
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices} --xla_backend_optimization_level=0",
               JAX_COMPILATION_CACHE_DIR=str(cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1")
    for key in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        env.pop(key, None)
    if process is not None:  # the environment-variable route (the flags are tested by `plan`)
        env.update(JAX_COORDINATOR_ADDRESS=f"localhost:{port}", JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(process))
    args = [sys.executable, "-m", "jaxir.cli", "train", "--config", f"{CONFIG}:{NUM_STEPS}",
            "--workdir", str(workdir), f"--config.data.train.kwargs.delay={delay}"]
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _finish(*procs, timeout=240):
    for proc in procs:
        out, _ = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, out.decode(errors="replace")[-4000:]
    return procs[0]


def _two_processes(workdir, cache, delay=0.0):
    port = _free_port()
    return [_launch(workdir, cache, 4, p, port, delay) for p in range(2)]


def _final_state(workdir):
    """The step-16 checkpoint restored onto this process's 8 devices (a 2-process save included)."""
    from jaxir.train import sharding as shd
    from jaxir.train.checkpoint import Checkpointer
    from distributed_config import get_config
    from jaxir.train.loop import build_model, init_input_shape
    from jaxir.train.optim import make_optimizer
    from jaxir.train.state import abstract_state, state_shardings

    config = get_config(str(NUM_STEPS))
    model, entry = build_model(config)
    tx, _ = make_optimizer(config.optim, NUM_STEPS)
    shape = init_input_shape(config, model, entry)
    shapes = abstract_state(model, tx, shape, True)
    target = abstract_state(model, tx, shape, True,
                            state_shardings(shapes, tx, shd.make_mesh(), "fsdp", config.train.fsdp_min_size))
    checkpointer = Checkpointer(pathlib.Path(workdir) / "checkpoints", read_only=True)
    try:
        assert checkpointer.latest_step() == NUM_STEPS
        return jax.tree_util.tree_leaves_with_path(jax.device_get(checkpointer.restore(target)))
    finally:
        checkpointer.close()


@pytest.mark.slow
def test_two_processes_train_resume_after_a_kill_and_match_one_process(tmp_path):
    from jaxir.train.metric_writers import read_metrics

    cache = tmp_path / "jax_cache"
    single, straight, killed = tmp_path / "single", tmp_path / "straight", tmp_path / "killed"
    _finish(_launch(single, cache, 8))
    _finish(*_two_processes(straight, cache))

    # Kill process 1 between checkpoints (as a lost host would), then the job (process 0), then relaunch both.
    procs = _two_processes(killed, cache, delay=0.05)
    mid = killed / "checkpoints" / str(NUM_STEPS // 2)
    deadline = time.monotonic() + 180
    while not mid.is_dir():
        assert all(p.poll() is None for p in procs), procs[0].communicate()[0].decode(errors="replace")[-4000:]
        assert time.monotonic() < deadline, "the 2-process run never wrote its mid-way checkpoint"
        time.sleep(0.05)
    time.sleep(0.3)
    procs[1].send_signal(signal.SIGKILL)
    procs[1].communicate(timeout=60)
    procs[0].send_signal(signal.SIGKILL)
    procs[0].communicate(timeout=60)
    assert not (killed / "checkpoints" / str(NUM_STEPS)).exists(), "the run finished before the kill"
    _finish(*_two_processes(killed, cache))

    a, b, c = _final_state(straight), _final_state(killed), _final_state(single)
    assert [k for k, _ in a] == [k for k, _ in b] == [k for k, _ in c]
    for (path, x), (_, y) in zip(a, b):  # resuming a multi-host run is exact
        assert np.array_equal(np.asarray(x), np.asarray(y)), jax.tree_util.keystr(path)
    for (path, x), (_, y) in zip(a, c):  # the same training as one process of 8 devices, to float32 rounding
        np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=2e-3, atol=1e-6,
                                   err_msg=jax.tree_util.keystr(path))
    assert int(dict((jax.tree_util.keystr(k), v) for k, v in a)[".step"]) == NUM_STEPS

    # Metrics written once (process 0): one line per log step, the killed run's extra lines dropped.
    train_lines = lambda w: [m for m in read_metrics(w) if m["split"] == "train"]  # noqa: E731
    assert [m["step"] for m in train_lines(straight)] == list(range(2, NUM_STEPS + 1, 2))
    assert [m["loss"] for m in train_lines(killed)] == [m["loss"] for m in train_lines(straight)]
    np.testing.assert_allclose([m["loss"] for m in train_lines(straight)],
                               [m["loss"] for m in train_lines(single)], rtol=1e-4)
    losses = [m["loss"] for m in train_lines(single)]
    assert losses[-1] < losses[0]
    assert (straight / "samples.png").is_file()
    # Each process checkpointed its own data-iterator position.
    data_dir = straight / "checkpoints" / str(NUM_STEPS) / "data"
    assert sorted(p.name for p in data_dir.iterdir() if p.suffix == ".json") == [
        "process_0-of-2.json", "process_1-of-2.json"]
