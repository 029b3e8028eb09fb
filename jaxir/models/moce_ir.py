"""MoCE-IR: mixture of complexity experts for all-in-one image restoration.

Zamfir, Wu, Mehta, Tan, Timofte, Zhang. "Complexity Experts are Task-Discriminative
Learners for Any Image Restoration", CVPR 2025. Official code: eduardzamfir/MoCE-IR,
src/net/moce_ir.py (commit a1a6e74).

A 4-level U-Net. Encoder, latent and refinement are Restormer transformer blocks
(with biases); each decoder block splits its normalised input into a shared
branch (MDTA) and an adapter branch, a mixture of complexity experts whose output
queries a cross-attention over the shared branch. Expert e (of E) is a low-rank
frequency-attention block: rank dim / 2^(E-1-e) ("spread"), FFT self-attention
inside patches of 2^(e+2) pixels, gated by SiLU of the shared features.

Router (per image): logits = W_g avgpool(x) + W_f freq_emb, where freq_emb is an
MLP of the mean of GELU(3x3 high-pass(latent)); gates = softmax(logits + noise),
noise ~ N(0, (1/E)^2); the top-k experts run and their outputs are summed weighted
by their gates. In training the block sows the balance loss
  0.5 * CV^2(sum_b softmax(logits)_b [* complexity]) + 0.5 * CV^2(mean_b P(expert in top-k))
(CV^2 = (std / (mean + 1e-8))^2, std unbiased; the load term is the noisy top-k
load estimate of Shazeer et al. 2017) under `aux/balance_loss`; the official
trainer adds the mean over decoder blocks times `balance_loss_weight` (0.01).
`complexity` (expert parameter counts over their max) biases the importance term
when `with_complexity`.

Only the routed experts run at inference: with `routing='sparse'` each image's
top-k experts are chosen by `nn.switch` (a `lax.switch`: the other experts are
compiled but not executed), as the official eval path; `routing='dense'` runs
every expert on every image and zeroes the unrouted ones (same outputs and
gradients). The default 'auto' is sparse in inference and dense in training,
where a per-image switch would compile batch x experts copies of every expert
(the experts are low-rank, so running all of them costs little). `expert_probe(level, block, expert)` is called (through
`jax.debug.callback`) every time an expert executes: tests count them with it.

Deviations: the official router adds its noise in eval too; jaxir routes without
noise at inference (deterministic; the golden file passes either way because
the adapter's output enters the cross-attention query only up to scale).
The official `ModExpert.feat_extract` loops `depth` times over the same input
(`feat = process(feats, ...)`), so depth never changes the output: jaxir applies
each expert once and accepts `depth_type`/`stage_depth` for compatibility.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxir import registry
from jaxir.convert.state_dict import ConvertHooks
from jaxir.models.blocks import PRECISION, Conv2d, Linear, gelu, oihw_to_hwio
from jaxir.models.restormer import (GDFN, MDTA, Downsample, OverlapPatchEmbed, RestormerLayerNorm,
                                    TransformerBlock, Upsample, transposed_attention)

Dtype = Any
AUX = "aux"  # collection of the sown auxiliary training outputs (see jaxir.losses)
BALANCE_LOSS = "balance_loss"
DEPTH_TYPES = ("lin", "double", "exp", "fact", "constant")
RANK_TYPES = ("constant", "lin", "double", "exp", "fact", "spread")
ROUTING_MODES = ("auto", "sparse", "dense")


def expert_ranks(dim: int, rank: int, num_experts: int, rank_type: str) -> list[int]:
    """The official AdapterLayer's expert ranks."""
    table = {
        "constant": [rank] * num_experts,
        "lin": [rank + i for i in range(num_experts)],
        "double": [rank + 2 * i for i in range(num_experts)],
        "exp": [rank ** (i + 1) for i in range(num_experts)],
        "fact": [math.factorial(rank + i) for i in range(num_experts)],
        "spread": [dim // 2 ** i for i in range(num_experts)][::-1],
    }
    if rank_type not in table:
        raise ValueError(f"rank_type must be one of {RANK_TYPES}, got {rank_type!r}")
    return table[rank_type]


def expert_patch_sizes(num_experts: int) -> list[int]:
    return [2 ** (i + 2) for i in range(num_experts)]


def expert_param_count(dim: int, rank: int) -> int:
    """Parameters of one expert (3 low-rank projections + FFTAttention(rank)): the complexity measure."""
    r = rank
    body = r * r + (9 * r + r) + 2 * r * r + (49 * 2 * r + 2 * r) + 2 * r + (r * r + r)
    return 3 * dim * r + body


def expert_complexity(dim: int, rank: int, num_experts: int, rank_type: str, scale: str) -> np.ndarray:
    counts = np.array([expert_param_count(dim, r) for r in expert_ranks(dim, rank, num_experts, rank_type)],
                      np.float32)
    if scale == "min":
        return counts / counts.min()
    if scale == "max":
        return counts / counts.max()
    return counts


class FFTAttention(nn.Module):
    """Self-attention as a product of spectra inside non-overlapping patches (circular correlation per patch)."""

    patch_size: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        b, h, w, c = x.shape
        dt, p = self.dtype, self.patch_size
        q = Conv2d(c, 1, use_bias=False, dtype=dt, name="q")(x)
        q = Conv2d(c, 3, padding=1, groups=c, dtype=dt, name="q_dwconv")(q)
        kv = Conv2d(2 * c, 1, use_bias=False, dtype=dt, name="kv")(x)
        k, v = jnp.split(Conv2d(2 * c, 7, padding=3, groups=2 * c, dtype=dt, name="kv_dwconv")(kv), 2, axis=-1)

        def patches(t):  # zero-pad to the patch grid, then (B, nh, p, nw, p, C)
            t = jnp.pad(t.astype(jnp.float32), ((0, 0), (0, (-h) % p), (0, (-w) % p), (0, 0)))
            return t.reshape(b, t.shape[1] // p, p, t.shape[2] // p, p, c)

        spectrum = jnp.fft.rfft2(patches(q), axes=(2, 4)) * jnp.fft.rfft2(patches(k), axes=(2, 4))
        out = jnp.fft.irfft2(spectrum, s=(p, p), axes=(2, 4))
        nh, nw = out.shape[1], out.shape[3]
        out = out.reshape(b, nh * p, nw * p, c)[:, :h, :w].astype(dt)
        out = RestormerLayerNorm("WithBias", dt, name="norm")(out) * v
        return Conv2d(c, 1, dtype=dt, name="proj_out")(out)


class ModExpert(nn.Module):
    """x + up(FFTAttention(down(x)) * SiLU(gate(shared))), low rank `rank`."""

    rank: int
    patch_size: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, shared):
        dim, dt = x.shape[-1], self.dtype
        y = Conv2d(self.rank, 1, use_bias=False, dtype=dt, name="proj_0")(x)
        gate = nn.silu(Conv2d(self.rank, 1, use_bias=False, dtype=dt, name="proj_1")(shared))
        y = FFTAttention(self.patch_size, dt, name="body")(y) * gate
        return Conv2d(dim, 1, use_bias=False, dtype=dt, name="proj_2")(y) + x


def _cv_squared(x):
    """(std / (mean + 1e-8))^2 with the unbiased std, as torch.Tensor.std."""
    return (jnp.std(x, ddof=1) / (jnp.mean(x) + 1e-8)) ** 2


def balance_loss(logits, noisy_logits, k: int, noise_std: float, complexity=None):
    """The official router's auxiliary loss: 0.5 importance CV^2 + 0.5 load CV^2 (see the module docstring)."""
    importance = jnp.sum(jax.nn.softmax(logits, axis=-1), axis=0)
    if complexity is not None:
        importance = importance * complexity
    threshold_index = jax.lax.top_k(noisy_logits, k)[1][:, -1]
    threshold = jnp.take_along_axis(noisy_logits, threshold_index[:, None], axis=-1)
    p = 1.0 - jax.scipy.stats.norm.cdf((threshold - logits) / noise_std)
    return 0.5 * _cv_squared(importance) + 0.5 * _cv_squared(jnp.mean(p, axis=0))


class RoutingFunction(nn.Module):
    """Per-image top-k gates from the pooled features and the frequency embedding."""

    num_experts: int
    k: int
    complexity: tuple[float, ...]
    use_complexity_bias: bool = False

    # The official `complexity` buffer: a constant, kept beside BatchNorm statistics (the
    # loop's non-trainable collection) so it converts and trains along.
    TORCH_PARAMS = {"complexity": ("batch_stats", "complexity", None)}

    @nn.compact
    def __call__(self, x, freq_emb, train: bool = False):
        complexity = self.variable("batch_stats", "complexity",
                                   lambda: jnp.asarray(self.complexity, jnp.float32)).value
        pooled = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
        logits = (Linear(self.num_experts, use_bias=False, name="gate_2")(pooled)
                  + Linear(self.num_experts, use_bias=False, name="freq_gate")(freq_emb.astype(jnp.float32)))
        noise_std = 1.0 / self.num_experts
        noisy = logits
        if train:
            noisy = logits + noise_std * jax.random.normal(self.make_rng("noise"), logits.shape)
            loss = balance_loss(logits, noisy, self.k, noise_std,
                                complexity if self.use_complexity_bias else None)
            self.sow(AUX, BALANCE_LOSS, loss)
        top_values, top_indices = jax.lax.top_k(jax.nn.softmax(noisy, axis=-1), self.k)
        return top_values, top_indices


class AdapterLayer(nn.Module):
    """The mixture of complexity experts; only each image's top-k experts run (routing='sparse')."""

    rank: int
    num_experts: int = 4
    top_k: int = 1
    rank_type: str = "spread"
    with_complexity: bool = False
    complexity_scale: str = "max"
    routing: str = "auto"
    expert_probe: Callable | None = None
    probe_tag: tuple = ()
    dim: int = 0
    dtype: Dtype = jnp.float32

    def setup(self):
        ranks = expert_ranks(self.dim, self.rank, self.num_experts, self.rank_type)
        self.experts = [ModExpert(r, p, self.dtype) for r, p in zip(ranks, expert_patch_sizes(self.num_experts))]
        self.proj_out = Conv2d(self.dim, 1, use_bias=False, dtype=self.dtype)
        complexity = expert_complexity(self.dim, self.rank, self.num_experts, self.rank_type, self.complexity_scale)
        self.routing_fn = RoutingFunction(self.num_experts, self.top_k, tuple(float(c) for c in complexity),
                                          self.with_complexity)

    def _branch(self, index):
        def run(mdl, x, shared):
            if mdl.expert_probe is not None:
                jax.debug.callback(functools.partial(mdl.expert_probe, *mdl.probe_tag, index))
            return mdl.experts[index](x, shared)
        return run

    @nn.compact
    def __call__(self, x, freq_emb, shared, train: bool = False):
        if self.routing not in ROUTING_MODES:
            raise ValueError(f"routing must be one of {ROUTING_MODES}, got {self.routing!r}")
        gates, indices = self.routing_fn(x, freq_emb, train)
        branches = [self._branch(e) for e in range(self.num_experts)]
        if self.is_initializing():  # every expert's parameters exist before switching between them
            for branch in branches:
                branch(self, x, shared)
        routing = ("dense" if train else "sparse") if self.routing == "auto" else self.routing
        if routing == "dense":
            dense = jnp.zeros(gates.shape[:1] + (self.num_experts,), gates.dtype)
            dense = dense.at[jnp.arange(x.shape[0])[:, None], indices].set(gates)
            out = sum(dense[:, e, None, None, None].astype(x.dtype) * branches[e](self, x, shared)
                      for e in range(self.num_experts))
        else:
            rows = []
            for b in range(x.shape[0]):  # per image: its own experts, nothing else executes
                xb, sb = x[b:b + 1], shared[b:b + 1]
                rows.append(sum(gates[b, j].astype(x.dtype) * nn.switch(indices[b, j], branches, self, xb, sb)
                                for j in range(self.top_k)))
            out = jnp.concatenate(rows, axis=0)
        return self.proj_out(out)


class CrossAttention(nn.Module):
    """MDTA with queries from x (3x3 depthwise) and keys/values from y (7x7 depthwise)."""

    num_heads: int
    use_bias: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, y):
        c, dt, bias = x.shape[-1], self.dtype, self.use_bias
        temperature = self.param("temperature", nn.initializers.ones, (self.num_heads,), jnp.float32)
        q = Conv2d(c, 1, use_bias=bias, dtype=dt, name="q")(x)
        q = Conv2d(c, 3, padding=1, groups=c, use_bias=bias, dtype=dt, name="q_dwconv")(q)
        kv = Conv2d(2 * c, 1, use_bias=bias, dtype=dt, name="kv")(y)
        kv = Conv2d(2 * c, 7, padding=3, groups=2 * c, use_bias=bias, dtype=dt, name="kv_dwconv")(kv)
        out = transposed_attention(q, *jnp.split(kv, 2, axis=-1), temperature)
        return Conv2d(c, 1, use_bias=bias, dtype=dt, name="project_out")(out)


