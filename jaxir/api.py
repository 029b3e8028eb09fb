"""The Python entry points: build a model, load weights, restore an image.

    import jaxir
    model = jaxir.load_weights("nafnet-gopro-width32", "NAFNet-GoPro-width32.pth")
    restored = jaxir.restore(PIL.Image.open("blurry.png"), model=model, tile=512)

Names are registered models (`jaxir.model_names()`, built with the kwargs given)
or paper configurations derived from the experiment recipes
(`jaxir.paper_config_names()`: `"nafnet-gopro-width32"`, `"restormer-dpdd-dual"`, ...),
whose kwargs may be overridden. A model is the pair (Linen module, variables).
"""
from __future__ import annotations

import pathlib
import warnings
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from jaxir import registry
from jaxir.paper_configs import get_paper_config, paper_configs

OFFICIAL_SUFFIXES = (".pth", ".pt", ".pkl", ".tar", ".ckpt", ".bin", ".safetensors")


class Model(NamedTuple):
    """A Linen module, its variables and the registered model it was built as."""

    module: Any
    variables: dict
    name: str
    kwargs: dict


def model_names() -> list[str]:
    """Registered architectures."""
    return registry.model_names()


def paper_config_names() -> list[str]:
    """Paper configurations, one per experiment recipe and argument."""
    return list(paper_configs())


def resolve(name: str, **kwargs: Any) -> tuple[str, dict[str, Any]]:
    """(registered model name, kwargs) of a model or paper config name; `kwargs` override the config's."""
    if name in registry.model_names():
        return name, dict(kwargs)
    try:
        config = get_paper_config(name)
    except KeyError:
        raise KeyError(f"unknown model or paper config {name!r}; models: {', '.join(registry.model_names())}; "
                       f"paper configs: {', '.join(paper_configs())}") from None
    model_name, config_kwargs = config.model()
    return model_name, {**config_kwargs, **kwargs}


def example_input(module, name: str, size: int | None = None):
    """An abstract NHWC input the model accepts (its channels, its padding multiple)."""
    import jax
    import jax.numpy as jnp

    from jaxir.parity import input_channels

    entry = registry.get_entry(name)
    side = size or max(entry.min_size, entry.pad_multiple, 64)
    return jax.ShapeDtypeStruct((1, side, side, input_channels(module)), jnp.float32)


def example_inputs(module, name: str, size: int | None = None) -> list:
    """All abstract inputs the model's call takes: the image, plus timesteps/labels or other declared inputs."""
    import jax
    import jax.numpy as jnp

    from jaxir import parity

    entry = registry.get_entry(name)
    image = example_input(module, name, size)
    if entry.example_inputs is not None:
        return parity.example_inputs(entry, module, *image.shape[:3])
    if entry.example_input_shapes is not None:
        return [jax.ShapeDtypeStruct(tuple(s), jnp.float32) for s in entry.example_input_shapes(module, [image.shape])]
    return [image]


def create_model(name: str, *, seed: int = 0, **kwargs: Any) -> Model:
    """A model with freshly initialised variables (PRNG `seed`); `name` as in `resolve`."""
    import jax
    import jax.numpy as jnp

    model_name, model_kwargs = resolve(name, **kwargs)
    module = registry.build_model(model_name, **model_kwargs)
    example = example_input(module, model_name)
    variables = jax.jit(module.init)(jax.random.key(seed), jnp.zeros(example.shape, example.dtype))
    return Model(module, jax.device_get(variables), model_name, model_kwargs)


def count_params(model: Model | str, **kwargs: Any) -> int:
    """Trainable parameters of a model, or of a name's architecture (traced abstractly, no memory)."""
    import jax

    if isinstance(model, Model):
        return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(model.variables.get("params", {}))))
    from jaxir.parity import count_params as abstract_count

    model_name, model_kwargs = resolve(model, **kwargs)
    module = registry.build_model(model_name, **model_kwargs)
    return abstract_count(module, *example_inputs(module, model_name))


