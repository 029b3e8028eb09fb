"""Rematerialisation (`train.remat`): trade recomputation in the backward pass for activation memory.

Chosen submodules (blocks or stages) run under Flax's lifted `nn.checkpoint`, applied
from outside the model by a method interceptor while the train step applies it: no
model file changes, and parameter names (which conversion relies on) stay the same.

  mode    checkpointed submodules                    the forward keeps
  none    (no checkpoint at all)                     every intermediate the backward needs
  block   each block (NAFBlock, Restormer's          each block's input; one block's internals
          TransformerBlock, ConvIR/MIMO ResBlock...)  are recomputed at a time in the backward
  stage   each stage (a resolution level's stack     each stage's input; one stage at a time
          of blocks, where the model has one)

`train.remat_policy` says what a checkpointed submodule still keeps inside:
'nothing' (default), 'conv_outputs' (every Conv2d/ConvTranspose2d output is saved, so
only the cheap elementwise work, norms and attention around them are recomputed) or
'dots' (matrix products, `jax.checkpoint_policies.dots_saveable`).
`train.remat_modules` overrides the per-model defaults below: regular expressions matched
against a submodule's class name or its own name (e.g. 'encoder_level[1-4]_\\d+').

Gradients are the same function either way; `tests/test_remat.py` checks them equal and
that the compiled step recomputes. On XLA:CPU the step's temporary memory did not drop
(BENCHMARKS.md); the saving is for accelerators, whose schedulers are memory-aware.
"""
from __future__ import annotations

import contextvars
import re
from typing import Any, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.ad_checkpoint import checkpoint_name

MODES = ("none", "block", "stage")
POLICIES = ("nothing", "conv_outputs", "dots")
CONV_TAG = "jaxir_remat_conv"
CONV_CLASSES = ("Conv2d", "ConvTranspose2d", "Conv", "ConvTranspose")

# Per registered model: the submodules checkpointed in each mode, by class or module name.
DEFAULT_MODULES: dict[str, dict[str, tuple[str, ...]]] = {
    "nafnet": {"block": ("NAFBlock",)},
    "restormer": {"block": ("TransformerBlock",)},
    "mimo_unet": {"block": ("ResBlock",), "stage": ("ResStack",)},
    "convir": {"block": ("ResBlock",), "stage": ("ResStage",)},
    "xydeblur": {"block": ("EBlock", "DBlock")},
    "stripformer": {"block": ("IntraSA", "InterSA"), "stage": ("StripEncoder", "StripDecoder")},
    "p2ikt": {"block": ("ConvBNReLU",), "stage": ("StripBackbone",)},
}
DEFAULT_MODULES["nafnet_baseline"] = DEFAULT_MODULES["nafnet"]
DEFAULT_MODULES["mimo_unet_plus"] = DEFAULT_MODULES["mimo_unet"]
DEFAULT_MODULES["convir_derain"] = DEFAULT_MODULES["convir"]

# The module whose next __call__ is the checkpointed body itself (not to be wrapped again).
_ENTERING: contextvars.ContextVar = contextvars.ContextVar("jaxir_remat_entering", default=None)


def _policy(policy: str):
    if policy == "conv_outputs":
        return jax.checkpoint_policies.save_only_these_names(CONV_TAG)
    if policy == "dots":
        return jax.checkpoint_policies.dots_saveable
    return jax.checkpoint_policies.nothing_saveable


def _is_array(value) -> bool:
    return isinstance(value, (jax.Array, np.ndarray))


class RematModel:
    """A Linen module whose `apply` checkpoints the matching submodules; other attributes pass through."""

    def __init__(self, model: nn.Module, mode: str, policy: str = "nothing", keep: Sequence[str] = ()):
        self.model, self.mode, self.policy_name = model, mode, policy
        self._keep = [re.compile(p) for p in keep]
        self._policy = _policy(policy)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def _matches(self, module: nn.Module) -> bool:
        cls, own = type(module).__name__, module.name or ""
        return any(p.fullmatch(cls) or p.fullmatch(own) for p in self._keep)

    def _interceptor(self, next_fun, args, kwargs, context):
        module = context.module
        if _ENTERING.get() is module:  # the checkpointed body: run it
            _ENTERING.set(None)
            return next_fun(*args, **kwargs)
        if context.method_name != "__call__":
            return next_fun(*args, **kwargs)
        if self._matches(module):
            return self._checkpointed(module, args, kwargs)
        out = next_fun(*args, **kwargs)
        if self.policy_name == "conv_outputs" and type(module).__name__ in CONV_CLASSES:
            out = jax.tree.map(lambda v: checkpoint_name(v, CONV_TAG) if isinstance(v, jax.Array) else v, out)
        return out

    def _checkpointed(self, module: nn.Module, args, kwargs):
        # Only arrays go through the checkpoint; flags such as `train` stay Python values.
        positions = [i for i, a in enumerate(args) if _is_array(a)]

        def body(mdl, *arrays):
            full = list(args)
            for i, a in zip(positions, arrays):
                full[i] = a
            _ENTERING.set(mdl)
            return mdl(*full, **kwargs)

        return nn.checkpoint(body, policy=self._policy)(module, *[args[i] for i in positions])

    def apply(self, variables, *args, **kwargs):
        with nn.intercept_methods(self._interceptor):
            return self.model.apply(variables, *args, **kwargs)


def remat_model(model: nn.Module, model_name: str, mode: str = "none", policy: str = "nothing",
                modules: Sequence[str] | None = None):
    """`model` itself for mode 'none', else a `RematModel` keeping the configured (or default) submodules."""
    if mode not in MODES:
        raise ValueError(f"train.remat must be one of {MODES}, got {mode!r}")
    if policy not in POLICIES:
        raise ValueError(f"train.remat_policy must be one of {POLICIES}, got {policy!r}")
    if mode == "none":
        return model
    keep = tuple(modules) if modules else DEFAULT_MODULES.get(model_name, {}).get(mode, ())
    if not keep:
        raise ValueError(f"train.remat={mode!r}: no default {mode}s for model {model_name!r}; "
                         "name them in train.remat_modules (class or module-name patterns)")
    return RematModel(model, mode, policy, keep)


def from_config(model: nn.Module, config) -> Any:
    """The model as the train step should apply it under `config.train.remat*`."""
    train = config.train
    modules = train.get("remat_modules", None)
    return remat_model(model, config.model.name, train.get("remat", None) or "none",
                       train.get("remat_policy", None) or "nothing", list(modules) if modules else None)
