"""CM4IR: zero-shot restoration with few-step guidance of consistency models
(Garber & Tirer, CVPR 2025; tirer-lab/CM4IR `functions/cm4ir_scheme.py`, defaults of `main.py`).

Images in [-1, 1], y = A x + σ_y n (σ_y doubled from the [0, 1] scale), linear DDPM ᾱ.
Initialisation: x = A⁺_η y with η = ζ σ_y² (the median-filled A⁺y for inpainting).
Noise levels: ᾱ_0 = ᾱ[iN + 1], ᾱ_{k+1} = min(ᾱ_k (1 + γ), 0.9999), k < K (K = 4 NFEs);
σ_k = clip(√(1 - ᾱ_k), 0.002, 80). Starting from x_0 = x + σ_0 z, each step k:

  x̂_0 = clip(D(x_k, (1 + δ_k) σ_k), -1, 1)      consistency function (scalings at σ_k, or at
                                                (1 + δ_k) σ_k when `deltas_in_scalings`)
  ẑ   = (x̂_0 - x_k) / σ_k
  x̃   = x̂_0 - μ μ_f^k A⁺_η (A x̂_0 - y)          back-projection guidance
  x_{k+1} = x̃ + σ_{k+1} (η_n z + √(1 - η_n²) ẑ)   noise injection mixing fresh and estimated noise

With measurement noise the last step returns x̂_0 (no guidance), otherwise the last x̃.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxir.diffusion.karras import KarrasDenoiser
from jaxir.diffusion.schedules import linear_betas


@dataclasses.dataclass(frozen=True)
class CM4IRConfig:
    """`main.py` defaults; iN and γ are per task (`evaluate_CM4IR.sh`: SR×4 σ_y 0.025: 400 / 0.7;
    Gaussian deblurring: 75 / 0.01 with ζ 3; inpainting: 150 / 0.2)."""

    i_n: int = 250
    gamma: float = 0.7
    eta: float = 0.1  # fresh-noise fraction of the injection
    zeta: float = 0.0  # pseudo-inverse regularisation η = ζ σ_y²
    deltas: Sequence[float] = (0.0, 0.0, 0.0, 0.0)
    deltas_in_scalings: bool = False  # deltas_injection_type 1
    mu: float = 1.0
    mu_factor: float = 1.0
    num_steps: int = 4
    sigma_y: float = 0.05  # [0, 1] scale, as the official --sigma_y


def alpha_schedule(config: CM4IRConfig) -> np.ndarray:
    alphas_cumprod = np.cumprod(1.0 - linear_betas(1000).astype(np.float32), dtype=np.float32)
    alphas = [alphas_cumprod[config.i_n + 1]]
    for _ in range(config.num_steps - 1):
        alphas.append(float(np.clip(alphas[-1] * (1 + config.gamma), 0.0, 0.9999)))
    return np.array(alphas, np.float32)


def initialise(operator, y, config: CM4IRConfig):
    """A⁺_η y with η = ζ (2σ_y)²."""
    return operator.pinv(y, config.zeta * (2 * config.sigma_y) ** 2)


def restore(network: Callable, operator, y, x_init, key, config: CM4IRConfig = CM4IRConfig(),
            denoiser: KarrasDenoiser = KarrasDenoiser()):
    """network(c_in x, 250 log σ) -> raw consistency-model output; y and x_init in [-1, 1]."""
    if len(config.deltas) != config.num_steps:
        raise ValueError(f"deltas needs {config.num_steps} values, got {len(config.deltas)}")
    alphas = alpha_schedule(config)
    sigmas = np.clip(np.sqrt(1.0 - alphas), denoiser.sigma_min, denoiser.sigma_max).astype(np.float32)
    next_sigmas = np.append(sigmas[1:], 0.0).astype(np.float32)
    deltas = np.asarray(config.deltas, np.float32)
    sigma_y = 2 * config.sigma_y
    eta_reg = sigma_y ** 2 * config.zeta
    noisy = sigma_y != 0
    key_init, key_loop = jax.random.split(key)
    x = x_init + jax.random.normal(key_init, x_init.shape, jnp.float32) * np.sqrt(1.0 - alphas[0])

    def body(carry, inputs):
        x, _ = carry
        k, sigma, next_sigma, delta = inputs
        inflated = (1 + delta) * sigma
        if config.deltas_in_scalings:
            x0 = denoiser.denoise(network, x, inflated)
        else:
            x0 = _denoise_split(denoiser, network, x, sigma, inflated)
        x0 = jnp.clip(x0, -1.0, 1.0)
        z_hat = (x0 - x) / sigma
        guided = x0 - config.mu * config.mu_factor ** k * operator.pinv(operator.forward(x0) - y, eta_reg)
        noise = jax.random.normal(jax.random.fold_in(key_loop, k), x.shape, x.dtype)
        last = k == config.num_steps - 1
        x_next = guided + jnp.where(last, 0.0, next_sigma) * (
            config.eta * noise + np.sqrt(1 - config.eta ** 2) * z_hat)
        return (x_next, x0), None

    inputs = (jnp.arange(config.num_steps), jnp.asarray(sigmas), jnp.asarray(next_sigmas), jnp.asarray(deltas))
    (x, x0), _ = jax.lax.scan(body, (x, x_init), inputs)
    return x0 if noisy else x


def _denoise_split(denoiser: KarrasDenoiser, network, x, sigma, time_sigma):
    """Scalings at σ, network timestep at (1 + δ)σ (deltas_injection_type 0)."""
    c_skip, c_out, c_in = (jnp.asarray(c, jnp.float32) for c in denoiser.scalings(sigma))
    t = jnp.full((x.shape[0],), denoiser.rescaled_time(time_sigma), jnp.float32)
    return c_out * network(c_in * x, t) + c_skip * x


def cm_network(model, variables, labels=None):
    """network(x, t) of a converted consistency-model U-Net (`cm_unet`), class labels bound if given."""
    if labels is None:
        return lambda x, t: model.apply(variables, x, t)
    return lambda x, t: model.apply(variables, x, t, labels)


def ddrm_gaussian_kernel() -> np.ndarray:
    """CM4IR's 'deblur_gauss' kernel (from DDRM): separable 5 taps exp(-½ (x / 10)²), x = -2..2, normalised."""
    taps = np.exp(-0.5 * (np.arange(-2, 3) / 10.0) ** 2)
    taps = taps / taps.sum()
    return np.outer(taps, taps).astype(np.float32)


