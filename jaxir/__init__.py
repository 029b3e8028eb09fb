"""jaxir: image-restoration networks in JAX/Flax, parity-proven against their official PyTorch code.

The Python API (see README, "Python"):

    create_model(name, **kwargs)       -> Model (module, variables, name, kwargs), freshly initialised
    load_weights(name, path)           -> Model with converted (.msgpack) or official (.pth/.safetensors) weights
    restore(image, model=..., tile=)   -> the restored image, in the input's kind, bit depth and layout
    model_names(), paper_config_names(), count_params(name_or_model)
    metrics, degradations, zoo         -> subpackages, imported on first use
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Model", "count_params", "create_model", "degradations", "load_weights", "metrics", "model_names",
    "paper_config_names", "restore", "zoo",
]

_API = ("Model", "count_params", "create_model", "load_weights", "model_names", "paper_config_names", "restore")
_SUBMODULES = ("metrics", "degradations", "zoo")


def __getattr__(name: str) -> Any:
    # Lazy, so `import jaxir` (and the CLI's start) does not import JAX and every model.
    if name in _API:
        return getattr(importlib.import_module("jaxir.api"), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"jaxir.{name}")
    raise AttributeError(f"module 'jaxir' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
