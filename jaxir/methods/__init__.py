"""Training methods that wrap any registered model (above models, below train).

A method module defines `wrap(model, **kwargs) -> nn.Module` and registers the
loss terms it adds (`jaxir.losses.register_term`) when imported. A config names
it as `config.method = {'name': 'tur', 'kwargs': {...}}`; the loop wraps the
built model and builds the loss after the method is loaded, without branching on
which method it is.
"""
from __future__ import annotations

import importlib
from typing import Any, Mapping

import flax.linen as nn

METHODS = {"tur": "jaxir.methods.tur"}


def _spec(method: Any) -> tuple[str, dict]:
    if method is None:
        return "", {}
    method = dict(method.to_dict() if hasattr(method, "to_dict") else method)
    kwargs = method.get("kwargs") or {}
    return str(method.get("name") or ""), dict(kwargs.to_dict() if hasattr(kwargs, "to_dict") else kwargs)


def load(method: Mapping | None):
    """Import the named method (registering its loss terms); None when no method is configured."""
    name, _ = _spec(method)
    if not name:
        return None
    if name not in METHODS:
        raise ValueError(f"unknown training method {name!r}; known: {', '.join(sorted(METHODS))}")
    return importlib.import_module(METHODS[name])


def wrap_model(method: Mapping | None, model: nn.Module) -> nn.Module:
    """`model` wrapped by the configured method (unchanged without one)."""
    module = load(method)
    return model if module is None else module.wrap(model, **_spec(method)[1])