class DecoderBlock(nn.Module):
    num_heads: int
    ffn_expansion_factor: float
    use_bias: bool
    layer_norm_type: str
    adapter: dict
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, freq_emb, train: bool = False):
        c, dt, bias = x.shape[-1], self.dtype, self.use_bias
        shortcut = x
        x = RestormerLayerNorm(self.layer_norm_type, dt, name="norms_0")(x)
        x_s = MDTA(self.num_heads, bias, dt, name="shared")(Conv2d(c, 1, dtype=dt, name="proj_0")(x))
        x_a = Conv2d(c, 1, dtype=dt, name="proj_1")(x)
        x_a = AdapterLayer(dim=c, dtype=dt, name="adapter", **self.adapter)(x_a, freq_emb, x_s, train)
        x = CrossAttention(self.num_heads, bias, dt, name="mixer")(x_a, x_s) + shortcut
        return x + GDFN(self.ffn_expansion_factor, bias, dt, name="ffn")(
            RestormerLayerNorm(self.layer_norm_type, dt, name="norms_1")(x))


class EncoderGroup(nn.Module):
    """`num_blocks` transformer blocks with biases (the official passes bias=True to every encoder group)."""

    num_blocks: int
    num_heads: int
    ffn_expansion_factor: float
    layer_norm_type: str
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        for i in range(self.num_blocks):
            x = TransformerBlock(self.num_heads, self.ffn_expansion_factor, True, self.layer_norm_type,
                                 self.dtype, names=("norms_0", "mixer", "norms_1", "ffn"), name=f"layers_{i}")(x)
        return x