# `evaluate_CM4IR.sh`, LSUN bedroom at σ_y = 0.025 (iN, γ, ζ per task).
LSUN_BEDROOM_TASKS = {
    "sr4": dict(i_n=400, gamma=0.7, sigma_y=0.025),
    "deblur_gauss": dict(i_n=75, gamma=0.01, zeta=3.0, sigma_y=0.025),
    "inpainting": dict(i_n=150, gamma=0.2, sigma_y=0.025),
}


def task(name: str, image_size: int = 256, mask: np.ndarray | None = None):
    """(operator, CM4IRConfig) of an `evaluate_CM4IR.sh` LSUN-bedroom task; inpainting needs the mask
    (the official random_80 / letters masks are .npy files of the CM4IR repository)."""
    from jaxir.diffusion import operators

    if name not in LSUN_BEDROOM_TASKS:
        raise ValueError(f"unknown CM4IR task {name!r} ({', '.join(LSUN_BEDROOM_TASKS)})")
    config = CM4IRConfig(**LSUN_BEDROOM_TASKS[name])
    if name == "sr4":
        return operators.SuperResolution(4, operators.bicubic_kernel(4)), config
    if name == "deblur_gauss":
        return operators.Blur(ddrm_gaussian_kernel()), config
    if mask is None:
        raise ValueError("inpainting needs a mask (H, W), 1 = observed")
    return operators.Inpainting(np.asarray(mask, np.float32)), config


def initial_estimate(operator, y, config: CM4IRConfig, mask: np.ndarray | None = None):
    """The paper's initialisation: A⁺_η y, median-filled where pixels are missing (inpainting)."""
    x = initialise(operator, y, config)
    if mask is None:
        return x
    from jaxir.diffusion.operators import median_fill

    return jnp.stack([jnp.asarray(median_fill(np.asarray(img), np.asarray(mask))) for img in x])
