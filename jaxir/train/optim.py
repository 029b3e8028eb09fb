"""Optimizer from `config.optim`: AdamW, learning-rate schedule, global-norm clipping, parameter EMA.

Config keys (ml_collections.ConfigDict or dict):
  optimizer: 'adamw' (default) or 'rmsprop' (torch.optim.RMSprop defaults: alpha = `rms_decay`
             0.99, eps added outside the square root, no momentum; weight_decay unused)
  lr, b1, b2, eps, weight_decay, rms_decay
  schedule: 'cosine' (linear warmup to lr, cosine decay to min_lr at the last step, as
            NAFNet/Restormer/ConvIR train), 'multistep' (lr * gamma**k after the k-th of
            `milestones`, as MIMO-UNet), 'cosine_restarts' (BasicSR's
            CosineAnnealingRestartCyclicLR, as Restormer: one cosine per entry of `periods`,
            from lr * restart_weights[i] down to eta_mins[i]), 'gradual_warmup_cosine' (ConvIR's
            GradualWarmupScheduler then CosineAnnealingLR, stepped per epoch: lr * e / W in epoch
            e <= W of the warmup, then a cosine from lr, reached in epoch W + 1, over the remaining
            epochs to min_lr), 'lambda_linear' (latent diffusion's LambdaLinearScheduler, one cycle:
            lr times f_start + (f_max - f_start) n / W in the W = warmup_steps, then
            f_min + (f_max - f_min) (C - n) / C, C = cycle_length, default train.num_steps), or
            'constant' (after the warmup)
  warmup_steps, min_lr, milestones, gamma, periods, restart_weights, eta_mins, f_start, f_max, f_min,
            cycle_length
  steps_per_epoch: when > 0 the rate is held for each epoch at its value at the epoch's first step,
            as PyTorch schedulers stepped once per epoch (0: a new rate every step)
  clip_norm: global-norm clipping threshold (0 or None: off)
  ema_decay: parameter EMA decay (0 or None: no EMA)
  lr_multipliers: {name: factor}: the updates of parameters below a subtree called `name` are scaled by
            `factor` (a per-group learning rate, as torch's param groups: weight decay scales too)
"""
from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp

import optax

SCHEDULES = ("cosine", "multistep", "cosine_restarts", "constant", "gradual_warmup_cosine", "lambda_linear")
OPTIMIZERS = ("adamw", "rmsprop")


def _get(cfg: Mapping[str, Any], key: str, default=None):
    value = cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)
    return default if value is None else value


def make_schedule(cfg: Mapping[str, Any], num_steps: int) -> optax.Schedule:
    """Learning rate as a function of the optimizer step."""
    schedule = _step_schedule(cfg, num_steps)
    steps_per_epoch = int(_get(cfg, "steps_per_epoch", 0))
    if steps_per_epoch < 0:
        raise ValueError(f"optim.steps_per_epoch must be >= 0, got {steps_per_epoch}")
    if steps_per_epoch == 0:
        return schedule
    return lambda step: schedule(step - step % steps_per_epoch)


def _gradual_warmup_cosine(lr: float, min_lr: float, warmup: int, num_steps: int, steps_per_epoch: int):
    """ConvIR's per-epoch rates (pytorch-gradual-warmup-lr with multiplier 1, then CosineAnnealingLR with
    T_max = epochs - W) as a function of the step; exact at each epoch's first step."""
    if steps_per_epoch <= 0 or warmup % steps_per_epoch or num_steps % steps_per_epoch:
        raise ValueError("optim.schedule='gradual_warmup_cosine' needs optim.steps_per_epoch > 0 dividing "
                         f"warmup_steps={warmup} and train.num_steps={num_steps}")
    warm_epochs, epochs = warmup // steps_per_epoch, num_steps // steps_per_epoch
    if epochs <= warm_epochs:
        raise ValueError(f"gradual_warmup_cosine: {epochs} epochs leave none after a {warm_epochs}-epoch warmup")

    def schedule(step):
        done = step / steps_per_epoch  # epochs completed before this step
        warm = lr * (done + 1) / max(warm_epochs, 1)
        cos = min_lr + 0.5 * (lr - min_lr) * (1 + jnp.cos(jnp.pi * (done - warm_epochs) / (epochs - warm_epochs)))
        return jnp.where(done < warm_epochs, warm, cos)

    return schedule


def _lambda_linear(lr: float, warmup: int, f_start: float, f_max: float, f_min: float, cycle: int):
    """`ldm.lr_scheduler.LambdaLinearScheduler` with one cycle (as every latent-diffusion config uses it)."""
    if cycle <= 0:
        raise ValueError(f"optim.cycle_length must be positive, got {cycle}")

    def schedule(step):
        step = jnp.asarray(step, jnp.float32)  # cycles of 1e13 steps (GenDeg's "no decay") overflow int32
        warm = f_start + (f_max - f_start) * step / max(warmup, 1)
        linear = f_min + (f_max - f_min) * (1.0 - step / float(cycle))
        return lr * jnp.where(step < warmup, warm, linear)

    return schedule


