"""Several training methods on one model (e.g. AirNet's MoCo with TUR), and `freeze`.

config.method = {'name': 'compose', 'kwargs': {'methods': [
    {'name': 'moco', 'kwargs': {...}}, {'name': 'tur', 'kwargs': {...}}]}}

The hooks of the listed methods, in list order:
  wrap_model    each method wraps what the one before returned (the last wrapper is outermost);
                parameter paths a method is given (MoCo's `encoder_path`, `freeze`'s `paths`)
                name the final, wrapped tree (e.g. ('backbone', 'E', 'E') under TUR).
  prepare, post_update   applied one after the other.
  trainable     a leaf is trained only if every method lets it be.
  init_state, pre_update each method keeps its own state under its name in a dict
                (repeated names get '#1', '#2' suffixes).
  model_kwargs, batch_kwargs  merged; two methods giving the same forward argument is an error.
  loss          nested: method i's `base_loss` is method i+1's objective, the last one's is the
                configured terms. Each method adds to what follows it what its paper adds to the
                supervised loss (MoCo unpacks (restored, logits), adds 0.1 InfoNCE and hands the
                restored image on; TUR's objective is the configured terms, its 'tur' term included),
                so the order of the list is the order in which the objectives wrap each other.
Each method draws from its own fold of the step's key.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax
from flax import traverse_util

from jaxir.methods import TrainMethod, build_method


def _state_keys(methods: Sequence[TrainMethod]) -> list[str]:
    names = [m.name for m in methods]
    return [f"{n}#{names[:i].count(n)}" if names.count(n) > 1 else n for i, n in enumerate(names)]


class ComposedMethod(TrainMethod):
    """The methods' hooks chained as the module docstring says."""

    def __init__(self, methods: Sequence[TrainMethod | Mapping[str, Any]]):
        built = [m if isinstance(m, TrainMethod) else build_method(m) for m in methods]
        if not built:
            raise ValueError("compose: give at least one method")
        self.methods = tuple(built)
        self.keys = _state_keys(self.methods)
        self.name = "compose(" + "+".join(m.name for m in self.methods) + ")"

    def wrap_model(self, model, entry):
        for method in self.methods:
            model = method.wrap_model(model, entry)
        return model

    def prepare(self, params):
        for method in self.methods:
            params = method.prepare(params)
        return params

    def trainable(self, params):
        masks = [m for m in (method.trainable(params) for method in self.methods) if m is not None]
        if not masks:
            return None
        return jax.tree.map(lambda *keep: all(keep), *masks)

    def init_state(self, key, params, input_shape):
        return {k: m.init_state(jax.random.fold_in(key, i), params, input_shape)
                for i, (k, m) in enumerate(zip(self.keys, self.methods))}

    def _merge(self, per_method):
        merged: dict = {}
        for k, kwargs in zip(self.keys, per_method):
            clash = sorted(set(kwargs) & set(merged))
            if clash:
                raise ValueError(f"compose: {k!r} and an earlier method both set the forward argument(s) {clash}")
            merged.update(kwargs)
        return merged

    def model_kwargs(self, inputs, key):
        return self._merge(m.model_kwargs(inputs, jax.random.fold_in(key, i)) for i, m in enumerate(self.methods))

    def batch_kwargs(self, batch):
        return self._merge(m.batch_kwargs(batch) for m in self.methods)

    def pre_update(self, model, method_state, variables, inputs, target, batch, key, step):
        new_state, metrics = dict(method_state), {}
        for i, (k, method) in enumerate(zip(self.keys, self.methods)):
            new_state[k], m = method.pre_update(model, method_state[k], variables, inputs, target, batch,
                                                jax.random.fold_in(key, i), step)
            metrics.update(m)
        return new_state, metrics

    def loss(self, outputs, target, batch, base_loss: Callable, method_state, key):
        def objective(i: int) -> Callable:
            if i == len(self.methods):
                return base_loss
            k, method = self.keys[i], self.methods[i]
            return lambda o, t: method.loss(o, t, batch, objective(i + 1), method_state[k],
                                            jax.random.fold_in(key, i))

        return objective(0)(outputs, target)

    def post_update(self, params):
        for method in self.methods:
            params = method.post_update(params)
        return params


class Freeze(TrainMethod):
    """config.method = {'name': 'freeze', 'kwargs': {'paths': ['backbone/E']}}: supervised training with the
    parameters under the given '/'-separated prefixes left as they are (e.g. a pre-trained encoder)."""

    name = "freeze"

    def __init__(self, paths: Sequence[str]):
        if isinstance(paths, str) or not paths:
            raise ValueError(f"freeze: paths must be a non-empty list of 'a/b' prefixes, got {paths!r}")
        self.paths = tuple(tuple(p.strip("/").split("/")) for p in paths)

    def trainable(self, params):
        flat = traverse_util.flatten_dict(params)
        for prefix in self.paths:
            if not any(path[:len(prefix)] == prefix for path in flat):
                raise ValueError(f"freeze: no parameters under {'/'.join(prefix)!r}; top level: "
                                 f"{sorted({path[0] for path in flat})}")
        return traverse_util.unflatten_dict(
            {path: not any(path[:len(p)] == p for p in self.paths) for path in flat})
