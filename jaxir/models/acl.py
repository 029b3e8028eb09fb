"""ACL: activating the capability of linear attention for image restoration.

Gu, Meng, Ji, Sun. "ACL: Activating Capability of Linear Attention for Image
Restoration", CVPR 2025 (pages 17913-17923). No official code was found; this module
is built from the paper's description (abstract and method outline): a Mamba-style
block whose selective scan is replaced by linear attention is the core of every
encoder/decoder stage, and a local enhancement module (LEM) of multi-scale dilated
convolutions recovers local detail. Widths, depths and the exact placement of the
LEM are jaxir's choices (a Restormer-shaped 4-level U-Net), not checked against the
paper's tables: see the README's "not done" section.

Linear attention (per head, feature map φ(x) = ELU(x) + 1 > 0, N tokens):

    A_ij = φ(q_i)·φ(k_j)
    o_i  = Σ_j A_ij v_j / Σ_j A_ij
         = φ(q_i)ᵀ (Σ_j φ(k_j) v_jᵀ) / (φ(q_i)ᵀ Σ_j φ(k_j))           (O(N d²), not O(N² d))

Its causal form is a recurrence, the selective scan with A = 0 (no decay), B_t = φ(k_t),
C_t = φ(q_t) — the congruence with Mamba's SSM the paper builds on:

    S_t = S_{t-1} + φ(k_t) v_tᵀ,  z_t = z_{t-1} + φ(k_t),  o_t = φ(q_t)ᵀ S_t / (φ(q_t)ᵀ z_t)

Mamba-style linear-attention block (LAB), on x ∈ R^{H×W×C}:

    a, g = W_in x                        (two branches, expansion `expand`)
    a    = SiLU(DWConv3x3(a))
    a    = LinearAttention(a) + DWConv3x3_lepe(a)   (positional term, as MLLA's LePE)
    y    = W_out(a ⊙ SiLU(g))

Local enhancement module (LEM): u = GELU(W_1 x); u_d = DWConv3x3_dilation=d(u) for
d in `dilations` (coarse to fine receptive fields); y = W_2 concat_d(u_d).

Block: x ← x + LAB(LN x); x ← x + LEM(LN x).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxir import registry
from jaxir.models.attention import merge_heads, split_heads
from jaxir.models.blocks import PRECISION, Conv2d, LayerNorm, gelu
from jaxir.models.restormer import Downsample, OverlapPatchEmbed, Upsample

Dtype = Any


def feature_map(x):
    """φ(x) = ELU(x) + 1: positive, so the normaliser never vanishes."""
    return jax.nn.elu(x) + 1.0


def linear_attention(q, k, v, eps: float = 1e-6):
    """Non-causal linear attention on (..., N, d) arrays (φ already applied to q and k): O(N d^2)."""
    kv = jnp.einsum("...nd,...ne->...de", k, v, precision=PRECISION)
    num = jnp.einsum("...nd,...de->...ne", q, kv, precision=PRECISION)
    den = jnp.einsum("...nd,...d->...n", q, jnp.sum(k, axis=-2), precision=PRECISION)
    return num / (den[..., None] + eps)


def causal_linear_attention(q, k, v, eps: float = 1e-6):
    """Causal linear attention (token t sees tokens <= t) on (..., N, d), by cumulative sums: the
    recurrence S_t = S_{t-1} + k_t v_t^T unrolled with an associative scan."""
    kv = jnp.cumsum(k[..., :, None] * v[..., None, :], axis=-3)  # (..., N, d, e)
    num = jnp.einsum("...nd,...nde->...ne", q, kv, precision=PRECISION)
    den = jnp.sum(q * jnp.cumsum(k, axis=-2), axis=-1)
    return num / (den[..., None] + eps)


class LinearAttention(nn.Module):
    """Multi-head linear attention over all pixels, with a depthwise-conv positional term (LePE)."""

    num_heads: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        b, h, w, c = x.shape
        dt = self.dtype
        qk = Conv2d(2 * c, 1, dtype=dt, name="qk")(x)
        q, k = jnp.split(qk.reshape(b, h * w, 2 * c), 2, axis=-1)
        q, k, v = (split_heads(t, self.num_heads) for t in (q, k, x.reshape(b, h * w, c)))
        out = linear_attention(feature_map(q.astype(jnp.float32)), feature_map(k.astype(jnp.float32)),
                               v.astype(jnp.float32))
        out = merge_heads(out).reshape(b, h, w, c).astype(dt)
        return out + Conv2d(c, 3, padding=1, groups=c, dtype=dt, name="lepe")(x)


class LinearAttentionBlock(nn.Module):
    """Mamba's block with linear attention in place of the selective scan."""

    num_heads: int
    expand: float = 1.0
    use_bias: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        c, dt = x.shape[-1], self.dtype
        inner = int(c * self.expand)
        inner -= inner % self.num_heads
        a, g = jnp.split(Conv2d(2 * inner, 1, use_bias=self.use_bias, dtype=dt, name="in_proj")(x), 2, axis=-1)
        a = nn.silu(Conv2d(inner, 3, padding=1, groups=inner, dtype=dt, name="dwconv")(a))
        a = LinearAttention(self.num_heads, dt, name="attn")(a)
        return Conv2d(c, 1, use_bias=self.use_bias, dtype=dt, name="out_proj")(a * nn.silu(g))


