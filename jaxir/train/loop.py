"""`train(config, workdir)` and `evaluate(config, workdir_or_weights)`: the model-agnostic loop.

The config groups it reads (see experiments/nafnet_demo.py for a full example):
  model:  name, kwargs                         -> registry.build_model(name, **kwargs, dtype=compute_dtype)
  data:   train, eval ({'source', 'kwargs'}), crop_size, batch_size (global), degradation,
          workers, eval_batch_size, eval_seed, augment (True, 'hflip' or False)
  loss:   terms, multiscale, target (the batch key the loss compares with; 'task' for classifiers)
                                                -> jaxir.losses.build_loss
  optim:  lr, b1, b2, eps, weight_decay, schedule, warmup_steps, min_lr, milestones, gamma,
          steps_per_epoch, clip_norm, ema_decay -> jaxir.train.optim
  train:  num_steps, seed, log_every, eval_every, ckpt_every, keep_checkpoints,
          compute_dtype ('float32'|'bfloat16'), param_sharding ('replicated'|'fsdp'),
          fsdp_min_size, nan_policy ('skip'|'halt'), num_samples,
          init_from (workdir or weights), init_from_config, init_from_subtree, init_from_into
          remat ('none'|'block'|'stage'|'full'), remat_policy, remat_modules  -> jaxir.train.remat
  eval:   convention (optional jaxir.metrics convention name)
  method: name, kwargs (optional)              -> jaxir.methods.build_method (a paper's training method:
          a registered name, or 'package.module:function' building the trained module from the model)
"""
from __future__ import annotations

import logging
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp

from jaxir.train import remat
from jaxir.train import sharding as shd
from jaxir.train.checkpoint import Checkpointer
from jaxir.train.eval_loop import run_eval, save_sample_grid
from jaxir.train.metric_writers import MetricWriter
from jaxir.train.optim import ema_decay, make_optimizer
from jaxir.train.state import TrainState, abstract_state, create_sharded_state, state_shardings
from jaxir.train.step import jit_eval_step, jit_train_step, make_eval_step, make_train_step

logger = logging.getLogger(__name__)

NAN_POLICIES = ("skip", "halt")
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
CHECKPOINT_DIR = "checkpoints"
SAMPLES_FILE = "samples.png"
SAMPLES_DIR = "samples"  # samples/step_<step>.png: the grid of every eval


class NonFiniteUpdateError(FloatingPointError):
    """Raised under nan_policy='halt' when a step's loss or gradients are not finite."""


def _say(message: str) -> None:
    """A progress line for the person watching (process 0), printed around the tqdm bar; also logged."""
    logger.info(message)
    if jax.process_index() == 0:
        from tqdm import tqdm

        tqdm.write(message)


def _train_option(config, key: str, default):
    value = config.train.get(key, default)
    return default if value is None else value


# ----------------------------------------------------------------------------
# Pieces shared by train and evaluate.


def build_model(config, compute_dtype=jnp.float32):
    """The module trained and the configured model's registry entry (pad multiple, minimum size).

    The configured training method (`config.method`, jaxir.methods) may wrap the
    registry model into the module actually trained (ADMS's ADS wrapper, DCPT's
    encoder + classifier, TUR's uncertainty head); the loop never branches on it.
    """
    from jaxir import registry

    kwargs = config.model.get("kwargs", {})
    kwargs = dict(kwargs.to_dict() if hasattr(kwargs, "to_dict") else kwargs)
    if "dtype" in kwargs:
        raise ValueError("set the compute dtype with config.train.compute_dtype, not config.model.kwargs.dtype")
    model = registry.build_model(config.model.name, **kwargs, dtype=compute_dtype)
    entry = registry.get_entry(config.model.name)
    return _method(config).wrap_model(model, entry), entry


def compute_dtype(config):
    name = _train_option(config, "compute_dtype", "float32")
    if name not in COMPUTE_DTYPES:
        raise ValueError(f"train.compute_dtype must be one of {tuple(COMPUTE_DTYPES)}, got {name!r}")
    return COMPUTE_DTYPES[name]