def scale_subtrees(multipliers: Mapping[str, float]) -> optax.GradientTransformation:
    """Scale the updates of parameters whose path passes through a subtree named in `multipliers`."""
    multipliers = {str(k): float(v) for k, v in dict(multipliers).items()}

    def update(updates, state, params=None):
        def scale(path, u):
            names = {getattr(k, "key", getattr(k, "name", None)) for k in path}
            factor = 1.0
            for name, value in multipliers.items():
                if name in names:
                    factor *= value
            return u if factor == 1.0 else u * factor

        return jax.tree_util.tree_map_with_path(scale, updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def _step_schedule(cfg: Mapping[str, Any], num_steps: int) -> optax.Schedule:
    lr = float(_get(cfg, "lr"))
    name = _get(cfg, "schedule", "cosine")
    warmup = int(_get(cfg, "warmup_steps", 0))
    if name not in SCHEDULES:
        raise ValueError(f"optim.schedule must be one of {SCHEDULES}, got {name!r}")
    if warmup < 0 or warmup > num_steps:
        raise ValueError(f"optim.warmup_steps={warmup} must be between 0 and train.num_steps={num_steps}")

    if name == "cosine":
        min_lr = float(_get(cfg, "min_lr", 0.0))
        return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(num_steps, warmup + 1), min_lr)

    if name == "gradual_warmup_cosine":
        return _gradual_warmup_cosine(lr, float(_get(cfg, "min_lr", 0.0)), warmup, num_steps,
                                      int(_get(cfg, "steps_per_epoch", 0)))

    if name == "lambda_linear":
        return _lambda_linear(lr, warmup, float(_get(cfg, "f_start", 1e-6)), float(_get(cfg, "f_max", 1.0)),
                              float(_get(cfg, "f_min", 1.0)), int(_get(cfg, "cycle_length", num_steps)))

    if name == "cosine_restarts":
        periods = [int(p) for p in _get(cfg, "periods", ())]
        weights = [float(w) for w in _get(cfg, "restart_weights", [1.0] * len(periods))]
        eta_mins = [float(e) for e in _get(cfg, "eta_mins", ())]
        if not periods or not (len(periods) == len(weights) == len(eta_mins)) or min(periods) <= 0:
            raise ValueError("optim.periods, restart_weights and eta_mins need the same non-zero length and "
                             f"positive periods, got {periods}, {weights}, {eta_mins}")
        if warmup:
            raise ValueError("optim.schedule='cosine_restarts' takes no warmup_steps (BasicSR's has none)")

        def cosine(peak, floor, period):
            return lambda t: floor + 0.5 * (peak - floor) * (1 + jnp.cos(jnp.pi * jnp.minimum(t, period) / period))

        pieces = [cosine(lr * w, e, p) for p, w, e in zip(periods, weights, eta_mins)]
        boundaries = [sum(periods[:i + 1]) for i in range(len(periods) - 1)]
        return optax.join_schedules(pieces, boundaries)

    if name == "multistep":
        milestones = [int(m) for m in _get(cfg, "milestones", ())]
        gamma = float(_get(cfg, "gamma", 0.5))
        if sorted(milestones) != milestones or any(m <= warmup for m in milestones):
            raise ValueError(f"optim.milestones must be increasing steps after the warmup, got {milestones}")
        main = optax.piecewise_constant_schedule(lr, {m - warmup: gamma for m in milestones})
    else:
        main = optax.constant_schedule(lr)
    if warmup == 0:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])


def make_optimizer(cfg: Mapping[str, Any], num_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """(clip-then-AdamW (or RMSprop) transformation, its schedule)."""
    schedule = make_schedule(cfg, num_steps)
    name = _get(cfg, "optimizer", "adamw")
    if name not in OPTIMIZERS:
        raise ValueError(f"optim.optimizer must be one of {OPTIMIZERS}, got {name!r}")
    if name == "rmsprop":
        adamw = optax.rmsprop(schedule, decay=float(_get(cfg, "rms_decay", 0.99)), eps=float(_get(cfg, "eps", 1e-8)),
                              eps_in_sqrt=False)
    else:
        adamw = optax.adamw(
            learning_rate=schedule,
            b1=float(_get(cfg, "b1", 0.9)),
            b2=float(_get(cfg, "b2", 0.999)),
            eps=float(_get(cfg, "eps", 1e-8)),
            weight_decay=float(_get(cfg, "weight_decay", 0.0)),
        )
    multipliers = _get(cfg, "lr_multipliers", None)
    if multipliers:
        multipliers = multipliers.to_dict() if hasattr(multipliers, "to_dict") else dict(multipliers)
        adamw = optax.chain(adamw, scale_subtrees(multipliers))
    clip_norm = _get(cfg, "clip_norm", 0.0)
    if clip_norm:
        return optax.chain(optax.clip_by_global_norm(float(clip_norm)), adamw), schedule
    return adamw, schedule


def ema_decay(cfg: Mapping[str, Any]) -> float:
    decay = float(_get(cfg, "ema_decay", 0.0))
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"optim.ema_decay must be in [0, 1), got {decay}")
    return decay


def update_ema(ema_params: Any, new_params: Any, decay: float) -> Any:
    """ema <- decay * ema + (1 - decay) * params (optax's incremental update)."""
    return optax.incremental_update(new_params, ema_params, step_size=1.0 - decay)