def load_weights(name: str | None, path: str | pathlib.Path, *, key: str | None = None, **kwargs: Any) -> Model:
    """A model with the weights of `path`: a `jaxir convert` .msgpack, or an official checkpoint.

    Official .pth/.safetensors files are converted for `name` (a model or paper
    config; `kwargs` override its kwargs); `key` picks the state-dict entry of the
    checkpoint (found automatically for the usual 'params'/'state_dict'/'model').
    A .msgpack names its own model; `name`, if given, must agree with it.
    """
    from jaxir.io import load_weights as read_msgpack

    path = pathlib.Path(path)
    if path.suffix.lower() not in OFFICIAL_SUFFIXES:
        stored_name, stored_kwargs, variables = read_msgpack(path)
        if name is not None:
            wanted, _ = resolve(name, **kwargs)
            if wanted != stored_name:
                raise ValueError(f"{path} holds a {stored_name!r} model, not {name!r} ({wanted})")
        module = registry.build_model(stored_name, **stored_kwargs)
        return Model(module, variables, stored_name, stored_kwargs)
    if name is None:
        raise ValueError(f"{path} is an official checkpoint: name the model or paper config it belongs to")
    from jaxir.convert.state_dict import convert_state_dict
    from jaxir.convert.torch_io import load_state_dict

    model_name, model_kwargs = resolve(name, **kwargs)
    module = registry.build_model(model_name, **model_kwargs)
    entry = registry.get_entry(model_name)
    state_dict = load_state_dict(path, key=key)
    variables = convert_state_dict(state_dict, module, example_input(module, model_name), hooks=entry.convert_hooks)
    return Model(module, variables, model_name, model_kwargs)


def _as_model(model: Model | str | pathlib.Path) -> Model:
    if isinstance(model, Model):
        return model
    if isinstance(model, (str, pathlib.Path)):
        return load_weights(None, model)
    raise TypeError(f"model must be a jaxir Model (from create_model/load_weights) or a weights path, "
                    f"got {type(model).__name__}")


def restore(image: Any, model: Model | str | pathlib.Path, *, tile: int = 0, overlap: int = 32) -> Any:
    """Restores one image; returns it in the input's kind, size, bit depth and channel layout.

    image: a numpy or JAX array (HW or HWC; uint8, uint16, or float in [0, 1]) or
      a PIL image. Grey, grey+alpha, RGB and RGBA are kept as they come (alpha is
      passed through unchanged).
    model: a `Model` (from `create_model`/`load_weights`) or the path of a jaxir
      weights file.
    tile, overlap: restore in tiles of `tile` pixels (0: whole image) to bound memory.

    Each call compiles the model for the image's size; for many images use
    `jaxir.inference.load_restorer`. What cannot be kept (a colour image through a
    greyscale model) is reported with `warnings.warn`.
    """
    from jaxir.inference import make_restore_fn, restore_pixels

    model = _as_model(model)
    run = make_restore_fn(model.module, model.variables, model.name, tile, overlap)
    if isinstance(image, Image.Image):
        from jaxir.io import pil_to_pixels

        pixels, notes = pil_to_pixels(image)
        restored, more = restore_pixels(run, run.channels, pixels)
        _warn(notes + more)
        return _pixels_to_pil(restored, image.mode)
    is_jax = type(image).__module__.startswith("jax")
    pixels = np.asarray(image)
    squeeze = pixels.ndim == 2
    restored, notes = restore_pixels(run, run.channels, pixels)
    _warn(notes)
    if squeeze:
        restored = restored[..., 0]
    if is_jax:
        import jax.numpy as jnp
        return jnp.asarray(restored)
    return restored


def _warn(notes: list[str]) -> None:
    for note in notes:
        warnings.warn(note, stacklevel=3)


def _pixels_to_pil(pixels: np.ndarray, mode: str):
    """Pixels from `pil_to_pixels` back to a PIL image of the original mode where PIL can hold it."""
    if pixels.dtype == np.uint16:
        out = Image.fromarray(pixels[..., 0].astype(np.int32), "I")
    else:
        layout = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[pixels.shape[-1]]
        out = Image.fromarray(pixels[..., 0] if layout == "L" else pixels, layout)
    return out if out.mode == mode or mode in ("P", "PA", "1", "CMYK", "YCbCr") else out.convert(mode)