def init_input_shape(config, model, entry) -> tuple[int, int, int, int]:
    """A (1, H, W, C) input to initialise parameters: a training crop padded as the model needs."""
    from jaxir.parity import input_channels

    crop = config.data.get("crop_size", None) or 64
    h, w = (crop, crop) if isinstance(crop, int) else tuple(crop)
    size = lambda s: max(s, entry.min_size) + (-max(s, entry.min_size)) % entry.pad_multiple  # noqa: E731
    return (1, size(h), size(w), input_channels(model))


def _method(config):
    from jaxir.methods import build_method

    return build_method(config.get("method", None))


def _degradation(config):
    spec = config.data.get("degradation", None)
    if spec is None:
        return None
    return [dict(d.to_dict() if hasattr(d, "to_dict") else d) for d in spec]


def _loss_fn(config):
    from jaxir.losses import build_loss

    _method(config)  # building the method imports it, registering the loss terms it adds
    terms = [dict(t.to_dict() if hasattr(t, "to_dict") else t) for t in config.loss.terms]
    return build_loss(terms, multiscale=config.loss.get("multiscale", "bilinear"))


def _eval_step(config, model, entry, mesh):
    convention = config.get("eval", {}).get("convention", None) if "eval" in config else None
    step = make_eval_step(model, degradation=_degradation(config), pad_multiple=entry.pad_multiple,
                          min_size=entry.min_size, convention=convention)
    return jit_eval_step(step, mesh)


def _checkpointer(config, workdir: pathlib.Path, read_only: bool = False) -> Checkpointer:
    return Checkpointer(workdir / CHECKPOINT_DIR, keep_last=int(_train_option(config, "keep_checkpoints", 2)),
                        best_metric="psnr", best_mode="max", read_only=read_only)


# ----------------------------------------------------------------------------
# Non-finite update bookkeeping.


