"""PyTorch state dict -> Flax variables, by one rule for every model.

Flax submodules are named after the official attributes, with list indices
folded in: the key `encoders.0.1.conv1.weight` addresses parameter `weight` of the
module at Flax path `encoders_0_1/conv1`. The layer class found at that path says
which Flax leaf the tensor becomes and how its layout changes (`TORCH_PARAMS` on
the classes in `jaxir.models.blocks`). Raw `self.param`s of a model keep the
official name and layout. A model with quirks adds `ConvertHooks`.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import numpy as np
from flax import traverse_util

from jaxir.models import blocks


class ConversionError(ValueError):
    """The state dict and the model do not correspond one to one."""


@dataclasses.dataclass(frozen=True)
class ConvertHooks:
    """Per-model exceptions to the generic rule.

    renames: (regex, replacement) applied in order to each official key first.
    ignored: regexes of official keys the forward pass does not need, each with the
        reason recorded in the model file (e.g. buffers jaxir recomputes).
    tensor_rules: official key regex -> function(array) -> array, applied instead of
        the layer's layout rule (for parameters stored in an unusual layout).
    """

    renames: tuple[tuple[str, str], ...] = ()
    ignored: tuple[str, ...] = ()
    tensor_rules: tuple[tuple[str, Callable[[np.ndarray], np.ndarray]], ...] = ()


_INDEX = re.compile(r"^\d+$")


def torch_key_to_module_path(key: str) -> tuple[tuple[str, ...], str]:
    """`a.0.b.weight` -> (('a_0', 'b'), 'weight')."""
    parts = key.split(".")
    leaf, module_parts = parts[-1], parts[:-1]
    path: list[str] = []
    for part in module_parts:
        if _INDEX.match(part) and path:
            path[-1] = f"{path[-1]}_{part}"
        else:
            path.append(part)
    return tuple(path), leaf


def module_classes(model: nn.Module, *init_args, **init_kwargs) -> tuple[dict, Any]:
    """Trace `model.init` abstractly; return ({flax path: layer class}, variable shapes)."""
    classes: dict[tuple[str, ...], type] = {}

    def record(next_fun, args, kwargs, context):
        classes.setdefault(tuple(context.module.path), type(context.module))
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        # Array keyword inputs are traced like the positional ones (they may be ShapeDtypeStructs);
        # flags such as train=... stay static.
        traced = {k: v for k, v in init_kwargs.items() if hasattr(v, "shape")}
        static = {k: v for k, v in init_kwargs.items() if k not in traced}
        shapes = jax.eval_shape(
            lambda args, kwargs: model.init(jax.random.key(0), *args, **kwargs, **static), init_args, traced
        )
    return classes, shapes


def _param_rules(cls: type) -> Mapping[str, tuple[str, str, Callable | None]] | None:
    rules = getattr(cls, "TORCH_PARAMS", None)
    if rules is not None:
        return rules
    for flax_cls, flax_rules in blocks.FLAX_TORCH_PARAMS.items():
        if issubclass(cls, flax_cls):
            return flax_rules
    return None


def convert_state_dict(
    state_dict: Mapping[str, np.ndarray],
    model: nn.Module,
    *init_args,
    hooks: ConvertHooks | None = None,
    **init_kwargs,
) -> dict:
    """Build the Flax variables of `model` from an official state dict.

    `init_args` are example inputs for tracing the model (shapes only). Raises
    ConversionError listing every official key left unused, every Flax leaf left
    unfilled, and every shape mismatch.
    """
    hooks = hooks or ConvertHooks()
    classes, shapes = module_classes(model, *init_args, **init_kwargs)
    expected = {
        path: leaf for path, leaf in traverse_util.flatten_dict(jax.tree_util.tree_map(lambda s: s, shapes)).items()
    }
    filled: dict[tuple[str, ...], np.ndarray] = {}
    unused, problems = [], []

    for key, value in state_dict.items():
        if any(re.search(pattern, key) for pattern in hooks.ignored):
            continue
        mapped_key = key
        for pattern, replacement in hooks.renames:
            mapped_key = re.sub(pattern, replacement, mapped_key)
        module_path, leaf = torch_key_to_module_path(mapped_key)
        cls = classes.get(module_path)
        rules = _param_rules(cls) if cls is not None else None
        if rules is not None and leaf in rules:
            collection, flax_leaf, transform = rules[leaf]
        elif rules is not None and leaf in getattr(cls, "TORCH_IGNORED", ()):
            continue
        else:
            collection, flax_leaf, transform = "params", leaf, None
        for pattern, rule in hooks.tensor_rules:
            if re.search(pattern, key):
                transform = rule
        target = (collection, *module_path, flax_leaf)
        if target not in expected:
            unused.append(key)
            continue
        array = np.asarray(value)
        if array.dtype == np.float16 or array.dtype.kind == "f":
            array = array.astype(np.float32)
        if transform is not None:
            array = transform(array)
        want = tuple(expected[target].shape)
        if array.shape != want:
            if array.size == int(np.prod(want)) and rules is None:
                # Raw parameters such as (1, C, 1, 1) scales live as (C,) or NHWC-shaped in Flax.
                array = _reshape_raw(array, want, key)
            else:
                problems.append(f"{key}: official shape {tuple(np.shape(value))} -> {array.shape}, Flax {'/'.join(target)} wants {want}")
                continue
        if target in filled:
            problems.append(f"{key}: Flax leaf {'/'.join(target)} filled twice")
            continue
        filled[target] = array

    missing = sorted("/".join(p) for p in expected if p not in filled)
    if unused or missing or problems:
        lines = []
        if unused:
            lines.append(f"{len(unused)} official keys have no Flax counterpart: {', '.join(unused[:40])}")
        if missing:
            lines.append(f"{len(missing)} Flax leaves were not filled: {', '.join(missing[:40])}")
        lines.extend(problems[:40])
        raise ConversionError("\n".join(lines))
    return traverse_util.unflatten_dict(filled)


def _reshape_raw(array: np.ndarray, want: tuple, key: str) -> np.ndarray:
    """Raw official parameters in channel-first shape (1, C, 1, 1) become channel-last."""
    if array.ndim == 4 and len(want) == 4 and array.shape[0] == want[0] and array.shape[1] == want[3]:
        return np.transpose(array, (0, 2, 3, 1))
    return array.reshape(want)