class LocalEnhancement(nn.Module):
    """Multi-scale dilated depthwise convolutions between two 1x1 projections."""

    expand: float = 2.0
    dilations: Sequence[int] = (1, 2, 3)
    use_bias: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        c, dt = x.shape[-1], self.dtype
        hidden = int(c * self.expand)
        u = gelu(Conv2d(hidden, 1, use_bias=self.use_bias, dtype=dt, name="project_in")(x))
        branches = [Conv2d(hidden, 3, padding=d, dilation=d, groups=hidden, use_bias=self.use_bias, dtype=dt,
                           name=f"dilated_{i}")(u) for i, d in enumerate(self.dilations)]
        return Conv2d(c, 1, use_bias=self.use_bias, dtype=dt, name="project_out")(
            gelu(jnp.concatenate(branches, axis=-1)))


class ACLBlock(nn.Module):
    num_heads: int
    expand: float = 1.0
    lem_expand: float = 2.0
    dilations: Sequence[int] = (1, 2, 3)
    use_bias: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        dt = self.dtype
        x = x + LinearAttentionBlock(self.num_heads, self.expand, self.use_bias, dt, name="lab")(
            LayerNorm(dtype=dt, name="norm1")(x))
        return x + LocalEnhancement(self.lem_expand, tuple(self.dilations), self.use_bias, dt, name="lem")(
            LayerNorm(dtype=dt, name="norm2")(x))


class ACL(nn.Module):
    """4-level U-Net of ACL blocks (encoder, latent, decoder, refinement) with a global input residual."""

    inp_channels: int = 3
    out_channels: int = 3
    dim: int = 48
    num_blocks: Sequence[int] = (4, 6, 6, 8)
    num_refinement_blocks: int = 4
    heads: Sequence[int] = (1, 2, 4, 8)
    expand: float = 1.0
    lem_expand: float = 2.0
    dilations: Sequence[int] = (1, 2, 3)
    use_bias: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, inp, train: bool = False):
        if inp.ndim != 4 or inp.shape[-1] != self.inp_channels:
            raise ValueError(f"ACL expects NHWC input with {self.inp_channels} channels, got shape {inp.shape}")
        if inp.shape[1] % 8 or inp.shape[2] % 8:
            raise ValueError(f"ACL needs H and W divisible by 8, got {inp.shape[1]}x{inp.shape[2]} "
                             "(registry pad_multiple=8)")
        dt, dim = self.dtype, self.dim
        inp = inp.astype(dt)

        def stage(x, num, heads, prefix):
            for i in range(num):
                x = ACLBlock(heads, self.expand, self.lem_expand, tuple(self.dilations), self.use_bias, dt,
                             name=f"{prefix}_{i}")(x)
            return x

        def reduce(x, features, name):
            return Conv2d(features, 1, use_bias=self.use_bias, dtype=dt, name=name)(x)

        nb, hd = self.num_blocks, self.heads
        enc1 = stage(OverlapPatchEmbed(dim, dtype=dt, name="patch_embed")(inp), nb[0], hd[0], "encoder_level1")
        enc2 = stage(Downsample(dt, name="down1_2")(enc1), nb[1], hd[1], "encoder_level2")
        enc3 = stage(Downsample(dt, name="down2_3")(enc2), nb[2], hd[2], "encoder_level3")
        latent = stage(Downsample(dt, name="down3_4")(enc3), nb[3], hd[3], "latent")
        x = reduce(jnp.concatenate([Upsample(dt, name="up4_3")(latent), enc3], -1), 4 * dim, "reduce_chan_level3")
        x = stage(x, nb[2], hd[2], "decoder_level3")
        x = reduce(jnp.concatenate([Upsample(dt, name="up3_2")(x), enc2], -1), 2 * dim, "reduce_chan_level2")
        x = stage(x, nb[1], hd[1], "decoder_level2")
        x = jnp.concatenate([Upsample(dt, name="up2_1")(x), enc1], -1)
        x = stage(x, nb[0], hd[0], "decoder_level1")
        x = stage(x, self.num_refinement_blocks, hd[0], "refinement")
        out = Conv2d(self.out_channels, 3, padding=1, use_bias=self.use_bias, dtype=dt, name="output")(x) + inp
        return out.astype(jnp.float32)


def build_acl(**kwargs) -> ACL:
    for key in ("num_blocks", "heads", "dilations"):
        if key in kwargs:
            kwargs[key] = tuple(int(v) for v in kwargs[key])
    return ACL(**kwargs)


# The paper's deblurring (GoPro) and deraining (Rain13K) models; sizes are jaxir's (see the docstring).
CONFIGS = {
    "gopro": dict(dim=48, num_blocks=(4, 6, 6, 8), num_refinement_blocks=4, heads=(1, 2, 4, 8)),
    "rain13k": dict(dim=48, num_blocks=(4, 6, 6, 8), num_refinement_blocks=4, heads=(1, 2, 4, 8)),
}

registry.register_model(registry.ModelEntry(
    name="acl",
    builder=build_acl,
    pad_multiple=8,
    min_size=8,
    description="ACL (CVPR 2025, from the paper; no official code): linear-attention Mamba-style blocks + "
                "multi-scale dilated local enhancement, Restormer-shaped U-Net.",
))
