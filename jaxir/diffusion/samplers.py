"""DDPM ancestral and DDIM(η) sampling as single jitted `lax.scan` loops with explicit PRNG keys.

`model_fn(x_t, timesteps) -> raw network output` (NHWC; timesteps already mapped
through the process's `timestep_map`). Each step draws its noise from
`fold_in(key, step)`, so a sample depends on the key only.

DDPM: x_{t-1} = μ_θ(x_t, t) + [t > 0] exp(½ log σ²_t) z.
DDIM (Song et al. 2021, eq. 12): x_{t-1} = √ᾱ_{t-1} x̂_0 + √(1 - ᾱ_{t-1} - σ_t²) ε̂ + σ_t z,
σ_t = η √((1 - ᾱ_{t-1}) / (1 - ᾱ_t)) √(1 - ᾱ_t / ᾱ_{t-1}); η = 0 is deterministic.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from jaxir.diffusion.gaussian import GaussianDiffusion

ModelFn = Callable[[jax.Array, jax.Array], jax.Array]


def _model_t(diffusion: GaussianDiffusion, t, batch: int):
    return jnp.full((batch,), diffusion.model_timesteps(t), jnp.float32)


def ddpm_step(diffusion: GaussianDiffusion, model_fn: ModelFn, x, t, key, clip_denoised: bool = True):
    output = model_fn(x, _model_t(diffusion, t, x.shape[0]))
    tt = jnp.full((x.shape[0],), t)
    mean, log_variance, x0 = diffusion.p_mean_variance(output, x, tt, clip_denoised)
    noise = jax.random.normal(key, x.shape, x.dtype)
    return mean + jnp.where(t > 0, jnp.exp(0.5 * log_variance), 0.0) * noise, x0


def ddim_step(diffusion: GaussianDiffusion, model_fn: ModelFn, x, t, key, eta: float = 0.0,
              clip_denoised: bool = True):
    output = model_fn(x, _model_t(diffusion, t, x.shape[0]))
    tt = jnp.full((x.shape[0],), t)
    _, _, x0 = diffusion.p_mean_variance(output, x, tt, clip_denoised)
    eps = diffusion.eps_from_x0(x, tt, x0)
    alpha_bar = diffusion.coef("ac", tt, x.ndim)
    alpha_bar_prev = diffusion.coef("acp", tt, x.ndim)
    sigma = eta * jnp.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar)) * jnp.sqrt(1 - alpha_bar / alpha_bar_prev)
    mean = jnp.sqrt(alpha_bar_prev) * x0 + jnp.sqrt(1 - alpha_bar_prev - sigma ** 2) * eps
    noise = jax.random.normal(key, x.shape, x.dtype)
    return mean + jnp.where(t > 0, sigma, 0.0) * noise, x0


def _loop(step, diffusion: GaussianDiffusion, x_T, key):
    def body(x, t):
        x, _ = step(x, t, jax.random.fold_in(key, t))
        return x, None

    steps = jnp.arange(diffusion.num_timesteps - 1, -1, -1)
    x, _ = jax.lax.scan(body, x_T, steps)
    return x


def ddpm_sample(diffusion: GaussianDiffusion, model_fn: ModelFn, x_T, key, clip_denoised: bool = True):
    """Ancestral sampling from x_T over all steps of `diffusion` (respace it for fewer)."""
    return _loop(lambda x, t, k: ddpm_step(diffusion, model_fn, x, t, k, clip_denoised), diffusion, x_T, key)


def ddim_sample(diffusion: GaussianDiffusion, model_fn: ModelFn, x_T, key, eta: float = 0.0,
                clip_denoised: bool = True):
    return _loop(lambda x, t, k: ddim_step(diffusion, model_fn, x, t, k, eta, clip_denoised), diffusion, x_T, key)


def sample(diffusion: GaussianDiffusion, model_fn: ModelFn, shape, key, method: str = "ddim", eta: float = 0.0,
           clip_denoised: bool = True):
    """x_T ~ N(0, I) from `key`, then the chosen sampler, under one jit."""
    key_init, key_loop = jax.random.split(key)

    @jax.jit
    def run(key_init, key_loop):
        x_T = jax.random.normal(key_init, tuple(shape), jnp.float32)
        if method == "ddpm":
            return ddpm_sample(diffusion, model_fn, x_T, key_loop, clip_denoised)
        if method == "ddim":
            return ddim_sample(diffusion, model_fn, x_T, key_loop, eta, clip_denoised)
        raise ValueError(f"method must be 'ddpm' or 'ddim', got {method!r}")

    return run(key_init, key_loop)
