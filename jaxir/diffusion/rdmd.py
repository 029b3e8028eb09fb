"""RDMD (Wang et al., CVPR 2025): zero-shot restoration with one pre-trained ADM diffusion model used
in dual, as a deterministic denoiser and as a stochastic sampler (ChongWang1024/RDMD commit 433e0ea,
`rdmd_deblur.py`, `rdmd_sr.py`).

Images live in [-1, 1]. With ᾱ of the linear DDPM schedule (β 1e-4..0.02, T = 1000),
σ̄_t = √(1-ᾱ_t)/√ᾱ_t (the "equivalent noise level"), λ the regularisation weight,
τ the trade-off (1 generative, 0 discriminative), ζ the fresh-noise fraction, σ_y the
measurement noise ([0, 1] scale) and timesteps t_i visited in the 'quad' order
(seq_i = ⌊√(i T² / (n-1))⌋, last one T - 1, t_i = T - 1 - seq_i), each iteration i:

  x_r  = D(x̂_0, t(2 σ^pnp_i))                 deterministic: the model's x̂_0 of the current estimate
                                                (DPIR-style σ^pnp_i log-spaced 49/255 -> max(sf, 255 σ_y)/255)
  x_d  = D(x_t, t_i)                           stochastic branch: x̂_0 of the sampler state
  x̂_0 ← x̂_0 - s_i [Aᵀ(A x̂_0 - y) + λ(1-τ) σ_y² (x̂_0 - x_r) + ρ_i (x̂_0 - x_d)],
        s_i = 1 / (1 + λ(1-τ) σ_y² + ρ_i),  ρ_i = λ τ max(σ_y, 1e-3)² / σ̄_{t_i}²
  x_t  ← √ᾱ_{t_{i+1}} x̂_0 + √(1-ζ) √(1-ᾱ_{t_{i+1}}) ε̂ + √ζ √(1-ᾱ_{t_{i+1}}) z,
        ε̂ = (x_t - √ᾱ_{t_i} x̂_0) / √(1-ᾱ_{t_i})
The output is x_d of the last iteration (t = 0). The official data step is that one
gradient step (`data_step='gradient'`); `data_step='closed_form'` instead minimises
the same quadratic exactly, (AᵀA + α) x̂_0 = Aᵀy + λ(1-τ)σ_y² x_r + ρ_i x_d with the
operator's FFT solution (`jaxir.diffusion.operators`).

The whole loop is one `lax.scan` over iterations with PRNG keys folded per step.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxir.diffusion.operators import data_step_gradient


@dataclasses.dataclass(frozen=True)
class RDMDConfig:
    """Defaults of the official scripts (deblurring; super-resolution uses ζ = 0, `sr_config`)."""

    iter_num: int = 100
    num_train_timesteps: int = 1000
    lambda_: float = 20.0
    tau: float = 0.5
    zeta: float = 0.3
    noise_level_img: float = 12.75 / 255.0  # σ_y on the [0, 1] scale
    skip_type: str = "quad"  # or 'uniform'
    model_sigma1: float = 49.0
    scale: int = 1  # super-resolution factor (sets σ^pnp's end point)
    data_step: str = "gradient"  # 'gradient' (official) or 'closed_form'


def sr_config(scale: int = 4, **kwargs) -> RDMDConfig:
    """`rdmd_sr.py` defaults: ζ = 0, σ^pnp ending at max(sf, 255 σ_y)."""
    return RDMDConfig(zeta=kwargs.pop("zeta", 0.0), scale=scale, **kwargs)


def _find_nearest(array: np.ndarray, value: float) -> int:
    return int(np.abs(array - value).argmin())


def timestep_sequence(config: RDMDConfig) -> list[int]:
    """The official `seq`: 'uniform' (i·skip, then T-1) or 'quad' (√linspace(0, T², n), last - 1)."""
    T, n = config.num_train_timesteps, config.iter_num
    if config.skip_type == "uniform":
        skip = T // n
        seq = [i * skip for i in range(n)]
        if skip > 1:
            seq.append(T - 1)
        return seq
    if config.skip_type == "quad":
        seq = [int(s) for s in np.sqrt(np.linspace(0, T ** 2, n))]
        seq[-1] -= 1
        return seq
    raise ValueError(f"skip_type must be 'uniform' or 'quad', got {config.skip_type!r}")


def schedule(config: RDMDConfig) -> dict[str, np.ndarray]:
    """Per-iteration constants of the loop (numpy, float32 arrays as the official float32 betas)."""
    T = config.num_train_timesteps
    betas = np.linspace(1e-4, 0.02, T, dtype=np.float32)
    alphas_cumprod = np.cumprod(1.0 - betas, dtype=np.float32)
    sqrt_ac, sqrt_1m = np.sqrt(alphas_cumprod), np.sqrt(1.0 - alphas_cumprod)
    reduced = sqrt_1m / sqrt_ac
    sigma = max(0.001, config.noise_level_img)
    seq = timestep_sequence(config)
    t_i = np.array([_find_nearest(reduced, reduced[T - 1 - s]) for s in seq])
    sigma2 = max(config.scale, config.noise_level_img * 255.0)
    pnp_sigmas = np.logspace(np.log10(config.model_sigma1), np.log10(sigma2), config.iter_num).astype(np.float32) / 255.0
    t_restore = np.array([_find_nearest(reduced, 2 * pnp_sigmas[min(i, len(pnp_sigmas) - 1)]) for i in range(len(seq))])
    rho = config.lambda_ * config.tau * sigma ** 2 / reduced ** 2
    return {
        "sqrt_ac": sqrt_ac, "sqrt_1m": sqrt_1m, "reduced": reduced,
        "t": t_i, "t_next": np.append(t_i[1:], 0), "t_restore": t_restore, "rho": rho[t_i].astype(np.float32),
    }


def initial_state(config: RDMDConfig, y, x_init, key):
    """(x̂_0, x_T): deblurring starts x_T from y diffused from its own noise level to T-1; SR from √ᾱ x_init + noise."""
    s = schedule(config)
    T = config.num_train_timesteps
    noise = jax.random.normal(key, x_init.shape, jnp.float32)
    if config.scale == 1:
        t_y = _find_nearest(s["reduced"], 2 * config.noise_level_img)
        a = s["sqrt_ac"][T - 1] / s["sqrt_ac"][t_y]
        std = np.sqrt(s["sqrt_1m"][T - 1] ** 2 - a ** 2 * s["sqrt_1m"][t_y] ** 2)
        return x_init, a * x_init + std * noise
    return x_init, s["sqrt_ac"][T - 1] * x_init + s["sqrt_1m"][T - 1] * noise


def restore(x0_fn: Callable, operator, y, x_init, key, config: RDMDConfig = RDMDConfig()):
    """Run RDMD. x0_fn(x_t, timesteps) -> the diffusion model's x̂_0 (clipped to [-1, 1]);
    y the measurement and x_init the initial estimate (y itself for deblurring, an upsampled
    y for SR), both in [-1, 1]. Returns the restored image in [-1, 1]."""
    if config.data_step not in ("gradient", "closed_form"):
        raise ValueError(f"data_step must be 'gradient' or 'closed_form', got {config.data_step!r}")
    s = schedule(config)
    key_init, key_loop = jax.random.split(key)
    x0, x = initial_state(config, y, x_init, key_init)
    batch = x.shape[0]
    sqrt_ac, sqrt_1m = jnp.asarray(s["sqrt_ac"]), jnp.asarray(s["sqrt_1m"])
    lam_red = config.lambda_ * (1.0 - config.tau)
    red_weight = lam_red * config.noise_level_img ** 2
    zeta = config.zeta

    def model(x, t):
        return x0_fn(x, jnp.full((batch,), t, jnp.float32))

    def body(carry, inputs):
        x0, x = carry
        index, t, t_next, t_restore, rho = inputs
        x_restored = model(x0, t_restore)
        x_diff = model(x, t)
        if config.data_step == "gradient":
            step = 1.0 / (1.0 + red_weight + rho)
            x0_new = x0 - step * (data_step_gradient(operator, x0, y) + red_weight * (x0 - x_restored)
                                  + rho * (x0 - x_diff))
        else:
            alpha = red_weight + rho
            x0_new = operator.prox(y, (red_weight * x_restored + rho * x_diff) / alpha, alpha)
        eps = (x - sqrt_ac[t] * x0_new) / sqrt_1m[t]
        noise = jax.random.normal(jax.random.fold_in(key_loop, index), x.shape, x.dtype)
        x = sqrt_ac[t_next] * x0_new + np.sqrt(1 - zeta) * sqrt_1m[t_next] * eps + np.sqrt(zeta) * sqrt_1m[t_next] * noise
        return (x0_new, x), None

    n = len(s["t"]) - 1  # every iteration but the last has a data step and a re-noising
    inputs = (jnp.arange(n), jnp.asarray(s["t"][:n]), jnp.asarray(s["t_next"][:n]),
              jnp.asarray(s["t_restore"][:n]), jnp.asarray(s["rho"][:n]))
    (x0, x), _ = jax.lax.scan(body, (x0, x), inputs)
    return model(x, int(s["t"][-1]))


def adm_x0_fn(model, variables, diffusion):
    """x̂_0 of an ADM U-Net (ε-prediction, learned σ ignored), clipped to [-1, 1], as `p_sample`'s pred_xstart."""

    def x0_fn(x, timesteps):
        output = model.apply(variables, x, timesteps)
        eps = output[..., :x.shape[-1]]
        t = timesteps.astype(jnp.int32)
        return jnp.clip(diffusion.x0_from_eps(x, t, eps), -1.0, 1.0)

    return x0_fn