class DecoderGroup(nn.Module):
    num_blocks: int
    num_heads: int
    ffn_expansion_factor: float
    use_bias: bool
    layer_norm_type: str
    adapter: dict
    level: int = 0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, freq_emb, train: bool = False):
        for i in range(self.num_blocks):
            adapter = dict(self.adapter, probe_tag=(self.level, i))
            x = DecoderBlock(self.num_heads, self.ffn_expansion_factor, self.use_bias, self.layer_norm_type,
                             adapter, self.dtype, name=f"layers_{i}")(x, freq_emb, train)
        return x


class HighPassConv(nn.Module):
    """Depthwise 3x3 conv initialised to the 8-neighbour Laplacian (trainable, as the official)."""

    TORCH_PARAMS = {"weight": ("params", "kernel", oihw_to_hwio)}

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        laplacian = np.full((3, 3), -1.0, np.float32)
        laplacian[1, 1] = 8.0
        kernel = self.param("kernel", lambda key, shape: jnp.broadcast_to(jnp.asarray(laplacian)[:, :, None, None],
                                                                           shape), (3, 3, 1, c))
        return jax.lax.conv_general_dilated(x, kernel.astype(x.dtype), (1, 1), ((1, 1), (1, 1)),
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c,
                                            precision=PRECISION)


