"""All-in-one image compression and restoration: a hyperprior codec whose decoder restores while decoding.

Zeng, Li, Zheng, Xiong, "All-in-One Image Compression and Restoration", WACV 2025 (arXiv 2502.03649). The
official code (ZeldaM1/All-in-one) was not reachable, so this is built from the paper's description, not
ported: the layer sizes and block details below are jaxir's reading, and no official weights or parameter
counts are reproduced (README, not done).

The paper's framework: a feature encoder G_φa, a spatial entropy model and a feature decoder G_φs,
    y = G_φa(x),  ŷ = Q(y),  x̂ = G_φs(ŷ),
trained on degraded inputs x = D(x_gt) against their clean images,
    L = λ · D(x̂, x_gt) + R(ŷ) + R(ẑ),
so the bitstream carries the image content and the decoder removes the degradation while it reconstructs.
The entropy model here is the mean-scale hyperprior (jaxir.codec.hyperprior: ẑ by the factorized bottleneck,
ŷ | ẑ ~ N(μ, σ²)); the analysis transform is the hyperprior's. The synthesis transform interleaves its
upsampling stages (5×5 transposed conv stride 2, IGDN) with the paper's two aggregation modules:

Content information aggregation (CIA): hybrid-attention transformer blocks that tell image content from
degradation by aggregating local (window) and global (channel) context on the decoded features F:
    F' = F + W-MSA(LN(F)) + α · CA(LN(F)),        W-MSA: multi-head self-attention in w×w windows,
    F'' = F' + MLP(LN(F')),                        CA: conv3×3–GELU–conv3×3 then squeeze-excitation,
with α = 0.01 (the channel branch's weight, as HAT's hybrid attention block).

Degradation representation aggregation (DRA): K learnable degradation representations P_k (p×p×C_p)
aggregated with weights the decoded features predict, so no degradation label is needed:
    w = softmax(W · GAP(F)) ∈ ℝ^K,   P = conv3×3(resize(Σ_k w_k P_k, H×W)),
    F_out = F + conv3×3([F, P])      ([·,·]: channel concatenation).
Each restoration stage is DRA followed by `blocks` CIA blocks.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxir import registry
from jaxir.codec.entropy import GDN
from jaxir.codec.hyperprior import DOWNSAMPLING, MeanScaleHyperprior, deconv
from jaxir.models.attention import dot_product_attention, merge_heads, split_heads
from jaxir.models.blocks import Conv2d, LayerNorm, Linear, global_avg_pool, interpolate_bilinear


class ChannelAttention(nn.Module):
    """CA: conv3×3 (C → C/3), GELU, conv3×3 (→ C), then squeeze-excitation (GAP, 1×1 C → C/r, ReLU, 1×1, sigmoid)."""

    compress: int = 3
    squeeze: int = 16
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        h = nn.gelu(Conv2d(max(c // self.compress, 1), 3, padding=1, dtype=self.dtype, name="conv_0")(x),
                    approximate=False)
        h = Conv2d(c, 3, padding=1, dtype=self.dtype, name="conv_2")(h)
        s = global_avg_pool(h)
        s = jax.nn.relu(Conv2d(max(c // self.squeeze, 1), 1, dtype=self.dtype, name="se_0")(s))
        s = jax.nn.sigmoid(Conv2d(c, 1, dtype=self.dtype, name="se_2")(s))
        return h * s


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping w×w windows (features padded to a multiple of w)."""

    num_heads: int
    window: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        b, h, w, c = x.shape
        win = self.window
        ph, pw = (-h) % win, (-w) % win
        x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)))
        hh, ww = (h + ph) // win, (w + pw) // win
        tokens = x.reshape(b, hh, win, ww, win, c).transpose(0, 1, 3, 2, 4, 5).reshape(b * hh * ww, win * win, c)
        qkv = Linear(3 * c, dtype=self.dtype, name="qkv")(tokens)
        q, k, v = (split_heads(t, self.num_heads) for t in jnp.split(qkv, 3, axis=-1))
        out = merge_heads(dot_product_attention(q, k, v, (c // self.num_heads) ** -0.5))
        out = Linear(c, dtype=self.dtype, name="proj")(out)
        out = out.reshape(b, hh, ww, win, win, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, h + ph, w + pw, c)
        return out[:, :h, :w]


class HybridAttentionBlock(nn.Module):
    """CIA's hybrid-attention transformer block (module docstring)."""

    num_heads: int
    window: int
    mlp_ratio: float = 2.0
    ca_weight: float = 0.01
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        h = LayerNorm(dtype=self.dtype, name="norm1")(x)
        x = x + WindowAttention(self.num_heads, self.window, self.dtype, name="attn")(h) \
            + self.ca_weight * ChannelAttention(dtype=self.dtype, name="conv_block")(h)
        h = LayerNorm(dtype=self.dtype, name="norm2")(x)
        h = Linear(int(c * self.mlp_ratio), dtype=self.dtype, name="fc1")(h)
        return x + Linear(c, dtype=self.dtype, name="fc2")(nn.gelu(h, approximate=False))


class DegradationAggregation(nn.Module):
    """DRA (module docstring): K learnable degradation representations weighted by the features."""

    num_representations: int = 5
    size: int = 16
    dim: int = 32
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        b, h, w, c = x.shape
        reps = self.param("representations", nn.initializers.uniform(1.0),
                          (self.num_representations, self.size, self.size, self.dim))
        weights = jax.nn.softmax(Linear(self.num_representations, dtype=self.dtype, name="weights")(
            jnp.mean(x.astype(jnp.float32), axis=(1, 2))), axis=-1)
        prompt = jnp.einsum("bk,khwc->bhwc", weights, reps)
        prompt = interpolate_bilinear(prompt, (h, w)).astype(self.dtype)
        prompt = Conv2d(self.dim, 3, padding=1, use_bias=False, dtype=self.dtype, name="prompt_conv")(prompt)
        fused = jnp.concatenate([x.astype(self.dtype), prompt], axis=-1)
        return x + Conv2d(c, 3, padding=1, dtype=self.dtype, name="fuse")(fused)


class RestorationStage(nn.Module):
    blocks: int
    num_heads: int
    window: int
    num_representations: int
    representation_size: int
    representation_dim: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = DegradationAggregation(self.num_representations, self.representation_size, self.representation_dim,
                                   self.dtype, name="dra")(x)
        for i in range(self.blocks):
            x = HybridAttentionBlock(self.num_heads, self.window, dtype=self.dtype, name=f"cia_{i}")(x)
        return x


class AllInOneCodec(MeanScaleHyperprior):
    """The codec of the module docstring. `__call__(x, train)` returns the restored x̂ and sows the rate;
    `forward` returns x̂ and the likelihoods; `encode`/`hyper_synthesise`/`synthesise` serve the bitstream coder.

    N, M: the hyperprior's widths; stage_blocks: CIA blocks after the first three upsampling stages (at 1/8,
    1/4, 1/2 of the image); num_heads, window: W-MSA; num_representations, representation_size/_dim: DRA's P_k.
    """

    stage_blocks: Sequence[int] = (1, 1, 1)
    num_heads: int = 4
    window: int = 8
    num_representations: int = 5
    representation_size: int = 16
    representation_dim: int = 32

    def setup_synthesis(self):
        n, dt = self.N, self.dtype
        self.up = [deconv(n, dtype=dt) for i in range(3)]
        self.igdn = [GDN(inverse=True, dtype=dt) for i in range(3)]
        self.restore = [RestorationStage(b, self.num_heads, self.window, self.num_representations,
                                         self.representation_size, self.representation_dim, dt)
                        for i, b in enumerate(self.stage_blocks)]
        self.up_out = deconv(self.out_channels, dtype=dt)

    def synthesise(self, y_hat):
        x = y_hat.astype(self.dtype)
        for up, igdn, stage in zip(self.up, self.igdn, self.restore):
            x = stage(igdn(up(x)))
        return self.up_out(x)


def _build(**kwargs) -> AllInOneCodec:
    if "stage_blocks" in kwargs:
        kwargs["stage_blocks"] = tuple(kwargs["stage_blocks"])
    return AllInOneCodec(**kwargs)


registry.register_model(registry.ModelEntry(
    name="allinone_codec",
    builder=_build,
    pad_multiple=DOWNSAMPLING,
    min_size=DOWNSAMPLING,
    description="All-in-one image compression and restoration (WACV 2025): a mean-scale hyperprior codec whose "
                "decoder restores (content-information and degradation-representation aggregation); built from "
                "the paper, no official code",
))
