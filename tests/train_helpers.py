"""A tiny model, tiny image sources and a tiny config for the training-stack tests.

Registered under test-only names so the tests need neither a real architecture nor downloaded data.
"""
from __future__ import annotations

import time
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxir import registry
from jaxir.train.data import register_source

TINY_MODEL = "tiny_train_test"
TINY_BN_MODEL = "tiny_train_test_bn"
TINY_SOURCE = "tiny_random_images"


class TinyNet(nn.Module):
    """Conv-ReLU-conv residual net returning [half-resolution, full-resolution] outputs (multi-scale)."""

    in_channels: int = 3
    features: int = 8
    use_batch_norm: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        if x.shape[1] % 4 or x.shape[2] % 4:
            raise ValueError(f"TinyNet needs H and W divisible by 4, got {x.shape}")
        x = x.astype(self.dtype)
        # No bias before BatchNorm: its gradient is zero up to rounding, which Adam would amplify.
        y = nn.Conv(self.features, (3, 3), use_bias=not self.use_batch_norm, dtype=self.dtype)(x)
        if self.use_batch_norm:
            y = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(y)
        y = nn.Conv(self.features, (3, 3), dtype=self.dtype)(nn.relu(y))
        y = nn.Conv(3, (3, 3), dtype=self.dtype)(nn.relu(y))
        full = (x[..., :3] + y).astype(jnp.float32)
        half = nn.avg_pool(full, (2, 2), strides=(2, 2))
        return [half, full]


def _register() -> None:
    for name, bn in ((TINY_MODEL, False), (TINY_BN_MODEL, True)):
        if name not in registry._REGISTRY:
            registry.register_model(registry.ModelEntry(
                name=name, builder=lambda bn=bn, **kw: TinyNet(use_batch_norm=bn, **kw), pad_multiple=4))
    register_source(TINY_SOURCE, RandomImages)


class RandomImages:
    """`num` random uint8 RGB images (float32 when some are NaN), deterministic in `seed`.

    `delay` seconds are slept per record read (only timing changes: lets a test kill a run
    mid-way); `nan_records` are indices whose image is all NaN.
    """

    def __init__(self, num: int = 16, height: int = 24, width: int = 24, seed: int = 0,
                 delay: float = 0.0, nan_records: tuple[int, ...] = ()):
        rng = np.random.default_rng(seed)
        # Smooth-ish images (a coarse grid upsampled) so a restoration net has something to learn.
        coarse = rng.integers(0, 256, (num, height // 4 + 1, width // 4 + 1, 3))
        images = np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2)[:, :height, :width]
        self.images = images.astype(np.uint8)
        self.delay = delay
        self.nan_records = set(nan_records)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        if self.delay:
            time.sleep(self.delay)
        image = self.images[index]
        if self.nan_records:
            image = image.astype(np.float32) / 255.0
            if index in self.nan_records:
                image = np.full_like(image, np.nan)
        return {"target": image, "name": f"img{index}"}


def tiny_config(num_steps: int = 12, with_eval: bool = True, **train_overrides) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model = {"name": TINY_MODEL, "kwargs": {"features": 8}}
    c.data = {
        "train": {"source": TINY_SOURCE, "kwargs": {"num": 16, "height": 24, "width": 24, "seed": 0}},
        "eval": {"source": TINY_SOURCE, "kwargs": {"num": 2, "height": 22, "width": 18, "seed": 1}},
        "crop_size": 16,
        "batch_size": 8,
        "degradation": [{"name": "gaussian_noise", "sigma": 0.1}],
        "workers": 0,
        "eval_batch_size": 2,
        "eval_seed": 0,
    }
    c.loss = {"terms": [{"name": "l1", "weight": 1.0}], "multiscale": "bilinear"}
    c.optim = {"lr": 2e-3, "b1": 0.9, "b2": 0.99, "weight_decay": 1e-4, "schedule": "cosine",
               "warmup_steps": 2, "min_lr": 1e-5, "clip_norm": 1.0, "ema_decay": 0.9}
    c.train = {"num_steps": num_steps, "seed": 0, "log_every": 2, "eval_every": 0, "ckpt_every": 4,
               "keep_checkpoints": 2, "compute_dtype": "float32", "param_sharding": "replicated",
               "fsdp_min_size": 64, "nan_policy": "skip", "num_samples": 2}
    c.train.update(train_overrides)
    if not with_eval:
        del c.data["eval"]
    return c


_register()
