"""DvSR: "Deblurring via Stochastic Refinement" (Whang, Delbracio, Talebi, Saharia, Dimakis,
Milanfar; CVPR 2022). No official code: written from the paper.

Predict-and-refine. A deterministic predictor g gives x_init = g(y); a conditional
denoiser f models the residual x_0 = x - g(y) with a continuous-noise-level diffusion
(SR3 / WaveGrad):

  training   γ: t ~ U{1..T}, √γ ~ U(√γ_t, √γ_{t-1});  ε ~ N(0, I)
             z = √γ (x - g(y)) + √(1-γ) ε
             L = || f(y, z, √γ) - ε ||_1      (g and f trained jointly through this one loss;
                                               `prediction='x0'` regresses x - g(y) instead)
  sampling   (Algorithm 1) z_T ~ N(0, I); for t = T..1:
             z_{t-1} = (z_t - (1-α_t)/√(1-γ_t) f(y, z_t, √γ_t)) / √α_t + [t > 1] √(1-α_t) ε_t
             x̂ = x_init + z_0
  "Ours-SA"  the mean of K samples x̂ (distortion-oriented); one sample is the perceptual output.

Both networks are the ADM U-Net of `jaxir.models.adm_unet` without attention: g with
channel multipliers (1, 2, 3, 4) from 64 channels (its timestep input fixed at 0, so
the time embedding is a learned bias) predicting a residual on y; f with (1, 2, 3, 4)
from 32 channels taking [y, z] (6 channels) and the noise level as the timestep
`noise_level_scale · √γ`. Choices the paper does not pin down and this port makes:
the residual form of g, the embedding scale (1000), L1 on ε, the training schedule
(linear β 1e-6..1e-2 over T = 2000, SR3's) and the sampling schedule (`sampling_betas`).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxir import registry
from jaxir.diffusion.schedules import sample_continuous_sqrt_alpha_bar
from jaxir.models.adm_unet import ADMUNet


class DvSR(nn.Module):
    in_channels: int = 3
    predictor_channels: int = 64
    predictor_mult: Sequence[int] = (1, 2, 3, 4)
    denoiser_channels: int = 32
    denoiser_mult: Sequence[int] = (1, 2, 3, 4)
    num_res_blocks: int = 2
    dropout: float = 0.0
    train_timesteps: int = 2000
    beta_start: float = 1e-6
    beta_end: float = 1e-2
    noise_level_scale: float = 1000.0
    prediction: str = "epsilon"  # or 'x0' (the residual)
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        common = dict(num_res_blocks=self.num_res_blocks, attention_resolutions=(), dropout=self.dropout,
                      use_scale_shift_norm=True, resblock_updown=False, dtype=self.dtype)
        self.predictor = ADMUNet(in_channels=self.in_channels, model_channels=self.predictor_channels,
                                 out_channels=self.in_channels, channel_mult=tuple(self.predictor_mult), **common)
        self.denoiser = ADMUNet(in_channels=2 * self.in_channels, model_channels=self.denoiser_channels,
                                out_channels=self.in_channels, channel_mult=tuple(self.denoiser_mult), **common)

    def initial(self, y, train: bool = False):
        """x_init = y + g(y)."""
        return y + self.predictor(y, jnp.zeros((y.shape[0],), jnp.float32), train=train)

    def denoise(self, y, z, sqrt_gamma, train: bool = False):
        """f(y, z, √γ): the ε (or residual) prediction."""
        t = self.noise_level_scale * jnp.broadcast_to(jnp.asarray(sqrt_gamma, jnp.float32), (y.shape[0],))
        return self.denoiser(jnp.concatenate([y, z], axis=-1), t, train=train)

    def __call__(self, y, train: bool = False):
        """The deterministic initial prediction g(y) (what evaluation during training scores);
        `jaxir restore --samples K` runs the stochastic refinement (`sample`)."""
        x_init = self.initial(y, train)
        if self.is_initializing():  # create the denoiser's parameters too
            self.denoise(y, jnp.zeros_like(y), jnp.ones((y.shape[0],)))
        return x_init

    def training_outputs(self, y, x, train: bool = True):
        """(prediction, label) of the joint objective; per-example γ and ε from the 'noise' RNG stream."""
        if self.prediction not in ("epsilon", "x0"):
            raise ValueError(f"prediction must be 'epsilon' or 'x0', got {self.prediction!r}")
        key_gamma, key_eps = jax.random.split(self.make_rng("noise"))
        sqrt_gamma, _ = sample_continuous_sqrt_alpha_bar(key_gamma, train_alphas_cumprod(self), (y.shape[0],))
        residual = x - self.initial(y, train)
        eps = jax.random.normal(key_eps, y.shape, jnp.float32)
        g = sqrt_gamma[:, None, None, None]
        z = g * residual + jnp.sqrt(1 - g ** 2) * eps
        prediction = self.denoise(y, z, sqrt_gamma, train)
        return prediction, (eps if self.prediction == "epsilon" else residual)


def train_alphas_cumprod(model: DvSR) -> np.ndarray:
    betas = np.linspace(model.beta_start, model.beta_end, model.train_timesteps, dtype=np.float64)
    return np.cumprod(1.0 - betas)


def sampling_betas(num_steps: int = 100, beta_start: float = 1e-4, beta_end: float = 0.1) -> np.ndarray:
    """SR3's inference schedule (linear 1e-4..0.1 over 100 steps); the noise-level conditioning lets it
    differ from the training schedule."""
    return np.linspace(beta_start, beta_end, num_steps, dtype=np.float64)


def sample(model: DvSR, variables, y, key, num_samples: int = 1, betas: np.ndarray | None = None):
    """Algorithm 1, K samples: returns (mean of the samples ("Ours-SA"), the first sample), NHWC.

    One jitted computation: the predictor runs once, the K chains run batched through
    one `lax.scan` over the steps with noise from fold_in(key, step).
    """
    betas = sampling_betas() if betas is None else np.asarray(betas, np.float64)
    alphas = 1.0 - betas
    gammas = np.cumprod(alphas)
    steps = len(betas)
    x_init = model.apply(variables, y, method=DvSR.initial)
    n = y.shape[0]
    y_k = jnp.repeat(y, num_samples, axis=0)  # sample-major within each image: (n·K, H, W, C)
    coef_eps = jnp.asarray((1 - alphas) / np.sqrt(1 - gammas), jnp.float32)
    inv_sqrt_alpha = jnp.asarray(1 / np.sqrt(alphas), jnp.float32)
    sigma = jnp.asarray(np.sqrt(1 - alphas), jnp.float32)
    sqrt_gammas = jnp.asarray(np.sqrt(gammas), jnp.float32)
    sqrt_1m_gammas = jnp.asarray(np.sqrt(1 - gammas), jnp.float32)

    def body(z, t):
        output = model.apply(variables, y_k, z, sqrt_gammas[t], method=DvSR.denoise)
        if model.prediction == "x0":
            output = (z - sqrt_gammas[t] * output) / sqrt_1m_gammas[t]
        noise = jax.random.normal(jax.random.fold_in(key, t), z.shape, z.dtype)
        z = (z - coef_eps[t] * output) * inv_sqrt_alpha[t] + jnp.where(t > 0, sigma[t], 0.0) * noise
        return z, None

    z_T = jax.random.normal(jax.random.fold_in(key, steps), y_k.shape, jnp.float32)
    z0, _ = jax.lax.scan(body, z_T, jnp.arange(steps - 1, -1, -1))
    samples = jnp.repeat(x_init, num_samples, axis=0) + z0
    samples = samples.reshape(n, num_samples, *y.shape[1:])
    return samples.mean(axis=1), samples[:, 0]


def _stochastic_restore(model, variables, batch, key, num_samples):
    return sample(model, variables, batch, key, num_samples)


def build_dvsr(**kwargs) -> DvSR:
    for key in ("predictor_mult", "denoiser_mult"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    return DvSR(**kwargs)


registry.register_model(registry.ModelEntry(
    name="dvsr",
    builder=build_dvsr,
    pad_multiple=8,
    min_size=8,
    stochastic_restore=_stochastic_restore,
    description="DvSR (CVPR 2022, from the paper): predictor g + conditional residual denoiser f; "
                "`jaxir restore --samples K` gives one sample and the K-sample average.",
))
