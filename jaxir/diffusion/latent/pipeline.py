"""Latent-diffusion training and sampling around `jaxir.models.ldm_unet`, on the diffusion core
(`GaussianDiffusion`, w11's DDIM `lax.scan` sampler).

- SD's "scaled linear" betas: linspace(sqrt(0.00085), sqrt(0.012), 1000)^2.
- InstructPix2Pix hybrid conditioning (Brooks et al., CVPR 2023; GenDeg trains this way): the U-Net sees
  cat(z_t, E(image)) along channels and the text context by cross-attention.
- Its classifier-free guidance with separate scales (`edit_cli.py` CFGDenoiser):
  ε = ε(∅, ∅) + s_I (ε(c_I, ∅) − ε(∅, ∅)) + s_T (ε(c_I, c_T) − ε(c_I, ∅)),
  the null image being zeros and the null text the empty prompt's embedding.
- Training drops the text (p=0.05), the image (p=0.05) or both (together 0.05) as the paper, and
  regresses ε with an MSE (the official `LatentDiffusion` loss with l_simple_weight 1).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxir.diffusion import samplers
from jaxir.diffusion.gaussian import GaussianDiffusion


def sd_betas(num_timesteps: int = 1000, start: float = 0.00085, end: float = 0.012) -> np.ndarray:
    return np.linspace(np.sqrt(start), np.sqrt(end), num_timesteps, dtype=np.float64) ** 2


def sd_diffusion(num_timesteps: int = 1000) -> GaussianDiffusion:
    return GaussianDiffusion(sd_betas(num_timesteps))


def guided_eps(unet_fn, z, t, image_latent, context, null_context, text_scale: float, image_scale: float):
    """InstructPix2Pix dual guidance; one batched U-Net call over the three conditionings."""
    n = z.shape[0]
    zs = jnp.concatenate([z, z, z])
    images = jnp.concatenate([image_latent, image_latent, jnp.zeros_like(image_latent)])
    null = jnp.broadcast_to(null_context, context.shape)
    contexts = jnp.concatenate([context, null, null])
    out = unet_fn(jnp.concatenate([zs, images], axis=-1), jnp.concatenate([t, t, t]), contexts)
    full, image_only, uncond = out[:n], out[n:2 * n], out[2 * n:]
    return uncond + image_scale * (image_only - uncond) + text_scale * (full - image_only)


def sample(unet, variables, diffusion: GaussianDiffusion, image_latent, context, null_context, key,
           steps: int = 50, text_scale: float = 7.5, image_scale: float = 1.5, eta: float = 0.0):
    """DDIM over `steps` respaced steps from pure noise; returns the edited latent (scaled space)."""
    process = diffusion.respaced(f"ddim{steps}") if steps < diffusion.num_timesteps else diffusion

    def model_fn(z, t):
        return guided_eps(lambda x, tt, c: unet.apply(variables, x, tt, c), z, t, image_latent, context,
                          null_context, text_scale, image_scale)

    key_init, key_loop = jax.random.split(key)
    z_T = jax.random.normal(key_init, image_latent.shape, jnp.float32)
    return jax.jit(lambda z, k: samplers.ddim_sample(process, model_fn, z, k, eta, clip_denoised=False))(z_T, key_loop)


@dataclasses.dataclass(frozen=True)
class DropProbs:
    text: float = 0.05
    image: float = 0.05
    both: float = 0.05


def training_pair(unet_fn, diffusion: GaussianDiffusion, z0, image_latent, context, null_context, key,
                  drop: DropProbs = DropProbs()):
    """(ε prediction, ε) with InstructPix2Pix's conditioning dropout; `unet_fn(x, t, context)`. The pair a
    `training_outputs` returns to the shared training loop (whose MSE term is the official loss)."""
    k_t, k_n, k_d = jax.random.split(key, 3)
    n = z0.shape[0]
    t = jax.random.randint(k_t, (n,), 0, diffusion.num_timesteps)
    noise = jax.random.normal(k_n, z0.shape, z0.dtype)
    zt = diffusion.q_sample(z0, t, noise)
    u = jax.random.uniform(k_d, (n,))
    drop_text = (u < drop.text) | ((u >= drop.text + drop.image) & (u < drop.text + drop.image + drop.both))
    drop_image = (u >= drop.text) & (u < drop.text + drop.image + drop.both)
    context = jnp.where(drop_text[:, None, None], jnp.broadcast_to(null_context, context.shape), context)
    image_latent = jnp.where(drop_image[:, None, None, None], 0.0, image_latent)
    eps = unet_fn(jnp.concatenate([zt, image_latent], axis=-1), t, context)
    return eps, noise


def training_loss(unet_fn, diffusion: GaussianDiffusion, z0, image_latent, context, null_context, key,
                  drop: DropProbs = DropProbs()):
    """ε-prediction MSE of `training_pair` (the official `LatentDiffusion` loss, l_simple_weight 1)."""
    eps, noise = training_pair(unet_fn, diffusion, z0, image_latent, context, null_context, key, drop)
    return jnp.mean(jnp.square(eps - noise))
