"""The train and eval steps (pure functions of state and batch), and their jitted, sharded forms."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from jaxir.losses import AUX_COLLECTION, LossContext
from jaxir.parity import restored_output
from jaxir.train import sharding as shd
from jaxir.train.optim import update_ema
from jaxir.train.state import TrainState

LossFn = Callable[[Any, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]


def degraded_input(batch: dict[str, jax.Array], degradation: Sequence[Any] | None,
                   task_degradations: Mapping[int, Any] | None = None) -> jax.Array:
    """The batch's 'input', or one synthesised on device from its 'target' and per-record 'seed'.

    In an all-in-one mixture each record's 'task' picks its own synthesis (e.g. the
    noise sigma of denoise_15/25/50); paired tasks keep their loaded input.
    """
    if task_degradations and "task" in batch:
        from data_pipelines.mixtures import synthesize_task_inputs

        return synthesize_task_inputs(batch, task_degradations)["input"]
    if "input" in batch:
        return batch["input"]
    if not degradation:
        raise ValueError("the batch has no 'input' and config.data.degradation is empty: "
                         "clean-only data needs a degradation spec to synthesise inputs")
    from jaxir.degradations import synthesize

    return synthesize(degradation, batch["target"], batch["seed"])


def _all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _select(accept: jax.Array, new: Any, old: Any) -> Any:
    return jax.tree.map(lambda n, o: jnp.where(accept, n, o), new, old)


def make_train_step(model: nn.Module, loss_fn: LossFn, tx: optax.GradientTransformation,
                    schedule: optax.Schedule, *, ema_decay: float = 0.0,
                    degradation: Sequence[Any] | None = None,
                    task_degradations: Mapping[int, Any] | None = None,
                    method: Any = None, target_key: str = "target"):
    """`train_step(state, batch) -> (state, metrics)`.

    The loss compares the model's outputs with `batch[target_key]` (the clean image,
    or the 'task' label for a degradation classifier).

    An update whose loss or gradients are not all finite is rejected: params,
    optimizer state, EMA, batch statistics, model and method state stay as they were,
    `rejected_steps` grows by one and the metrics say which of the two was bad. `step`
    always advances (it counts consumed batches). `method` (jaxir.methods; default plain
    supervised training) adds its forward arguments, objective and updates.
    """
    from jaxir.methods import Supervised

    method = method or Supervised()

    def train_step(state: TrainState, batch: dict[str, jax.Array]):
        target = batch[target_key]
        inputs = degraded_input(batch, degradation, task_degradations)
        dropout_key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        method_key = jax.random.fold_in(dropout_key, 1)
        # Stochastic layers other than dropout (e.g. MoCE-IR's router noise) draw from 'noise'.
        rngs = {"dropout": dropout_key, "noise": jax.random.fold_in(dropout_key, 2)}
        collections = {"batch_stats": state.batch_stats} if state.batch_stats else {}
        collections.update(state.model_state)
        # Models sow auxiliary training outputs (router losses, uncertainty maps) into 'aux'.
        mutable = [*collections, AUX_COLLECTION]
        method_state, method_metrics = method.pre_update(
            model, state.method_state, {"params": state.params, **collections}, inputs, target, batch, method_key,
            state.step)
        model_kwargs = {**method.model_kwargs(inputs, method_key), **method.batch_kwargs(batch)}
        uses_context = getattr(loss_fn, "uses_context", False)

        # Models whose loss needs the target and fresh randomness per example (a diffusion model noising
        # it) give `training_outputs(inputs, target)` -> (prediction, label); the 'noise' stream is
        # folded from the train state's key and step, so resuming replays it exactly.
        trains_on_target = hasattr(model, "training_outputs")

        def compute_loss(params):
            if trains_on_target:
                (outputs, label), mutated = model.apply(
                    {"params": params, **collections}, inputs, target, train=True, method="training_outputs",
                    rngs=rngs, mutable=mutable, **model_kwargs)
            else:
                outputs, mutated = model.apply({"params": params, **collections}, inputs, train=True, rngs=rngs,
                                               mutable=mutable, **model_kwargs)
                label = target
            new_collections = {k: v for k, v in mutated.items() if k != AUX_COLLECTION}
            base_loss = loss_fn
            if uses_context:
                context = LossContext(aux=mutated.get(AUX_COLLECTION, {}), task=batch.get("task"))
                base_loss = lambda o, t: loss_fn(o, t, context)  # noqa: E731
            loss, terms = method.loss(outputs, label, {**batch, "input": inputs}, base_loss, method_state,
                                      method_key)
            return loss.astype(jnp.float32), (terms, new_collections)

        (loss, (terms, new_collections)), grads = jax.value_and_grad(compute_loss, has_aux=True)(state.params)
        updates, new_opt_state = tx.update(grads, state.opt_state, state.params)
        trainable = method.trainable(state.params)
        if trainable is not None:  # frozen leaves: no update at all (weight decay included)
            updates = jax.tree.map(lambda u, keep: u if keep else jnp.zeros_like(u), updates, trainable)
        new_params = method.post_update(optax.apply_updates(state.params, updates))
        new_ema = update_ema(state.ema_params, new_params, ema_decay) if state.ema_params else state.ema_params

        loss_finite = jnp.isfinite(loss)
        grads_finite = _all_finite(grads)
        accept = loss_finite & grads_finite
        rejected = state.rejected_steps + (~accept).astype(jnp.int32)
        applied_updates = state.step - state.rejected_steps  # the optimizer's own step count
        new_state = state.replace(
            step=state.step + 1,
            params=_select(accept, new_params, state.params),
            opt_state=_select(accept, new_opt_state, state.opt_state),
            ema_params=_select(accept, new_ema, state.ema_params),
            batch_stats=_select(accept, new_collections.get("batch_stats", state.batch_stats), state.batch_stats),
            model_state=_select(accept, {k: new_collections[k] for k in state.model_state}, state.model_state),
            method_state=_select(accept, method_state, state.method_state),
            rejected_steps=rejected,
        )
        metrics = {
            "loss": loss,
            **{f"loss/{name}": value for name, value in terms.items()},
            **method_metrics,
            "grad_norm": optax.tree.norm(grads),
            "lr": schedule(applied_updates),
            "loss_finite": loss_finite,
            "grads_finite": grads_finite,
            "rejected_steps": rejected,
        }
        return new_state, metrics

    return train_step


def jit_train_step(train_step, state_shardings: TrainState, mesh: Mesh):
    """Jitted step: batch split over `data`, state laid out as `state_shardings` and donated."""
    return jax.jit(
        train_step,
        in_shardings=(state_shardings, shd.batch_sharding(mesh)),
        out_shardings=(state_shardings, shd.replicated(mesh)),
        donate_argnums=(0,),
    )


def pad_for_model(x: jax.Array, multiple: int = 1, min_size: int = 1) -> jax.Array:
    """Reflect-pad H, W at the bottom/right to a multiple of `multiple` and at least `min_size`."""
    h, w = x.shape[1:3]

    def padded(size):
        size = max(size, min_size)
        return size + (-size) % multiple

    ph, pw = padded(h) - h, padded(w) - w
    if ph == 0 and pw == 0:
        return x
    # Reflection needs the pad smaller than the image; replicate the edge otherwise.
    mode = "reflect" if ph < h and pw < w else "edge"
    return jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode=mode)


def _scores(pred: jax.Array, target: jax.Array, convention: str | None) -> dict[str, jax.Array]:
    from jaxir import metrics

    if convention:
        return metrics.evaluate_per_image(pred, target, convention)
    pred = jnp.clip(pred, 0.0, 1.0)
    return {"psnr": metrics.psnr(pred, target), "ssim": metrics.ssim(pred, target)}


def make_eval_step(model: nn.Module, *, degradation: Sequence[Any] | None = None, pad_multiple: int = 1,
                   min_size: int = 1, convention: str | None = None):
    """`eval_step(variables, batch) -> (per-image scores, images)`.

    Scores of the restoration and of the degraded input (prefixed `input_`), each of
    shape (B,). The input is padded for the model and the output cropped back to the
    target's size. `variables` are what `model.apply` takes (e.g. `state.variables(use_ema=True)`).
    """

    def eval_step(variables: dict, batch: dict[str, jax.Array]):
        target = batch["target"]
        h, w = target.shape[1:3]
        inputs = pad_for_model(degraded_input(batch, degradation), pad_multiple, min_size)
        outputs = model.apply(variables, inputs, train=False)
        restored = restored_output(model, outputs)[:, :h, :w].astype(jnp.float32)
        scores = _scores(restored, target, convention)
        degraded = inputs[:, :h, :w]
        if degraded.shape[-1] == target.shape[-1]:
            scores.update({f"input_{k}": v for k, v in _scores(degraded, target, convention).items()})
        images = {"restored": jnp.clip(restored, 0.0, 1.0), "degraded": jnp.clip(degraded, 0.0, 1.0)}
        return scores, images

    return eval_step


def jit_eval_step(eval_step, mesh: Mesh):
    """Jitted eval step; variables keep their own layout, results are replicated for every process."""
    return jax.jit(eval_step, out_shardings=shd.replicated(mesh))