class _HighConv(nn.Module):
    """The official `high_conv` Sequential(HighPassConv2d, GELU): holds `high_conv.0.conv`."""

    @nn.compact
    def __call__(self, x):
        return HighPassConv(name="conv")(x)


class MoCEIR(nn.Module):
    """The official MoCEIR. Paper: MoCE-IR-S dim=32, MoCE-IR dim=48 (num_blocks 4/6/6/8, dec 2/4/4, refinement 4)."""

    inp_channels: int = 3
    out_channels: int = 3
    dim: int = 32
    levels: int = 4
    heads: Sequence[int] = (1, 1, 1, 1)
    num_blocks: Sequence[int] = (1, 1, 1, 3)
    num_dec_blocks: Sequence[int] = (1, 1, 1)
    ffn_expansion_factor: float = 2.0
    num_refinement_blocks: int = 1
    layer_norm_type: str = "WithBias"
    use_bias: bool = False
    rank: int = 2
    num_experts: int = 4
    depth_type: str | int = "lin"  # no effect on the computation (module docstring)
    stage_depth: Sequence[int] = (3, 2, 1)
    rank_type: str = "constant"
    topk: int = 1
    with_complexity: bool = False
    complexity_scale: str = "max"
    routing: str = "auto"  # 'sparse' in inference, 'dense' in training
    expert_probe: Callable | None = None
    dtype: Dtype = jnp.float32

    def _check(self, x):
        levels = self.levels
        if len(self.heads) != levels or len(self.num_blocks) != levels or len(self.num_dec_blocks) != levels - 1:
            raise ValueError(f"heads and num_blocks need {levels} entries and num_dec_blocks {levels - 1}, got "
                             f"{self.heads}, {self.num_blocks}, {self.num_dec_blocks}")
        if not (isinstance(self.depth_type, int) or self.depth_type in DEPTH_TYPES):
            raise ValueError(f"depth_type must be an int or one of {DEPTH_TYPES}, got {self.depth_type!r}")
        if not 1 <= self.topk <= self.num_experts:
            raise ValueError(f"topk must be in [1, num_experts={self.num_experts}], got {self.topk}")
        multiple = 2 ** (levels - 1)
        if x.ndim != 4 or x.shape[-1] != self.inp_channels:
            raise ValueError(f"MoCEIR expects NHWC input with {self.inp_channels} channels, got shape {x.shape}")
        if x.shape[1] % multiple or x.shape[2] % multiple:
            raise ValueError(f"MoCEIR needs H and W divisible by {multiple}, got {x.shape[1]}x{x.shape[2]}; "
                             f"pad the input (registry pad_multiple={multiple})")

    @nn.compact
    def __call__(self, inp, train: bool = False):
        self._check(inp)
        dt, levels = self.dtype, self.levels
        dims = [self.dim * 2 ** i for i in range(levels)]
        inp = inp.astype(dt)
        adapter = dict(rank=self.rank, num_experts=self.num_experts, top_k=self.topk, rank_type=self.rank_type,
                       with_complexity=self.with_complexity, complexity_scale=self.complexity_scale,
                       routing=self.routing, expert_probe=self.expert_probe)

        feats = OverlapPatchEmbed(self.dim, dtype=dt, name="patch_embed")(inp)
        skips = []
        for i in range(levels - 1):
            feats = EncoderGroup(self.num_blocks[i], self.heads[i], self.ffn_expansion_factor, self.layer_norm_type,
                                 dt, name=f"enc_{i}_0")(feats)
            skips.append(feats)
            feats = Downsample(dt, name=f"enc_{i}_1")(feats)
        feats = EncoderGroup(self.num_blocks[-1], self.heads[-1], self.ffn_expansion_factor, self.layer_norm_type,
                             dt, name="latent")(feats)
        freq_emb = FrequencyEmbedding(name="freq_embed")(feats)

        heads, dec_blocks = list(self.heads)[::-1], list(self.num_dec_blocks)[::-1]
        for i in range(levels - 1):
            feats = Upsample(dt, name=f"dec_{i}_0")(feats)
            feats = jnp.concatenate([feats, skips.pop()], axis=-1)
            feats = Conv2d(dims[::-1][i + 1], 1, use_bias=self.use_bias, dtype=dt, name=f"dec_{i}_1")(feats)
            feats = DecoderGroup(dec_blocks[i], heads[i + 1], self.ffn_expansion_factor, self.use_bias,
                                 self.layer_norm_type, adapter, level=i, dtype=dt, name=f"dec_{i}_2")(
                feats, freq_emb, train)

        feats = EncoderGroup(self.num_refinement_blocks, self.heads[0], self.ffn_expansion_factor,
                             self.layer_norm_type, dt, name="refinement")(feats)
        out = Conv2d(self.out_channels, 3, padding=1, use_bias=self.use_bias, dtype=dt, name="output")(feats) + inp
        return out.astype(jnp.float32)


