"""TUR: task-uncertainty regularisation for all-in-one restoration, as a plug-in of the loop.

Wu, Jiang, Wang, Jiang, Liu. "Debiased All-in-one Image Restoration with Task
Uncertainty Regularization", AAAI 2025. Official code: Aitical/TUR (commit 18b495b):
basicsr/archs/PromptIR_uncertainty_arch.py (`var_conv`), basicsr/losses/
uncertainty_loss.py and airnet_uncertainty_loss.py (the loss).

Model: any registered backbone plus an uncertainty head on its last decoder
features (the input of the backbone's submodule `feature_module`, PromptIR's and
Restormer's `output` conv): 3x3 conv, ELU, 3x3 conv, ELU, 3x3 conv to the image
channels, Softplus. In training the wrapper sows the map under `aux/uncertainty`;
in inference only the backbone runs (the paper: no change at test time).

Loss (term 'tur'): for each task t present in the batch (labels `batch['task']`),
  u_t    = mean over t's samples of their uncertainty maps (a per-pixel map),
  loss_t = L1(pred / u_t, target / u_t) + 2 log(mean(u_t)),
and the total is the mean of loss_t over the tasks present. (The official AirNet
variant adds eps = 1e-6 to u_t: option `eps`.)
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxir.losses import AUX_COLLECTION, LossContext, register_term
from jaxir.methods import TrainMethod
from jaxir.models.blocks import Conv2d
from jaxir.parity import input_channels

UNCERTAINTY = "uncertainty"
NUM_TASKS = 7  # jaxir's task ids (data_pipelines.mixtures.TASK_IDS) are 0..6


class UncertaintyHead(nn.Module):
    """The official `var_conv`: conv3x3-ELU-conv3x3-ELU-conv3x3-Softplus (with biases)."""

    out_channels: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        c, dt = x.shape[-1], self.dtype
        x = nn.elu(Conv2d(c, 3, padding=1, dtype=dt, name="var_conv_0")(x))
        x = nn.elu(Conv2d(c, 3, padding=1, dtype=dt, name="var_conv_2")(x))
        return nn.softplus(Conv2d(self.out_channels, 3, padding=1, dtype=dt, name="var_conv_4")(x)
                           .astype(jnp.float32))


class TURModel(nn.Module):
    """`backbone` plus the uncertainty head on the input of `backbone.<feature_module>`.

    output_index: which of a multi-output backbone's training outputs is the restored image (the
    head's channels; AirNet's (restored, logits): 0). Extra forward arguments go to the backbone.
    """

    backbone: nn.Module
    feature_module: str = "output"
    dtype: Any = jnp.float32
    output_index: int = -1

    @property
    def inp_channels(self) -> int:
        return input_channels(self.backbone)

    @nn.compact
    def __call__(self, x, train: bool = False, **kwargs):
        if not (train or self.is_initializing()):
            return self.backbone(x, train=False, **kwargs)
        target_path = (*self.path, "backbone", *self.feature_module.split("/"))
        captured = []

        def grab(next_fun, args, kwargs, context):
            if context.method_name == "__call__" and tuple(context.module.path) == target_path:
                captured.append(args[0])
            return next_fun(*args, **kwargs)

        with nn.intercept_methods(grab):
            out = self.backbone(x, train=train, **kwargs)
        if len(captured) != 1:
            raise ValueError(f"TUR: backbone submodule {self.feature_module!r} was called {len(captured)} times; "
                             "set feature_module to the layer whose input is the last decoder features")
        pred = out[self.output_index] if isinstance(out, (list, tuple)) else out
        uncertainty = UncertaintyHead(pred.shape[-1], self.dtype, name="uncertainty_head")(captured[0])
        if train:
            self.sow(AUX_COLLECTION, UNCERTAINTY, uncertainty)
        return out


def wrap(model: nn.Module, feature_module: str = "output", output_index: int = -1) -> TURModel:
    return TURModel(model, feature_module, getattr(model, "dtype", jnp.float32), output_index)


class TaskUncertainty(TrainMethod):
    """config.method = {'name': 'tur', 'kwargs': {'feature_module': ...}}: the backbone gains the uncertainty
    head; the 'tur' loss term (registered on import) reads the sown maps and the batch's task labels."""

    name = "tur"

    def __init__(self, feature_module: str = "output", output_index: int = -1):
        self.feature_module, self.output_index = feature_module, int(output_index)

    def wrap_model(self, model: nn.Module, entry: Any) -> TURModel:
        return wrap(model, self.feature_module, self.output_index)


def task_uncertainty_loss(pred, target, uncertainty, task, num_tasks: int = NUM_TASKS, eps: float = 0.0):
    """The TUR loss (module docstring) of NHWC pred/target/uncertainty and integer task labels (B,)."""
    pred, target, uncertainty = (a.astype(jnp.float32) for a in (pred, target, uncertainty))
    masks = jax.nn.one_hot(task, num_tasks, dtype=jnp.float32)  # (B, T)
    counts = jnp.sum(masks, axis=0)
    present = counts > 0
    per_task = jnp.maximum(counts, 1.0)[:, None, None, None]
    u = jnp.einsum("bt,bhwc->thwc", masks, uncertainty) / per_task + eps
    u = jnp.where(present[:, None, None, None], u, 1.0)  # absent tasks: no 0/0 in values or gradients
    abs_err = jnp.einsum("bt,bhwc->thwc", masks, jnp.abs(pred - target))
    l1 = jnp.sum(abs_err / u, axis=(1, 2, 3)) / (counts.clip(1.0) * pred[0].size)
    per_task_loss = l1 + 2.0 * jnp.log(jnp.mean(u, axis=(1, 2, 3)))
    return jnp.sum(jnp.where(present, per_task_loss, 0.0)) / jnp.sum(present)


def _term(num_tasks: int = NUM_TASKS, eps: float = 0.0):
    def loss(pred, target, context: LossContext):
        maps = context.sown(UNCERTAINTY)
        if len(maps) != 1 or context.task is None:
            raise ValueError("loss term 'tur' needs the TUR-wrapped model (config.method.name='tur') and a "
                             "task-labelled batch (an all-in-one mixture)")
        return task_uncertainty_loss(pred, target, maps[0], context.task, int(num_tasks), float(eps))
    return loss


register_term("tur", _term, ("num_tasks", "eps"), uses_context=True)
