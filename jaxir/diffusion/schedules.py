"""Noise schedules and timestep respacing (openai/guided-diffusion `gaussian_diffusion.py`, `respace.py`)."""
from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def linear_betas(num_timesteps: int = 1000) -> np.ndarray:
    """DDPM's linear schedule 1e-4 .. 0.02, rescaled by 1000 / T so any T spans the same process (ADM)."""
    scale = 1000.0 / num_timesteps
    return np.linspace(scale * 1e-4, scale * 0.02, num_timesteps, dtype=np.float64)


def betas_for_alpha_bar(num_timesteps: int, alpha_bar, max_beta: float = 0.999) -> np.ndarray:
    """β_i = min(1 - ᾱ((i+1)/T) / ᾱ(i/T), max_beta): discretises a continuous ᾱ(t) on [0, 1]."""
    return np.array([min(1.0 - alpha_bar((i + 1) / num_timesteps) / alpha_bar(i / num_timesteps), max_beta)
                     for i in range(num_timesteps)], np.float64)


def cosine_betas(num_timesteps: int = 1000, s: float = 0.008) -> np.ndarray:
    """Improved DDPM's cosine schedule ᾱ(t) = cos²((t + s) / (1 + s) · π/2)."""
    return betas_for_alpha_bar(num_timesteps, lambda t: math.cos((t + s) / (1 + s) * math.pi / 2) ** 2)


def named_betas(name: str, num_timesteps: int) -> np.ndarray:
    if name == "linear":
        return linear_betas(num_timesteps)
    if name == "cosine":
        return cosine_betas(num_timesteps)
    raise ValueError(f"unknown beta schedule {name!r} (linear, cosine)")


def space_timesteps(num_timesteps: int, section_counts: str | Sequence[int]) -> set[int]:
    """Timesteps kept when respacing, as guided-diffusion: `section_counts` steps taken evenly (rounded)
    from each of len(section_counts) equal portions, or 'ddimN' for the DDIM paper's fixed integer stride."""
    if isinstance(section_counts, str):
        if section_counts.startswith("ddim"):
            desired = int(section_counts[len("ddim"):])
            for stride in range(1, num_timesteps):
                if len(range(0, num_timesteps, stride)) == desired:
                    return set(range(0, num_timesteps, stride))
            raise ValueError(f"cannot create exactly {desired} steps with an integer stride")
        section_counts = [int(x) for x in section_counts.split(",")]
    size_per, extra = divmod(num_timesteps, len(section_counts))
    start, steps = 0, []
    for i, count in enumerate(section_counts):
        size = size_per + (1 if i < extra else 0)
        if size < count:
            raise ValueError(f"cannot divide section of {size} steps into {count}")
        stride = 1 if count <= 1 else (size - 1) / (count - 1)
        # Accumulated float index and Python's round (half to even), exactly as the official code.
        index = 0.0
        for _ in range(count):
            steps.append(start + round(index))
            index += stride
        start += size
    return set(steps)


def respace_betas(betas: np.ndarray, use_timesteps) -> tuple[np.ndarray, np.ndarray]:
    """(new betas, timestep map) of the process restricted to `use_timesteps`: ᾱ is kept at those steps
    and β'_k = 1 - ᾱ_{t_k} / ᾱ_{t_{k-1}} (guided-diffusion `SpacedDiffusion`)."""
    keep = sorted(set(int(t) for t in use_timesteps))
    alphas_cumprod = np.cumprod(1.0 - np.asarray(betas, np.float64))
    last, new_betas = 1.0, []
    for t in keep:
        new_betas.append(1.0 - alphas_cumprod[t] / last)
        last = alphas_cumprod[t]
    return np.array(new_betas), np.array(keep, np.int32)


def sample_continuous_sqrt_alpha_bar(key, alphas_cumprod, shape: Sequence[int]) -> tuple[jax.Array, jax.Array]:
    """SR3 / DvSR continuous noise level: t ~ U{1..T}, then √γ ~ U(√ᾱ_t, √ᾱ_{t-1}) (ᾱ_0 = 1).

    The network is conditioned on √γ itself rather than on t, so it sees every
    noise level between the discrete steps. Returns (√γ, t) with t in [1, T].
    """
    alphas_cumprod = jnp.asarray(alphas_cumprod, jnp.float32)
    prev = jnp.concatenate([jnp.ones((1,), jnp.float32), alphas_cumprod])
    key_t, key_u = jax.random.split(key)
    t = jax.random.randint(key_t, tuple(shape), 1, alphas_cumprod.shape[0] + 1)
    low, high = jnp.sqrt(prev[t]), jnp.sqrt(prev[t - 1])
    return jax.random.uniform(key_u, tuple(shape), minval=low, maxval=high), t
