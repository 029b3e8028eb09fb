"""The train state, its creation directly on the mesh, and its shardings."""
from __future__ import annotations

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from jaxir.train import sharding as shd


@flax.struct.dataclass
class TrainState:
    """Everything a step reads and writes; saved whole in checkpoints.

    step: batches consumed (accepted or rejected), which also indexes the data stream.
    ema_params / batch_stats: empty dicts when EMA is off / the model has no BatchNorm.
    rng: raw uint32 key data (checkpoint-friendly); per-step keys are folded from it.
    rejected_steps: updates refused because the loss or a gradient was not finite.
    model_state: the model's other variable collections ({collection: tree}; e.g. constant buffers,
        a MoCo queue), passed to every apply and updated by the training forward.
    method_state: the training method's own state (jaxir.methods), e.g. a critic and its optimizer.
    """

    step: jax.Array
    params: Any
    opt_state: Any
    ema_params: Any
    batch_stats: Any
    rng: jax.Array
    rejected_steps: jax.Array
    model_state: Any = flax.struct.field(default_factory=dict)
    method_state: Any = flax.struct.field(default_factory=dict)

    def variables(self, use_ema: bool = False) -> dict:
        """Variables for `model.apply`, with the EMA parameters when asked and present."""
        params = self.ema_params if use_ema and self.ema_params else self.params
        variables = {"params": params}
        if self.batch_stats:
            variables["batch_stats"] = self.batch_stats
        variables.update(self.model_state)
        return variables


def make_init_fn(model: nn.Module, tx: optax.GradientTransformation, input_shape: tuple[int, ...],
                 seed: int, use_ema: bool, method=None):
    """A function of no arguments that builds the initial TrainState (jit it to place it on a mesh).

    `method` (a jaxir.methods.TrainMethod) prepares the parameters and builds its own state.
    """
    from jaxir.methods import Supervised

    method = method or Supervised()

    def init() -> TrainState:
        root = jax.random.key(seed)
        params_key, dropout_key, train_key = jax.random.split(root, 3)
        variables = model.init({"params": params_key, "dropout": dropout_key},
                               jnp.zeros(input_shape, jnp.float32), train=False)
        params = method.prepare(variables["params"])
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=tx.init(params),
            ema_params=jax.tree.map(jnp.copy, params) if use_ema else {},
            batch_stats=variables.get("batch_stats", {}),
            rng=jax.random.key_data(train_key),
            rejected_steps=jnp.zeros((), jnp.int32),
            # 'aux' holds what a model sows during a forward (jaxir.losses), not state.
            model_state={k: v for k, v in variables.items() if k not in ("params", "batch_stats", "aux")},
            method_state=method.init_state(jax.random.fold_in(root, 1), params, input_shape),
        )

    return init


def state_shardings(abstract_state: TrainState, tx: optax.GradientTransformation, mesh: Mesh,
                    param_sharding: str = "replicated", fsdp_min_size: int = 2**16) -> TrainState:
    """Shardings for every leaf: optimizer moments and EMA follow their parameter; the rest replicated."""
    params = shd.param_shardings(abstract_state.params, mesh, param_sharding, fsdp_min_size)
    full = shd.replicated(mesh)
    return TrainState(
        step=full,
        params=params,
        opt_state=shd.optimizer_shardings(tx, abstract_state.opt_state, params, mesh),
        ema_params=params if abstract_state.ema_params else {},
        batch_stats=jax.tree.map(lambda _: full, abstract_state.batch_stats),
        rng=full,
        rejected_steps=full,
        model_state=jax.tree.map(lambda _: full, abstract_state.model_state),
        method_state=jax.tree.map(lambda _: full, abstract_state.method_state),
    )


def create_sharded_state(model: nn.Module, tx: optax.GradientTransformation, input_shape: tuple[int, ...],
                         seed: int, use_ema: bool, mesh: Mesh, param_sharding: str = "replicated",
                         fsdp_min_size: int = 2**16, method=None) -> tuple[TrainState, TrainState]:
    """(initial state laid out on the mesh, its shardings). Initialised in place: no host copy."""
    init = make_init_fn(model, tx, input_shape, seed, use_ema, method)
    shardings = state_shardings(jax.eval_shape(init), tx, mesh, param_sharding, fsdp_min_size)
    return jax.jit(init, out_shardings=shardings)(), shardings


def abstract_state(model: nn.Module, tx: optax.GradientTransformation, input_shape: tuple[int, ...],
                   use_ema: bool, shardings: TrainState | None = None, seed: int = 0, method=None) -> TrainState:
    """Shapes/dtypes (and shardings) of the state, as a restore target."""
    shapes = jax.eval_shape(make_init_fn(model, tx, input_shape, seed, use_ema, method))
    if shardings is None:
        return shapes
    return jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes, shardings)
