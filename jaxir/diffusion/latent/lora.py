"""LoRA (Hu et al., ICLR 2022) on the kernels of Linear and Conv2d layers, as pure functions of params.

A target kernel W (Linear (I, O); conv (kh, kw, I, O)) gets W + (alpha / r) A·B with A (I, r) /
(kh, kw, I, r) Gaussian (std 1/r, kohya's LoCon init scale is immaterial once trained) and B (r, O)
zero, so an initialised adapter leaves the model unchanged. For a Linear this is the parallel branch
x A B; for a conv it is kohya/LyCORIS's LoCon (a kxk conv to rank r, then 1x1). Because the branch is
linear, `merge` gives exactly the adapted network, and training differentiates through `merge` with the
base params frozen. `from_state_dict` reads kohya-style `<official module>.lora_down.weight` /
`.lora_up.weight` (+ optional `.alpha`) keys named after the official modules.
"""
from __future__ import annotations

import re
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxir.convert.state_dict import torch_key_to_module_path

# The U-Net's attention projections and feed-forward (diffusers/kohya's default targets) and,
# optionally, its ResBlock convs.
ATTENTION_TARGETS = r"transformer_blocks_\d+/(attn[12]/(to_q|to_k|to_v|to_out_0)|ff/(net_0/proj|net_2))/kernel$"
CONV_TARGETS = r"(in_layers_2|out_layers_3|proj_in|proj_out)/kernel$"


def _path(keys) -> str:
    return "/".join(keys)


def init(params, key, rank: int = 4, alpha: float | None = None, targets: str = ATTENTION_TARGETS) -> dict:
    """{'/'-joined kernel path: {'A', 'B', 'alpha'}} for every kernel whose path matches `targets`."""
    flat = traverse_util.flatten_dict(params)
    lora = {}
    for i, (keys, w) in enumerate(sorted(flat.items())):
        path = _path(keys)
        if not re.search(targets, path) or w.ndim not in (2, 4):
            continue
        a = jax.random.normal(jax.random.fold_in(key, i), (*w.shape[:-1], rank), jnp.float32) / rank
        lora[path] = {"A": a, "B": jnp.zeros((rank, w.shape[-1]), jnp.float32),
                      "alpha": jnp.asarray(float(alpha if alpha is not None else rank))}
    if not lora:
        raise ValueError(f"no kernel matches the LoRA targets {targets!r}")
    return lora


def delta(adapter: Mapping) -> jax.Array:
    rank = adapter["B"].shape[0]
    return jnp.tensordot(adapter["A"], adapter["B"], axes=1) * (adapter["alpha"] / rank)


def merge(params, lora: Mapping, scale: float = 1.0):
    """Base params with every adapter folded in: W + scale * (alpha / r) A B."""
    flat = traverse_util.flatten_dict(params)
    by_path = {_path(k): k for k in flat}
    for path, adapter in lora.items():
        if path not in by_path:
            raise KeyError(f"LoRA target {path} is not a parameter of the model")
        keys = by_path[path]
        flat[keys] = flat[keys] + (scale * delta(adapter)).astype(flat[keys].dtype)
    return traverse_util.unflatten_dict(flat)


def from_state_dict(state_dict: Mapping[str, np.ndarray], params) -> dict:
    """kohya-style `<module>.lora_down.weight` (r, I[, kh, kw]) / `.lora_up.weight` (O, r[, 1, 1]) / `.alpha`."""
    flat = {_path(k): v for k, v in traverse_util.flatten_dict(params).items()}
    lora = {}
    for key in state_dict:
        if not key.endswith(".lora_down.weight"):
            continue
        module = key[: -len(".lora_down.weight")]
        module_path, _ = torch_key_to_module_path(module + ".weight")
        path = _path(module_path) + "/kernel"
        if path not in flat:
            raise KeyError(f"{key}: no kernel {path} in the model")
        down = np.asarray(state_dict[key], np.float32)
        up = np.asarray(state_dict[module + ".lora_up.weight"], np.float32)
        rank = down.shape[0]
        if down.ndim == 4:  # conv: down (r, I, kh, kw) -> (kh, kw, I, r); up (O, r, 1, 1) -> (r, O)
            a = np.transpose(down, (2, 3, 1, 0))
            b = np.transpose(up.reshape(up.shape[0], rank))
        else:
            a, b = np.transpose(down), np.transpose(up)
        alpha = float(np.asarray(state_dict.get(module + ".alpha", rank)))
        if a.shape[:-1] != flat[path].shape[:-1] or b.shape[-1] != flat[path].shape[-1]:
            raise ValueError(f"{key}: LoRA shapes {a.shape}, {b.shape} do not fit {path} {flat[path].shape}")
        lora[path] = {"A": jnp.asarray(a), "B": jnp.asarray(b), "alpha": jnp.asarray(alpha)}
    if not lora:
        raise ValueError("no '.lora_down.weight' keys in the state dict")
    return lora
