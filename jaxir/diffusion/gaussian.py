"""The Gaussian diffusion process of DDPM/ADM (openai/guided-diffusion `GaussianDiffusion`), functional.

Forward process q(x_t | x_0) = N(√ᾱ_t x_0, (1 - ᾱ_t) I); posterior
q(x_{t-1} | x_t, x_0) = N(μ̃_t, β̃_t I) with
μ̃_t = β_t √ᾱ_{t-1} / (1 - ᾱ_t) x_0 + (1 - ᾱ_{t-1}) √α_t / (1 - ᾱ_t) x_t,
β̃_t = β_t (1 - ᾱ_{t-1}) / (1 - ᾱ_t).
The network predicts ε, x_0 or v = √ᾱ ε - √(1-ᾱ) x_0 (Salimans & Ho); with learned
σ ("Improved DDPM") its second half v ∈ [-1, 1] interpolates log β̃_t and log β_t.
Coefficients are computed in float64 with numpy, held as float32 arrays.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxir.diffusion import schedules

PARAMETERISATIONS = ("epsilon", "x0", "v")
VARIANCES = ("fixed_small", "fixed_large", "learned_range")


def _bcast(values: jax.Array, t: jax.Array, ndim: int) -> jax.Array:
    """values[t] shaped (N, 1, ..., 1) to broadcast against an (N, ...) batch."""
    out = jnp.take(values, t)
    return out.reshape(out.shape + (1,) * (ndim - out.ndim))


@dataclasses.dataclass(frozen=True)
class GaussianDiffusion:
    """A discrete diffusion process. `timestep_map[t]` is the timestep the network is given
    (the original step after respacing). Use `from_betas` / `respaced`."""

    betas: np.ndarray
    parameterisation: str = "epsilon"
    variance: str = "fixed_small"
    timestep_map: np.ndarray | None = None

    def __post_init__(self):
        if self.parameterisation not in PARAMETERISATIONS:
            raise ValueError(f"parameterisation must be one of {PARAMETERISATIONS}, got {self.parameterisation!r}")
        if self.variance not in VARIANCES:
            raise ValueError(f"variance must be one of {VARIANCES}, got {self.variance!r}")
        betas = np.asarray(self.betas, np.float64)
        if betas.ndim != 1 or not ((betas > 0) & (betas <= 1)).all():
            raise ValueError("betas must be a 1-D array in (0, 1]")
        object.__setattr__(self, "betas", betas)
        if self.timestep_map is None:
            object.__setattr__(self, "timestep_map", np.arange(len(betas), dtype=np.int32))

    @classmethod
    def from_schedule(cls, name: str = "linear", num_timesteps: int = 1000, **kwargs) -> "GaussianDiffusion":
        return cls(schedules.named_betas(name, num_timesteps), **kwargs)

    def respaced(self, section_counts) -> "GaussianDiffusion":
        """The process on a subset of steps (`space_timesteps` counts or 'ddimN'), as `SpacedDiffusion`."""
        use = schedules.space_timesteps(self.num_timesteps, section_counts) \
            if not isinstance(section_counts, (set, frozenset)) else section_counts
        betas, keep = schedules.respace_betas(self.betas, use)
        return dataclasses.replace(self, betas=betas, timestep_map=np.asarray(self.timestep_map)[keep])

    # --- float64 coefficient tables, float32 on use ---
    @property
    def num_timesteps(self) -> int:
        return int(self.betas.shape[0])

    @property
    def alphas_cumprod(self) -> np.ndarray:
        return np.cumprod(1.0 - self.betas)

    @property
    def alphas_cumprod_prev(self) -> np.ndarray:
        return np.append(1.0, self.alphas_cumprod[:-1])

    @property
    def posterior_variance(self) -> np.ndarray:
        return self.betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)

    @property
    def posterior_log_variance_clipped(self) -> np.ndarray:
        # β̃_0 = 0: the log uses β̃_1 there, as the official code.
        v = self.posterior_variance
        return np.log(np.append(v[1], v[1:])) if len(v) > 1 else np.log(np.maximum(v, 1e-20))

    def _table(self, name: str) -> jax.Array:
        ac, acp = self.alphas_cumprod, self.alphas_cumprod_prev
        tables = {
            "sqrt_ac": np.sqrt(ac),
            "sqrt_1m_ac": np.sqrt(1.0 - ac),
            "sqrt_recip_ac": np.sqrt(1.0 / ac),
            "sqrt_recipm1_ac": np.sqrt(1.0 / ac - 1.0),
            "post_coef1": self.betas * np.sqrt(acp) / (1.0 - ac),
            "post_coef2": (1.0 - acp) * np.sqrt(1.0 - self.betas) / (1.0 - ac),
            "post_var": self.posterior_variance,
            "post_logvar": self.posterior_log_variance_clipped,
            "log_betas": np.log(self.betas),
            "large_var": np.append(self.posterior_variance[1], self.betas[1:]) if self.num_timesteps > 1 else self.betas,
            "ac": ac,
            "acp": acp,
        }
        return jnp.asarray(tables[name], jnp.float32)

    def coef(self, name: str, t, ndim: int):
        return _bcast(self._table(name), jnp.asarray(t), ndim)

    # --- forward process ---
    def q_mean_variance(self, x0, t):
        return self.coef("sqrt_ac", t, x0.ndim) * x0, 1.0 - self.coef("ac", t, x0.ndim)

    def q_sample(self, x0, t, noise):
        return self.coef("sqrt_ac", t, x0.ndim) * x0 + self.coef("sqrt_1m_ac", t, x0.ndim) * noise

    def q_posterior_mean_variance(self, x0, xt, t):
        n = xt.ndim
        mean = self.coef("post_coef1", t, n) * x0 + self.coef("post_coef2", t, n) * xt
        return mean, self.coef("post_var", t, n), self.coef("post_logvar", t, n)

    # --- parameterisations ---
    def x0_from_eps(self, xt, t, eps):
        return self.coef("sqrt_recip_ac", t, xt.ndim) * xt - self.coef("sqrt_recipm1_ac", t, xt.ndim) * eps

    def eps_from_x0(self, xt, t, x0):
        return (self.coef("sqrt_recip_ac", t, xt.ndim) * xt - x0) / self.coef("sqrt_recipm1_ac", t, xt.ndim)

    def v_target(self, x0, t, noise):
        return self.coef("sqrt_ac", t, x0.ndim) * noise - self.coef("sqrt_1m_ac", t, x0.ndim) * x0

    def x0_from_v(self, xt, t, v):
        return self.coef("sqrt_ac", t, xt.ndim) * xt - self.coef("sqrt_1m_ac", t, xt.ndim) * v

    def predict_x0(self, xt, t, output):
        """x_0 from the network's (mean) output under this process's parameterisation."""
        if self.parameterisation == "epsilon":
            return self.x0_from_eps(xt, t, output)
        if self.parameterisation == "v":
            return self.x0_from_v(xt, t, output)
        return output

    def training_target(self, x0, t, noise):
        if self.parameterisation == "epsilon":
            return noise
        return x0 if self.parameterisation == "x0" else self.v_target(x0, t, noise)

    # --- reverse process ---
    def split_output(self, output, channels: int):
        """(mean output, variance values or None): learned σ doubles the channels."""
        if self.variance == "learned_range":
            if output.shape[-1] != 2 * channels:
                raise ValueError(f"learned_range needs {2 * channels} output channels, got {output.shape[-1]}")
            return output[..., :channels], output[..., channels:]
        return output, None

    def p_mean_variance(self, output, xt, t, clip_denoised: bool = True,
                        denoised_fn: Callable | None = None):
        """Mean, log-variance and x̂_0 of p(x_{t-1} | x_t) given the raw network output (NHWC)."""
        mean_out, var_values = self.split_output(output, xt.shape[-1])
        n = xt.ndim
        if var_values is not None:
            min_log, max_log = self.coef("post_logvar", t, n), self.coef("log_betas", t, n)
            frac = (var_values + 1) / 2
            log_variance = frac * max_log + (1 - frac) * min_log
        elif self.variance == "fixed_large":
            log_variance = jnp.log(self.coef("large_var", t, n)) * jnp.ones_like(xt)
        else:
            log_variance = self.coef("post_logvar", t, n) * jnp.ones_like(xt)
        x0 = self.predict_x0(xt, t, mean_out)
        if denoised_fn is not None:
            x0 = denoised_fn(x0)
        if clip_denoised:
            x0 = jnp.clip(x0, -1.0, 1.0)
        mean, _, _ = self.q_posterior_mean_variance(x0, xt, t)
        return mean, log_variance, x0

    def model_timesteps(self, t):
        """The timestep values the network sees for process steps t (respacing maps them back)."""
        return jnp.take(jnp.asarray(self.timestep_map, jnp.float32), jnp.asarray(t))
