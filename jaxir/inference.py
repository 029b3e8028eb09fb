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


def make_sample_fn(entry, model, variables, num_samples: int, seed: int = 0, fold_calls: bool = False):
    """NHWC batch -> (average of K stochastic restorations, one of them), for models with a sampler.

    fold_calls: draw call i's noise from fold_in(key(seed), i) (fresh noise per image of a dataset)
    instead of key(seed) every call."""
    if entry.stochastic_restore is None:
        raise ValueError(f"{entry.name} is deterministic; --samples needs a stochastic model (e.g. dvsr)")
    channels = input_channels(model)
    run = jax.jit(lambda v, x, key: entry.stochastic_restore(model, v, x, key, num_samples))
    calls = [0]

    def predict(batch: np.ndarray):
        if batch.ndim != 4 or batch.shape[-1] != channels:
            raise ValueError(f"model expects {channels}-channel images, got an image of shape {batch.shape[1:]}")
        h, w = batch.shape[1:3]
        padded = pad_for_model(jnp.asarray(batch, jnp.float32), entry.pad_multiple, entry.min_size)
        key = jax.random.key(seed)
        if fold_calls:
            key = jax.random.fold_in(key, calls[0])
            calls[0] += 1
        average, sample = run(variables, padded, key)
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
    return make_restore_fn(model, variables, name, tile, overlap, samples, seed)


def make_restore_fn(model, variables, name: str, tile: int = 0, overlap: int = 32, samples: int = 0,
                    seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """HWC float image -> its restoration by registered model `name` (whole, or in tiles of `tile` pixels).

    With `samples` = K > 0 (stochastic models only) it returns (average of K samples, one sample).
    The function's `channels` attribute is the model's input channel count.
    """
    entry = registry.get_entry(name)
    if tile and tile < entry.min_size:
        raise ValueError(f"tile {tile} is below the smallest input {name} accepts ({entry.min_size})")
    if samples:
        if tile:
            raise ValueError("--samples and --tile cannot be combined")
        sample_fn = make_sample_fn(entry, model, variables, samples, seed)

        def sample(image: np.ndarray):
            return tuple(out[0] for out in sample_fn(image[None]))

        sample.channels = input_channels(model)
        return sample
    predict = make_predict_fn(model, variables, entry.pad_multiple, entry.min_size)

    def restore(image: np.ndarray) -> np.ndarray:
        return tiled_apply(predict, image, tile, overlap) if tile else predict(image[None])[0]

    restore.channels = input_channels(model)
    return restore


def restore_pixels(restore: Callable[[np.ndarray], np.ndarray], model_channels: int,
                   pixels: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Restores an image in its own layout; returns pixels of the same shape and dtype, and notes.

    pixels: HW or HWC with 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA) channels;
    uint8, uint16, or float in [0, 1]. `restore` maps a float HWC image with
    `model_channels` channels to its restoration. The model sees float values
    (integers / their peak); the result is rounded back to the input's bit depth.
    Grey goes through an RGB model as three equal channels and comes back as their
    mean; colour through a grey model one channel at a time. Alpha is not shown to
    the model and is returned unchanged.
    """
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or pixels.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"expected an HW or HWC image with 1-4 channels, got shape {pixels.shape}")
    if pixels.dtype == np.uint8 or pixels.dtype == np.uint16:
        peak = float(np.iinfo(pixels.dtype).max)
    elif np.issubdtype(pixels.dtype, np.floating):
        peak = 1.0
    else:
        raise ValueError(f"expected uint8, uint16 or float pixels, got {pixels.dtype}")
    has_alpha = pixels.shape[-1] in (2, 4)
    colour = pixels[..., :-1] if has_alpha else pixels
    image = colour.astype(np.float32) / np.float32(peak)
    notes: list[str] = []
    if model_channels == image.shape[-1]:
        restored = restore(image)
    elif model_channels == 3 and image.shape[-1] == 1:
        # Mean of the clamped channels: the grey of what the RGB output would show.
        restored = np.mean(np.clip(restore(np.repeat(image, 3, axis=-1)), 0.0, 1.0), axis=-1, keepdims=True)
    elif model_channels == 1 and image.shape[-1] == 3:
        notes.append("the model is greyscale: each colour channel was restored on its own")
        restored = np.concatenate([restore(image[..., c:c + 1]) for c in range(3)], axis=-1)
    else:
        raise ValueError(f"the model takes {model_channels}-channel inputs; a {image.shape[-1]}-channel image "
                         "cannot be given to it")
    restored = np.clip(np.asarray(restored, np.float32), 0.0, 1.0)
    if peak != 1.0:
        restored = np.round(restored * np.float32(peak)).astype(pixels.dtype)
    else:
        restored = restored.astype(pixels.dtype)
    if has_alpha:
        restored = np.concatenate([restored, pixels[..., -1:]], axis=-1)
    return restored, notes