class FrequencyEmbedding(nn.Module):
    """FrequencyEmbedding under the official names: high_conv.0.conv, mlp.0, mlp.2."""

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        x = jnp.mean(gelu(_HighConv(name="high_conv_0")(x.astype(jnp.float32))), axis=(1, 2))
        x = gelu(Linear(2 * c, name="mlp_0")(x))
        return Linear(c, name="mlp_2")(x)


def _moce_kwargs(official: dict) -> dict:
    kwargs = dict(official)
    for old, new in {"bias": "use_bias", "LayerNorm_type": "layer_norm_type"}.items():
        if old in kwargs:
            kwargs[new] = kwargs.pop(old)
    if kwargs.pop("expert_layer", None) not in (None, "FFTAttention"):
        raise ValueError("only the official FFTAttention experts are ported")
    return kwargs


def build_moce_ir(**kwargs) -> MoCEIR:
    for key in ("num_blocks", "num_dec_blocks", "heads", "stage_depth"):
        if key in kwargs:
            kwargs[key] = tuple(int(v) for v in kwargs[key])
    return MoCEIR(**kwargs)


# MoCE-IR-S / MoCE-IR (src/options.py --model MoCE_IR_S / MoCE_IR).
PAPER_CONFIGS = {
    name: dict(dim=dim, num_blocks=(4, 6, 6, 8), num_dec_blocks=(2, 4, 4), levels=4, heads=(1, 2, 4, 8),
               num_refinement_blocks=4, topk=1, num_experts=4, rank=2, with_complexity=False,
               depth_type="constant", stage_depth=(1, 1, 1), rank_type="spread", complexity_scale="max")
    for name, dim in (("moce_ir_s", 32), ("moce_ir", 48))
}

registry.register_model(registry.ModelEntry(
    name="moce_ir",
    builder=build_moce_ir,
    official=(("eduardzamfir/MoCE-IR", "MoCEIR"),),
    translate_kwargs=_moce_kwargs,
    # Each expert sits in a one-element Sequential: experts.<e>.0.* is expert e.
    convert_hooks=ConvertHooks(renames=((r"\.adapter\.experts\.(\d+)\.0\.", r".adapter.experts.\1."),
                                        (r"\.adapter\.routing\.", ".adapter.routing_fn."))),
    pad_multiple=8,
    min_size=8,
    official_file="src/net/moce_ir.py",
    description="MoCE-IR (CVPR 2025), mixture of complexity experts; PAPER_CONFIGS moce_ir_s (11.5M), moce_ir (25.4M).",
))
