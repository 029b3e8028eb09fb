"""OSDFace one-step face restoration (Wang et al., CVPR 2025; jkwang28/OSDFace `infer.py`).

The low-quality face x_L in [-1, 1] gives (a) the visual prompt: the VRE's (N, 77, 512) codes
(`osdface_vre.py`) through `embedding_change` (`lq_embed/inference.py` TwoLayerConv1x1: 1x1 Conv1d
512 -> 256, SiLU, 1x1 Conv1d 256 -> 1024, SiLU), which replaces the text embedding; (b) the latent
z_L = 0.18215 · a sample of the VAE posterior. One U-Net call at the fixed timestep t = 399 predicts ε,
x̂_0 = (z_L − √(1 − ᾱ_t) ε) / √ᾱ_t with SD's scaled-linear ᾱ, decoded by the VAE and clamped; optionally the
wavelet colour fix towards the input (`utils/wavelet_color_fix.py`, `colorfix.py`; `infer.py` does not apply it).

The embedder's input is as `lq_embed/inference.py` `vqvae_encoder.forward` makes it: x_L bilinearly resized
(align_corners=False) to 512² (the VRE's `resolution`), then normalised once more, (x_L − 0.5) / 0.5, although
x_L is already in [−1, 1] (the official code does this; the released VRE was used so).
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxir.diffusion.latent import autoencoder_kl as akl
from jaxir.diffusion.latent import colorfix, pipeline
from jaxir.models.blocks import interpolate_bilinear
from jaxir.models.unet_blocks import Pointwise

TIMESTEP = 399


class EmbeddingChange(nn.Module):
    """TwoLayerConv1x1(in, out) on (N, 77, in) prompts; `conv1`/`conv2` convert from Conv1d weights."""

    out_channels: int = 1024

    @nn.compact
    def __call__(self, x):
        x = nn.silu(Pointwise(x.shape[-1] // 2, name="conv1")(x))
        return nn.silu(Pointwise(self.out_channels, name="conv2")(x))


def x0_from_eps(z, eps, t: int = TIMESTEP, alpha_bar: float | None = None):
    if alpha_bar is None:
        alpha_bar = float(np.cumprod(1.0 - pipeline.sd_betas())[t])
    return (z - np.sqrt(1.0 - alpha_bar) * eps) / np.sqrt(alpha_bar)


def vre_input(lq, resolution: int):
    """`vqvae_encoder.forward`'s preprocessing of x_L in [-1, 1]."""
    return (interpolate_bilinear(lq, (resolution, resolution)) - 0.5) / 0.5


def restore(nets: dict, variables: dict, lq01, key, timestep: int = TIMESTEP, color_fix: bool = False,
            alpha_bar: float | None = None):
    """`nets`/`variables` keyed 'vre', 'embedding_change', 'unet', 'vae'; lq01 NHWC in [0, 1] -> restored."""
    lq = 2.0 * jnp.asarray(lq01, jnp.float32) - 1.0
    n = lq.shape[0]
    prompt = nets["vre"].apply(variables["vre"], vre_input(lq, nets["vre"].resolution)).reshape(n, 77, -1)
    prompt = nets["embedding_change"].apply(variables["embedding_change"], prompt)
    vae = nets["vae"]
    posterior = vae.apply(variables["vae"], lq, method=akl.AutoencoderKL.encode)
    z = posterior.sample(key) * vae.scaling_factor
    eps = nets["unet"].apply(variables["unet"], z, jnp.full((n,), timestep, jnp.int32), prompt)
    out = akl.decode_latents(vae, variables["vae"], x0_from_eps(z, eps, timestep, alpha_bar))
    return colorfix.wavelet_color_fix(out, jnp.asarray(lq01, jnp.float32)) if color_fix else out
