"""Training methods: what a paper's recipe adds to plain supervised training, declared to the loop.

The loop (`jaxir.train`) never branches on a method; it asks the configured
`TrainMethod` (config.method = {'name': NAME, 'kwargs': {...}}; absent: `Supervised`):
  wrap_model(model, entry)             the module trained, built from the configured model (default: itself)
  prepare(params)                      parameters of a fresh run (e.g. MoCo's key encoder = query encoder)
  trainable(params)                    bool tree: leaves the optimizer may change (None: all)
  init_state(key, params, input_shape) the method's own state (e.g. a critic's parameters and optimizer
                                       state), saved in checkpoints as TrainState.method_state
  model_kwargs(inputs, key)            extra keyword arguments of the training forward
  batch_kwargs(batch)                  more of them read from the batch (e.g. a prompt picked by 'task')
  pre_update(model, method_state, ...) an update of the method state before the model's (a critic step)
  loss(outputs, target, batch, base_loss, method_state, key)  the training objective (batch['input'] holds
                                       the model's input, synthesised or loaded)
  post_update(params)                  a parameter update after the optimizer's (a momentum encoder)
Every hook runs inside the jitted train step. 'compose' chains several methods on one model
(jaxir.methods.compose: e.g. AirNet's MoCo with TUR); 'freeze' leaves parameter subtrees untrained.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping

import jax


class TrainMethod:
    """Plain supervised training: the configured loss terms on the model's outputs."""

    name = "supervised"

    def wrap_model(self, model: Any, entry: Any) -> Any:
        return model

    def prepare(self, params: Any) -> Any:
        return params

    def trainable(self, params: Any) -> Any | None:
        return None

    def init_state(self, key: jax.Array, params: Any, input_shape: tuple[int, ...]) -> Any:
        return {}

    def model_kwargs(self, inputs: jax.Array, key: jax.Array) -> dict:
        return {}

    def batch_kwargs(self, batch: Mapping[str, jax.Array]) -> dict:
        return {}

    def pre_update(self, model: Any, method_state: Any, variables: dict, inputs: jax.Array, target: jax.Array,
                   batch: Mapping[str, jax.Array], key: jax.Array, step: jax.Array) -> tuple[Any, dict]:
        return method_state, {}

    def loss(self, outputs: Any, target: jax.Array, batch: Mapping[str, jax.Array],
             base_loss: Callable, method_state: Any, key: jax.Array) -> tuple[jax.Array, dict]:
        return base_loss(outputs, target)

    def post_update(self, params: Any) -> Any:
        return params


Supervised = TrainMethod


class WrapModel(TrainMethod):
    """Supervised training of a module built from the configured model by `function(model, entry, **kwargs)`
    (a method given as 'package.module:function': ADMS's classifier/ADS wrapper, DCPT's pre-training model)."""

    def __init__(self, function: Callable, kwargs: Mapping[str, Any]):
        self.name = f"{function.__module__}:{function.__name__}"
        self.function, self.kwargs = function, dict(kwargs)

    def wrap_model(self, model: Any, entry: Any) -> Any:
        return self.function(model, entry, **self.kwargs)

# name -> "module:factory"
METHODS = {
    "supervised": "jaxir.methods:Supervised",
    "moco": "jaxir.methods.moco:AirNetMoCo",
    "rcot": "jaxir.methods.ot:ResidualConditionedOT",
    "tur": "jaxir.methods.tur:TaskUncertainty",
    "compose": "jaxir.methods.compose:ComposedMethod",
    "freeze": "jaxir.methods.compose:Freeze",
    "gendeg": "jaxir.methods.gendeg:GenDegTraining",
    "osdface": "jaxir.methods.osdface:OSDFaceTraining",
    "vlu": "jaxir.methods.vlu:FrozenCLIPExtractor",
    "vlu_align": "jaxir.methods.vlu:CLIPAdapterAlignment",
}


def build_method(description: Mapping[str, Any] | None) -> TrainMethod:
    """`config.method` ({'name', 'kwargs'} or None) -> a TrainMethod."""
    if not description:
        return Supervised()
    description = description.to_dict() if hasattr(description, "to_dict") else dict(description)
    name = description.get("name") or "supervised"
    kwargs = dict(description.get("kwargs") or {})
    if ":" in name and name not in METHODS:
        module_name, _, attr = name.partition(":")
        try:
            function = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise ValueError(f"config.method.name: cannot load {name!r}: {err}") from None
        return WrapModel(function, kwargs)
    if name not in METHODS:
        raise ValueError(f"config.method.name: unknown method {name!r}; known: {', '.join(sorted(METHODS))}")
    module_name, _, attr = METHODS[name].partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)(**kwargs)
    except TypeError as err:
        raise ValueError(f"config.method: cannot build {name!r} from {kwargs}: {err}") from None