class StepMonitor:
    """Reads each step's metrics one step late, so the host never stalls the device queue.

    Logs rejected updates (naming the step and whether the loss or the gradients were
    not finite), raises under nan_policy='halt', and averages metrics between log lines.
    """

    def __init__(self, nan_policy: str):
        if nan_policy not in NAN_POLICIES:
            raise ValueError(f"train.nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
        self.nan_policy = nan_policy
        self._pending: tuple[int, Any] | None = None
        self._sums: dict[str, float] = {}
        self._count = 0
        self.last: dict[str, float] = {}

    def push(self, step: int, metrics: Any) -> None:
        """Record step `step`'s (device) metrics and check the previous step's."""
        previous, self._pending = self._pending, (step, metrics)
        if previous is not None:
            self._check(*previous)

    def flush(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._check(*pending)

    def _check(self, step: int, metrics: Any) -> None:
        values = {k: float(v) for k, v in jax.device_get(metrics).items()}
        self.last = values
        if not (values["loss_finite"] and values["grads_finite"]):
            what = "loss" if not values["loss_finite"] else "gradients"
            message = (f"step {step}: update rejected, non-finite {what} (loss={values['loss']}); "
                       f"params and optimizer state kept; {int(values['rejected_steps'])} step(s) rejected so far")
            if self.nan_policy == "halt":
                raise NonFiniteUpdateError(message + ". Stopping (train.nan_policy='halt'); "
                                           "checkpoints hold only finite states.")
            logger.warning(message)
            return
        for key, value in values.items():
            self._sums[key] = self._sums.get(key, 0.0) + value
        self._count += 1

    def averages(self) -> dict[str, float]:
        """Means of the accepted steps' metrics since the last call (flushes first)."""
        self.flush()
        out = {k: v / self._count for k, v in self._sums.items()} if self._count else {}
        out["rejected_steps"] = self.last.get("rejected_steps", 0.0)
        for flag in ("loss_finite", "grads_finite"):
            out.pop(flag, None)
        self._sums, self._count = {}, 0
        return out


# ----------------------------------------------------------------------------
# Training.


def _place_into(variables: dict, into: str, state: TrainState, path: pathlib.Path) -> dict:
    """The fresh state's collections with the loaded ones put at their `into` entry."""
    fresh = {"params": state.params, "batch_stats": state.batch_stats, **state.model_state}
    placed = {}
    for collection, tree in fresh.items():
        if not tree:
            continue
        if into not in tree:
            raise ValueError(f"train.init_from_into: the configured model's {collection!r} has no {into!r} "
                             f"(it has {sorted(tree)})")
        if collection in variables:
            tree = {**tree, into: variables[collection]}
        placed[collection] = tree
    if "params" not in variables:
        raise ValueError(f"train.init_from: no parameters in {path}")
    return placed


def _init_from(config, state: TrainState, shardings: TrainState, source: str) -> TrainState:
    """Start from trained weights (a finished stage's workdir, or `jaxir convert` weights) with a fresh optimizer.

    A workdir gives its EMA weights when that run kept them; the EMA of the new run
    starts from the loaded weights too.
    """
    path = pathlib.Path(source).expanduser()
    if path.is_file():
        from jaxir.io import load_weights

        name, _, variables = load_weights(path)
        if name != config.model.name:
            raise ValueError(f"train.init_from: {path} holds a {name!r} model, the config trains {config.model.name!r}")
    elif path.is_dir():
        # A workdir trained by another config (e.g. a pre-training stage) is read with that config.
        source_config = _train_option(config, "init_from_config", "")
        if source_config:
            from jaxir.config import load_config

            source_config = load_config(source_config)
        variables = load_inference_variables(source_config or config, path)
    else:
        raise FileNotFoundError(f"train.init_from: no workdir or weights file at {path}")
    subtree = _train_option(config, "init_from_subtree", "")
    if subtree:  # e.g. the restoration network inside a pre-training wrapper
        try:
            variables = {collection: tree[subtree] for collection, tree in variables.items() if subtree in tree}
        except TypeError:
            variables = {}
        if "params" not in variables:
            raise ValueError(f"train.init_from_subtree: no {subtree!r} in the parameters of {path}")
    into = _train_option(config, "init_from_into", "")
    if into:  # the loaded model sits inside a wrapper (a TUR-wrapped backbone): the rest keeps its fresh values
        variables = _place_into(variables, into, state, path)
    expected = jax.tree_util.tree_structure(state.params)
    if jax.tree_util.tree_structure(variables["params"]) != expected:
        raise ValueError(f"train.init_from: the parameters in {path} do not fit the configured model")
    params = jax.device_put(variables["params"], shardings.params)
    ema = jax.device_put(variables["params"], shardings.ema_params) if state.ema_params else state.ema_params
    batch_stats = (jax.device_put(variables["batch_stats"], shardings.batch_stats)
                   if variables.get("batch_stats") else state.batch_stats)
    # Other model collections (e.g. a MoCo queue) continue from the source when it has them.
    model_state = {k: jax.device_put(variables[k], shardings.model_state[k]) if k in variables else v
                   for k, v in state.model_state.items()}
    _say(f"initialised from {path}")
    return state.replace(params=params, ema_params=ema, batch_stats=batch_stats, model_state=model_state)


def _should(step: int, every: int, num_steps: int) -> bool:
    return step == num_steps or (every > 0 and step % every == 0)


def train(config, workdir: str | pathlib.Path) -> dict[str, float]:
    """Train `config` in `workdir` (resuming from its latest checkpoint); returns the final metrics."""
    from tqdm import tqdm

    from jaxir.train.data import make_eval_dataset, make_source, make_train_iterator, task_degradations

    workdir = pathlib.Path(workdir)
    num_steps = int(config.train.num_steps)
    if num_steps <= 0:
        raise ValueError(f"train.num_steps must be positive, got {num_steps}")
    seed = int(_train_option(config, "seed", 0))
    log_every = int(_train_option(config, "log_every", 50))
    eval_every = int(_train_option(config, "eval_every", 0))
    ckpt_every = int(_train_option(config, "ckpt_every", 0))
    num_samples = int(_train_option(config, "num_samples", 3))
    monitor = StepMonitor(_train_option(config, "nan_policy", "skip"))
    is_writer = jax.process_index() == 0

    model, entry = build_model(config, compute_dtype(config))
    mesh = shd.make_mesh()
    progressive = config.data.get("progressive", None)
    for global_batch in (progressive["batch_sizes"] if progressive else [config.data.batch_size]):
        shd.check_batch_size(int(global_batch), mesh)
    tx, schedule = make_optimizer(config.optim, num_steps)
    decay = ema_decay(config.optim)
    method = _method(config)
    input_shape = init_input_shape(config, model, entry)
    state, shardings = create_sharded_state(
        model, tx, input_shape, seed, decay > 0, mesh,
        param_sharding=_train_option(config, "param_sharding", "replicated"),
        fsdp_min_size=int(_train_option(config, "fsdp_min_size", 2**16)), method=method)

    train_source = make_source(config.data.train, "train")
    train_iter = make_train_iterator(config.data, seed, train_source)
    checkpointer = _checkpointer(config, workdir)
    resumed = checkpointer.latest_step()
    if resumed is not None:
        target = abstract_state(model, tx, input_shape, decay > 0, shardings, seed, method)
        state = checkpointer.restore(target, train_iter, resumed)
        _say(f"resumed from {checkpointer.directory} at step {resumed}")
    elif _train_option(config, "init_from", ""):
        state = _init_from(config, state, shardings, _train_option(config, "init_from", ""))
    start = int(jax.device_get(state.step))
    writer = MetricWriter(workdir, enabled=is_writer, resume_step=start if resumed is not None else None)

    train_step = jit_train_step(
        make_train_step(remat.from_config(model, config), _loss_fn(config), tx, schedule, ema_decay=decay,
                        degradation=_degradation(config), task_degradations=task_degradations(train_source),
                        method=method, target_key=config.loss.get("target", None) or "target"),
        shardings, mesh)
    eval_step = _eval_step(config, model, entry, mesh)
    eval_dataset = make_eval_dataset(config.data, entry.pad_multiple)

    final: dict[str, float] = {}

    def evaluate_now(step: int) -> dict[str, float]:
        last = step == num_steps
        means, samples = run_eval(eval_step, state.variables(use_ema=decay > 0), eval_dataset, mesh, num_samples)
        writer.write(step, means, prefix="eval")
        _say(f"step {step} eval: " + " ".join(f"{k}={v:.4f}" for k, v in sorted(means.items())))
        if is_writer and samples:
            # One grid per eval, so `jaxir report` can show the restorations improving.
            save_sample_grid(samples, workdir / SAMPLES_DIR / f"step_{step:08d}.png")
        if last:
            final.update(means)
            if is_writer and samples:
                save_sample_grid(samples, workdir / SAMPLES_FILE)
        return means

    progress = tqdm(total=num_steps, initial=start, unit="step", disable=not is_writer, dynamic_ncols=True)
    try:
        last_log = (start, time.perf_counter())
        for step in range(start + 1, num_steps + 1):
            state, metrics = train_step(state, shd.shard_batch(next(train_iter), mesh))
            monitor.push(step, metrics)
            progress.update(1)
            if _should(step, log_every, num_steps):
                averages = monitor.averages()
                now = time.perf_counter()
                averages["steps_per_s"] = (step - last_log[0]) / max(now - last_log[1], 1e-9)
                last_log = (step, now)
                writer.write(step, averages)
                if "loss" in averages:  # absent when every step since the last line was rejected
                    final["train_loss"] = averages["loss"]
                    progress.set_postfix(loss=f"{averages['loss']:.4f}")
            eval_metrics = None
            if eval_dataset is not None and _should(step, eval_every, num_steps):
                eval_metrics = evaluate_now(step)
            if eval_metrics is not None or _should(step, ckpt_every, num_steps):
                monitor.flush()  # under 'halt', raise before saving anything after a bad step
                checkpointer.save(step, state, train_iter, metrics=eval_metrics)
        monitor.flush()
        if start == num_steps and eval_dataset is not None:  # resumed a finished run: report its scores
            evaluate_now(num_steps)
    finally:
        progress.close()
        checkpointer.wait()
        checkpointer.close()
        writer.close()
    final["step"] = num_steps
    final["rejected_steps"] = int(jax.device_get(state.rejected_steps))
    _say("final metrics: " + " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                      for k, v in sorted(final.items())))
    return final


# ----------------------------------------------------------------------------
# Evaluation and inference from a finished (or running) training.


def _restore_state(config, workdir: pathlib.Path, model, entry, which: str, mesh) -> TrainState:
    checkpointer = _checkpointer(config, workdir, read_only=True)
    try:
        step = {"latest": checkpointer.latest_step, "best": checkpointer.best_step}[which]()
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {workdir / CHECKPOINT_DIR}")
        # The optimizer state is part of the saved tree, so the restore target needs its structure.
        tx, _ = make_optimizer(config.optim, int(config.train.num_steps))
        use_ema = ema_decay(config.optim) > 0
        input_shape = init_input_shape(config, model, entry)
        method = _method(config)
        shardings = state_shardings(abstract_state(model, tx, input_shape, use_ema, method=method), tx, mesh,
                                    _train_option(config, "param_sharding", "replicated"),
                                    int(_train_option(config, "fsdp_min_size", 2**16)))
        return checkpointer.restore(abstract_state(model, tx, input_shape, use_ema, shardings, method=method),
                                    None, step)
    finally:
        checkpointer.close()


def load_inference_variables(config, workdir: str | pathlib.Path, which: str = "latest") -> dict:
    """Host copies of the variables to run the model: EMA parameters when the run kept them."""
    if which not in ("latest", "best"):
        raise ValueError(f"which must be 'latest' or 'best', got {which!r}")
    workdir = pathlib.Path(workdir)
    if not (workdir / CHECKPOINT_DIR).is_dir():
        raise FileNotFoundError(f"no checkpoints directory in {workdir}")
    model, entry = build_model(config)
    state = _restore_state(config, workdir, model, entry, which, shd.make_mesh())
    return jax.device_get(state.variables(use_ema=ema_decay(config.optim) > 0))


def evaluate(config, workdir_or_checkpoint: str | pathlib.Path, which: str = "latest") -> dict[str, float]:
    """Scores on config.data.eval of a training workdir's checkpoint or of a `jaxir convert` weights file."""
    from jaxir.train.data import make_eval_dataset

    if workdir_or_checkpoint is None:
        raise ValueError("evaluate needs a training workdir or a weights file")
    path = pathlib.Path(workdir_or_checkpoint)
    mesh = shd.make_mesh()
    if path.is_file():
        from jaxir import registry
        from jaxir.io import load_weights

        # A converted weights file names its own model; the config supplies data and metrics.
        name, kwargs, variables = load_weights(path)
        model = registry.build_model(name, **kwargs, dtype=compute_dtype(config))
        entry = registry.get_entry(name)
    elif path.is_dir():
        model, entry = build_model(config, compute_dtype(config))
        variables = load_inference_variables(config, path, which)
    else:
        raise FileNotFoundError(f"no training workdir or weights file at {path}")
    dataset = make_eval_dataset(config.data, entry.pad_multiple)
    if dataset is None:
        raise ValueError("config.data.eval is not set: nothing to evaluate on")
    variables = jax.device_put(variables, shd.replicated(mesh))
    means, _ = run_eval(_eval_step(config, model, entry, mesh), variables, dataset, mesh)
    return {k: float(v) for k, v in means.items()}