# The official priors (`create_model_and_diffusion` with RDMD's model_config) as `adm_unet` kwargs.
_ADM_COMMON = dict(in_channels=3, out_channels=6, dropout=0.0, channel_mult=(1, 1, 2, 2, 4, 4), num_heads=4,
                   num_head_channels=64, use_scale_shift_norm=True, resblock_updown=True)
PRIORS = {
    "ffhq": dict(model_channels=128, num_res_blocks=1, attention_resolutions=(16,), **_ADM_COMMON),  # diffusion_ffhq_10m
    "imagenet": dict(model_channels=256, num_res_blocks=2, attention_resolutions=(8, 16, 32),
                     **_ADM_COMMON),  # 256x256_diffusion_uncond
}


def dps_gaussian_kernel(size: int = 61, std: float = 3.0) -> np.ndarray:
    """The Gaussian kernel of RDMD's deblurring (DPS `get_operator('gaussian_blur', kernel_size=61,
    intensity=3.0)`: scipy.ndimage.gaussian_filter of a centred delta)."""
    import scipy.ndimage

    delta = np.zeros((size, size))
    delta[size // 2, size // 2] = 1.0
    return scipy.ndimage.gaussian_filter(delta, sigma=std).astype(np.float32)


def task(name: str, key=None):
    """(operator, RDMDConfig) for 'deblur_gaussian', 'deblur_motion' (a jaxir random motion kernel: the
    official draws from the `motionblur` package) or 'sr4', with the official defaults."""
    from jaxir.diffusion import operators

    if name == "deblur_gaussian":
        return operators.Blur(dps_gaussian_kernel()), RDMDConfig()
    if name == "deblur_motion":
        from jaxir.degradations.kernels import motion_kernel

        kernel = np.asarray(motion_kernel(jax.random.key(0) if key is None else key, 61))
        return operators.Blur(kernel), RDMDConfig()
    if name == "sr4":
        return operators.SuperResolution(4, operators.bicubic_kernel(4)), sr_config(4)
    raise ValueError(f"unknown RDMD task {name!r} (deblur_gaussian, deblur_motion, sr4)")


def restore_image(model, variables, operator, degraded, key, config: RDMDConfig):
    """One [0, 1] NHWC measurement -> the [0, 1] restoration with a converted ADM prior (`adm_unet`).
    Deblurring starts from y, super-resolution from A⁺y (the official starts from a cv2 bicubic upsampling)."""
    from jaxir.diffusion.gaussian import GaussianDiffusion

    y = 2 * jnp.asarray(degraded, jnp.float32) - 1
    x_init = y if config.scale == 1 else operator.pinv(y)
    x0_fn = adm_x0_fn(model, variables, GaussianDiffusion.from_schedule("linear", config.num_train_timesteps))
    out = jax.jit(lambda k: restore(x0_fn, operator, y, x_init, k, config))(key)
    return (out + 1) / 2
