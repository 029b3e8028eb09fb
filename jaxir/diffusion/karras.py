"""Karras et al. (EDM) denoiser parameterisation as the consistency models use it
(openai/consistency_models `cm/karras_diffusion.py` `KarrasDenoiser.denoise`).

D(x, σ) = c_skip(σ) x + c_out(σ) F(c_in(σ) x, 250 log σ), with
c_in = 1 / √(σ² + σ_d²) and, for consistency models (boundary condition D(x, σ_min) = x),
c_skip = σ_d² / ((σ - σ_min)² + σ_d²), c_out = (σ - σ_min) σ_d / √(σ² + σ_d²);
for EDM-trained denoisers c_skip = σ_d² / (σ² + σ_d²), c_out = σ σ_d / √(σ² + σ_d²).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class KarrasDenoiser:
    sigma_data: float = 0.5
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    distillation: bool = True  # consistency-model boundary-condition scalings

    def scalings(self, sigma):
        sd = self.sigma_data
        c_in = 1.0 / jnp.sqrt(sigma ** 2 + sd ** 2)
        if self.distillation:
            c_skip = sd ** 2 / ((sigma - self.sigma_min) ** 2 + sd ** 2)
            c_out = (sigma - self.sigma_min) * sd / jnp.sqrt(sigma ** 2 + sd ** 2)
        else:
            c_skip = sd ** 2 / (sigma ** 2 + sd ** 2)
            c_out = sigma * sd / jnp.sqrt(sigma ** 2 + sd ** 2)
        return c_skip, c_out, c_in

    @staticmethod
    def rescaled_time(sigma):
        """The network's timestep input: 1000 · 0.25 · log σ."""
        return 250.0 * jnp.log(sigma + 1e-44)

    def denoise(self, network: Callable, x, sigma, scaling_sigma=None):
        """D(x, σ) for a batch; σ scalar or (N,). `scaling_sigma` overrides the σ the scalings and the
        timestep use (CM4IR's δ-injection evaluates the network at (1 + δ) σ)."""
        sigma = jnp.broadcast_to(jnp.asarray(sigma, jnp.float32), (x.shape[0],))
        s = sigma if scaling_sigma is None else jnp.broadcast_to(jnp.asarray(scaling_sigma, jnp.float32), sigma.shape)
        c_skip, c_out, c_in = (c[:, None, None, None] for c in self.scalings(s))
        output = network(c_in * x, self.rescaled_time(s))
        return c_out * output + c_skip * x


def karras_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0):
    """Karras et al. (2022) noise levels σ_i = (σ_max^(1/ρ) + i/(n-1) (σ_min^(1/ρ) - σ_max^(1/ρ)))^ρ, then 0."""
    ramp = jnp.linspace(0.0, 1.0, n)
    sigmas = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return jnp.append(sigmas, 0.0)


def multistep_consistency_sample(denoiser: KarrasDenoiser, network: Callable, x_T, key, ts, steps: int = 40,
                                 rho: float = 7.0, clip_denoised: bool = True):
    """Consistency-model multistep sampling (`stochastic_iterative_sampler`): denoise at σ(ts[i]), re-noise
    to σ(ts[i+1]) with √(σ² - σ_min²) fresh noise; x_T should be σ_max-scaled noise. One lax.scan."""
    lo, hi = denoiser.sigma_min ** (1 / rho), denoiser.sigma_max ** (1 / rho)
    ts = jnp.asarray(ts, jnp.float32)
    sig = lambda t: (hi + t / (steps - 1) * (lo - hi)) ** rho

    def body(x, inputs):
        index, t, t_next = inputs
        x0 = denoiser.denoise(network, x, sig(t))
        if clip_denoised:
            x0 = jnp.clip(x0, -1.0, 1.0)
        next_sigma = jnp.clip(sig(t_next), denoiser.sigma_min, denoiser.sigma_max)
        noise = jax.random.normal(jax.random.fold_in(key, index), x.shape, x.dtype)
        return x0 + noise * jnp.sqrt(next_sigma ** 2 - denoiser.sigma_min ** 2), None

    x, _ = jax.lax.scan(body, x_T, (jnp.arange(len(ts) - 1), ts[:-1], ts[1:]))
    return x
