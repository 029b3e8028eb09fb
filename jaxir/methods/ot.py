"""DA-RCOT's training: residual-conditioned optimal transport with a Kantorovich potential.

Tang et al., "Degradation-Aware Residual-Conditioned Optimal Transport for Unified Image
Restoration", TPAMI 2025; xl-tang3/DA-RCOT trainer.py (commit 9a42bf4). Each iteration:

1. potential (F_net) step, the transport map T frozen:
     L_F = -mean F(y) + mean F(T(x))                        (one RMSprop step), then
     L_GP = 10 * mean_i (||grad_z F(z_i)||_2 - 1)^2,  z = a y + (1 - a) T(x), a ~ U(0, 1) per image
                                                            (a second step of the same optimizer);
2. transport map step, F frozen, with r = x - T(x) and its residual embedding e (MRCNet's 2nd output):
     L_T = -mean F(T(x)) + sigma * (sqrt(mean r^2) + sum_i c_i + 0.1 * contrast) + Sigma * mean |T(x) - y|
   where the Fourier transport cost c_i = sqrt(mean |FFT2 r_i|^2) for denoising samples (labels 0-2)
   and mean |FFT2 r_i| otherwise, and contrast = sum over pairs i < j of
   mean(exp(-z_i z_j / 0.07)) for same-task pairs and mean(exp(z_i z_j / 0.07)) otherwise
   (z = the L2-normalised flattened embedding, products elementwise). The paired term
   (Sigma) applies while `paired` (the official --pairnum default keeps it always on).
F_net's learning rate is the map's times 2 (the official T optimizer runs at lr / 2): both
follow `lr * gamma ** k` after the k-th milestone (steps), here for the critic, in
`config.optim` for the map. The critic's parameters and RMSprop state are the method's
state (TrainState.method_state), updated inside the jitted step before the map's update.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import traverse_util

from jaxir.methods import TrainMethod
from jaxir.models.da_rcot import FNet
from jaxir.parity import flatten_outputs

DENOISE_LABELS = 3  # task labels 0-2 (denoise_15/25/50) take the quadratic Fourier cost


def fourier_cost(residual: jax.Array, task: jax.Array) -> jax.Array:
    """sum over images of the Fourier transport cost of their residual (B, H, W, C)."""
    spectrum = jnp.abs(jnp.fft.fft2(residual.astype(jnp.float32), axes=(1, 2)))
    quadratic = jnp.sqrt(jnp.mean(jnp.square(spectrum), axis=(1, 2, 3)))
    linear = jnp.mean(spectrum, axis=(1, 2, 3))
    return jnp.sum(jnp.where(task < DENOISE_LABELS, quadratic, linear))


def residual_contrast(embedding: jax.Array, task: jax.Array, temperature: float = 0.07) -> jax.Array:
    """The official pairwise loss over the batch's residual embeddings (see the module docstring)."""
    b = embedding.shape[0]
    z = embedding.reshape(b, -1).astype(jnp.float32)
    z = z / jnp.maximum(jnp.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    products = z[:, None, :] * z[None, :, :]  # (B, B, D)
    same = task[:, None] == task[None, :]
    terms = jnp.mean(jnp.exp(jnp.where(same[..., None], -products, products) / temperature), axis=-1)
    upper = jnp.triu(jnp.ones((b, b), bool), k=1)
    return jnp.sum(jnp.where(upper, terms, 0.0))


class ResidualConditionedOT(TrainMethod):
    name = "rcot"

    def __init__(self, patch_size: int = 128, lr: float = 1e-4, milestones: Sequence[int] = (),
                 gamma: float = 0.1, rms_decay: float = 0.99, eps: float = 1e-8, sigma: float = 1.0,
                 Sigma: float = 10000.0, contrast_weight: float = 0.1, temperature: float = 0.07,
                 gp_weight: float = 10.0, paired: bool = True):
        self.critic = FNet(patch_size)
        self.patch_size = int(patch_size)
        per_step = optax.piecewise_constant_schedule(float(lr), {int(m): float(gamma) for m in milestones})
        # Two critic updates per train step (the potential step and the gradient-penalty step).
        self.critic_tx = optax.rmsprop(lambda count: per_step(count // 2), decay=float(rms_decay),
                                       eps=float(eps), eps_in_sqrt=False)
        self.sigma, self.Sigma = float(sigma), float(Sigma)
        self.contrast_weight, self.temperature = float(contrast_weight), float(temperature)
        self.gp_weight, self.paired = float(gp_weight), bool(paired)

    def init_state(self, key, params, input_shape):
        init_key, normal_key = jax.random.split(key)
        critic = self.critic.init(init_key, jnp.zeros((1, self.patch_size, self.patch_size, 3)))["params"]
        # F_net's init: every conv weight ~ N(0, 0.02); biases and linear layers keep PyTorch's defaults.
        flat = traverse_util.flatten_dict(critic)
        keys = jax.random.split(normal_key, len(flat))
        flat = {path: (0.02 * jax.random.normal(k, leaf.shape, leaf.dtype)
                       if path[0].startswith("features_") and path[-1] == "kernel" else leaf)
                for k, (path, leaf) in zip(keys, flat.items())}
        critic = traverse_util.unflatten_dict(flat)
        return {"params": critic, "opt_state": self.critic_tx.init(critic)}

    def _potential(self, critic_params, images):
        return self.critic.apply({"params": critic_params}, images.astype(jnp.float32))

    def pre_update(self, model, method_state, variables, inputs, target, batch, key, step):
        restored = flatten_outputs(model.apply(variables, inputs, train=False))[0]
        restored = jax.lax.stop_gradient(restored.astype(jnp.float32))
        target = target.astype(jnp.float32)
        params, opt_state = method_state["params"], method_state["opt_state"]

        def potential_loss(p):
            return -jnp.mean(self._potential(p, target)) + jnp.mean(self._potential(p, restored))

        f_loss, grads = jax.value_and_grad(potential_loss)(params)
        updates, opt_state = self.critic_tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)

        alpha = jax.random.uniform(key, (target.shape[0], 1, 1, 1))
        between = alpha * target + (1 - alpha) * restored

        def penalty(p):
            slopes = jax.grad(lambda z: jnp.sum(self._potential(p, z)))(between)
            norms = jnp.sqrt(jnp.sum(jnp.square(slopes.reshape(slopes.shape[0], -1)), axis=1))
            return self.gp_weight * jnp.mean(jnp.square(norms - 1.0))

        gp, grads = jax.value_and_grad(penalty)(params)
        updates, opt_state = self.critic_tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return {"params": params, "opt_state": opt_state}, {"critic/loss": f_loss, "critic/gradient_penalty": gp}

    def loss(self, outputs: Any, target: jax.Array, batch: Mapping[str, jax.Array], base_loss: Callable,
             method_state: Any, key: jax.Array):
        restored, embedding = outputs
        restored = restored.astype(jnp.float32)
        degraded = batch["input"].astype(jnp.float32)
        task = batch.get("task")
        task = jnp.full((restored.shape[0],), DENOISE_LABELS, jnp.int32) if task is None else jnp.asarray(task)
        potential = -jnp.mean(self._potential(jax.lax.stop_gradient(method_state["params"]), restored))
        residual = degraded - restored
        rms = jnp.sqrt(jnp.mean(jnp.square(residual)))
        fourier = fourier_cost(residual, task)
        contrast = residual_contrast(embedding, task, self.temperature)
        l1 = jnp.mean(jnp.abs(restored - target.astype(jnp.float32)))
        cost = rms + fourier
        if self.paired:
            cost = cost + self.contrast_weight * contrast
        total = potential + self.sigma * cost + (self.Sigma * l1 if self.paired else 0.0)
        return total, {"potential": potential, "residual_rms": rms, "fourier": fourier, "contrast": contrast,
                       "l1": l1}
