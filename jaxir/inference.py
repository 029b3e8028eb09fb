"""Whole-image inference for any registered model: padding, channel checks, optional tiling."""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxir import registry
from jaxir.ops.tiling import tiled_apply
from jaxir.parity import input_channels, restored_output
from jaxir.train.step import pad_for_model


def make_predict_fn(model, variables, pad_multiple: int = 1, min_size: int = 1) -> Callable[[np.ndarray], np.ndarray]:
    """NHWC batch -> full-resolution restoration (`restored_output`), same H and W as the input.

    Inputs are reflect-padded at the bottom/right to the model's size multiple (and
    minimum size) and the result cropped back, as the official test scripts do.
    """
    channels = input_channels(model)
    apply = jax.jit(lambda v, x: restored_output(model, model.apply(v, x, train=False)))

    def predict(batch: np.ndarray) -> np.ndarray:
        if batch.ndim != 4 or batch.shape[-1] != channels:
            raise ValueError(f"model expects {channels}-channel images, got an image of shape {batch.shape[1:]}")
        h, w = batch.shape[1:3]
        padded = pad_for_model(jnp.asarray(batch, jnp.float32), pad_multiple, min_size)
        return np.asarray(apply(variables, padded))[:, :h, :w]

    return predict


def make_sample_fn(entry, model, variables, num_samples: int, seed: int = 0):
    """NHWC batch -> (average of K stochastic restorations, one of them), for models with a sampler."""
    if entry.stochastic_restore is None:
        raise ValueError(f"{entry.name} is deterministic; --samples needs a stochastic model (e.g. dvsr)")
    channels = input_channels(model)
    run = jax.jit(lambda v, x, key: entry.stochastic_restore(model, v, x, key, num_samples))

    def predict(batch: np.ndarray):
        if batch.ndim != 4 or batch.shape[-1] != channels:
            raise ValueError(f"model expects {channels}-channel images, got an image of shape {batch.shape[1:]}")
        h, w = batch.shape[1:3]
        padded = pad_for_model(jnp.asarray(batch, jnp.float32), entry.pad_multiple, entry.min_size)
        average, sample = run(variables, padded, jax.random.key(seed))
        return np.asarray(average)[:, :h, :w], np.asarray(sample)[:, :h, :w]

    return predict


def load_restorer(weights=None, config=None, workdir=None, overrides=(), tile: int = 0, overlap: int = 32,
                  samples: int = 0, seed: int = 0):
    """HWC image -> restored HWC image, from converted weights or a training run's checkpoint.

    With `samples` = K > 0 (stochastic models only) the restorer returns (average of K samples,
    one sample) instead.
    """
    if weights:
        from jaxir.io import load_weights

        name, kwargs, variables = load_weights(weights)
        model = registry.build_model(name, **kwargs)
    elif config and workdir:
        from jaxir.config import apply_overrides, load_config
        from jaxir.train.loop import load_inference_variables

        cfg = apply_overrides(load_config(config), list(overrides))
        name = cfg.model.name
        model = registry.build_model(name, **dict(cfg.model.get("kwargs", {})))
        variables = load_inference_variables(cfg, workdir)
    else:
        raise ValueError("restore needs --weights FILE, or --config FILE with --workdir DIR")
    entry = registry.get_entry(name)
    if samples:
        if tile:
            raise ValueError("--samples and --tile cannot be combined")
        sample_fn = make_sample_fn(entry, model, variables, samples, seed)
        return lambda image: tuple(out[0] for out in sample_fn(image[None]))
    predict = make_predict_fn(model, variables, entry.pad_multiple, entry.min_size)

    def restore(image: np.ndarray) -> np.ndarray:
        if tile:
            if tile < entry.min_size:
                raise ValueError(f"--tile {tile} is below the smallest input {name} accepts ({entry.min_size})")
            return tiled_apply(predict, image, tile, overlap)
        return predict(image[None])[0]

    return restore
