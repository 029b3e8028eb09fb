"""MambaIRv2: attentive state-space restoration.

Guo, Guo, Zha, Zhang, Li, Xia, Dai, Xia. "MambaIRv2: Attentive State Space Restoration", CVPR 2025.
Official code: csguoh/MambaIR, basicsr/archs/mambairv2_arch.py (`MambaIRv2`).

A SwinIR-shaped network: conv_first, residual groups (ASSB) of attentive layers, a
conv after the body, and a task head (denoising: conv_last and the input residual;
classic SR: conv + LeakyReLU, pixel-shuffle upsampler, conv_last; lightweight SR: one
conv + pixel shuffle). Each attentive layer is

    x <- x * scale1 + [W-MSA(LN x) + x] + ConvFFN(LN(...))         (window attention; every
                                                                     second layer shifted)
    x <- x * scale2 + [ASSM(LN x) + x] + ConvFFN(LN(...))

The attentive state-space module (ASSM) routes every token to one of `num_tokens`
prompts (an MLP with log-softmax, hard Gumbel-softmax in the official code), sorts
the tokens by prompt index (semantic-guided neighbouring: tokens routed alike become
neighbours in the sequence), runs one selective scan whose C is offset by the token's
prompt (embeddingB @ embeddingA, a low-rank prompt pool), and unsorts.

Routing. The official forward draws Gumbel noise in eval too, so two official runs
on the same input differ (by about 1e-3 on the golden case). jaxir routes by the
noise-free argmax unless an RNG is given: the `gumbel` stream, or during training
the `dropout` stream, which the train step always provides. The straight-through
estimator of the hard Gumbel-softmax carries gradients to the router either way.
Ties among prompt indices (thousands of tokens share a prompt) are sorted stably;
the official `torch.sort(stable=False)` leaves their order to the implementation. With
argmax routing and a stable sort the official code and jaxir agree to 1e-6 on the
golden weights (tests/test_mambairv2.py, through the PyTorch reference).

`MambaIRv2Light` (the lightweight-SR class, basicsr/archs/mambairv2light_arch.py)
differs only in its feed-forward networks, gated MLPs: `gated_mlp=True`.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxir import registry
from jaxir.convert.state_dict import ConvertHooks
from jaxir.models.attention import merge_heads
from jaxir.models.blocks import (PRECISION, SWINIR_RGB_MEAN, SWINIR_UPSAMPLERS, Conv2d, LayerNorm, Linear, gelu,
                                 s6_params, s6_scan, swinir_reconstruction)

Dtype = Any
RGB_MEAN = SWINIR_RGB_MEAN
UPSAMPLERS = SWINIR_UPSAMPLERS


# --- window attention (Swin) -------------------------------------------------

@functools.lru_cache(maxsize=16)
def relative_position_index(window: int) -> np.ndarray:
    """(w*w, w*w) index into the ((2w-1)^2, heads) bias table, as Swin's."""
    coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


@functools.lru_cache(maxsize=16)
def shifted_window_mask(height: int, width: int, window: int) -> np.ndarray:
    """(num_windows, w*w, w*w): 0 within a region of the rolled image, -100 across regions."""
    shift = window // 2
    regions = np.zeros((height, width), np.float32)
    bounds = ((0, -window), (-window, -shift), (-shift, None))
    count = 0
    for hs in bounds:
        for ws in bounds:
            regions[slice(*hs), slice(*ws)] = count
            count += 1
    windows = window_partition(regions[None, :, :, None], window).reshape(-1, window * window)
    diff = windows[:, None, :] - windows[:, :, None]
    return np.where(diff != 0, -100.0, 0.0).astype(np.float32)


def window_partition(x, window: int):
    """(B, H, W, C) -> (B * nW, w, w, C), windows in row-major order."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // window, window, w // window, window, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c)


def window_reverse(windows, window: int, h: int, w: int):
    b = windows.shape[0] // ((h // window) * (w // window))
    x = windows.reshape(b, h // window, w // window, window, window, -1)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h, w, -1)


class WindowAttention(nn.Module):
    """Multi-head attention inside windows from precomputed qkv, with a relative position bias."""

    window: int
    num_heads: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, qkv, mask=None):
        n_windows, n, c3 = qkv.shape
        c = c3 // 3
        heads = self.num_heads
        table = self.param("relative_position_bias_table", nn.initializers.truncated_normal(0.02),
                           ((2 * self.window - 1) ** 2, heads), jnp.float32)
        q, k, v = qkv.reshape(n_windows, n, 3, heads, c // heads).transpose(2, 0, 3, 1, 4)
        q = q * (c // heads) ** -0.5
        logits = jnp.einsum("bhnd,bhmd->bhnm", q, k, precision=PRECISION, preferred_element_type=jnp.float32)
        bias = table[relative_position_index(self.window).reshape(-1)].reshape(n, n, heads).transpose(2, 0, 1)
        logits = logits + bias[None]
        if mask is not None:
            nw = mask.shape[0]
            logits = (logits.reshape(n_windows // nw, nw, heads, n, n) + mask[None, :, None]).reshape(logits.shape)
        weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
        out = merge_heads(jnp.einsum("bhnm,bhmd->bhnd", weights, v, precision=PRECISION))
        return Linear(c, dtype=self.dtype, name="proj")(out)


# --- feed-forward ---------------------------------------------------------------

class DWConv(nn.Module):
    kernel_size: int = 5
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        return gelu(Conv2d(c, self.kernel_size, padding=(self.kernel_size - 1) // 2, groups=c, dtype=self.dtype,
                           name="depthwise_conv_0")(x))


class ConvFFN(nn.Module):
    """fc1 -> GELU -> + depthwise conv (GELU) -> fc2, on NHWC maps."""

    hidden: int
    kernel_size: int = 5
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        x = gelu(Linear(self.hidden, dtype=self.dtype, name="fc1")(x))
        x = x + DWConv(self.kernel_size, self.dtype, name="dwconv")(x)
        return Linear(c, dtype=self.dtype, name="fc2")(x)


class Gate(nn.Module):
    """Spatial gate of the light variant: x1 * dwconv5(LN(x2)) for the two channel halves."""

    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        x1, x2 = jnp.split(x, 2, axis=-1)
        c = x2.shape[-1]
        x2 = LayerNorm(epsilon=1e-5, dtype=self.dtype, name="norm")(x2)
        return x1 * Conv2d(c, 5, padding=2, groups=c, dtype=self.dtype, name="conv")(x2)


class GatedMLP(nn.Module):
    hidden: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        x = gelu(Linear(self.hidden, dtype=self.dtype, name="fc1")(x))
        return Linear(c, dtype=self.dtype, name="fc2")(Gate(self.dtype, name="sg")(x))


# --- attentive state space ---------------------------------------------------

def _embedding(module, name, rows, cols, bound):
    return module.param(name, lambda key, s, dt=jnp.float32: jax.random.uniform(key, s, dt, -bound, bound),
                        (rows, cols), jnp.float32)


class SelectiveScan(nn.Module):
    """One S6 scan (K = 1) over (B, L, D) tokens with C offset by per-position prompts (B, L, N)."""

    d_state: int
    scan_method: str = "associative"
    scan_chunk: int = 256

    @nn.compact
    def __call__(self, x, prompt):
        d = x.shape[-1]
        params = s6_params(self, 1, d, self.d_state, math.ceil(d / 16))
        y = s6_scan(params, x.swapaxes(1, 2)[:, None], c_offset=prompt.swapaxes(1, 2)[:, None],
                    method=self.scan_method, chunk_size=self.scan_chunk)
        return y[:, 0].swapaxes(1, 2)


class ASSM(nn.Module):
    """Attentive state-space module; `prompt_basis` is the layer's embeddingA (inner_rank, d_state)."""

    d_state: int
    num_tokens: int = 64
    inner_rank: int = 128
    mlp_ratio: float = 2.0
    scan_method: str = "associative"
    scan_chunk: int = 256
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, prompt_basis, train: bool = False):
        b, h, w, c = x.shape
        dt, n = self.dtype, h * w
        hidden = int(c * self.mlp_ratio)
        embedding_b = _embedding(self, "embeddingB", self.num_tokens, self.inner_rank, 1 / self.num_tokens)
        full_embedding = jnp.matmul(embedding_b, prompt_basis, precision=PRECISION)  # (tokens, d_state)

        tokens = x.reshape(b, n, c)
        route = Linear(c // 3, dtype=dt, name="route_0")(tokens)
        route = Linear(self.num_tokens, dtype=dt, name="route_2")(gelu(route))
        log_probs = jax.nn.log_softmax(route.astype(jnp.float32), axis=-1)
        policy, index = self._route(log_probs, train)
        prompt = jnp.matmul(policy, full_embedding, precision=PRECISION)  # (B, n, d_state)

        sort = jnp.argsort(index, axis=-1, stable=True)
        unsort = jnp.argsort(sort, axis=-1)

        y = Conv2d(hidden, 1, dtype=dt, name="in_proj_0")(x)
        y = y * jax.nn.sigmoid(Conv2d(hidden, 3, padding=1, groups=hidden, dtype=dt, name="CPE_0")(y))
        y = y.reshape(b, n, hidden)
        y = jnp.take_along_axis(y, sort[..., None], axis=1)  # semantic-guided neighbouring
        # The official adds the prompts in token order to C of the sorted sequence.
        out = SelectiveScan(self.d_state, self.scan_method, self.scan_chunk, name="selectiveScan")(y, prompt)
        out = LayerNorm(epsilon=1e-5, dtype=dt, name="out_norm")(out.astype(dt))
        out = Linear(c, dtype=dt, name="out_proj")(out)
        out = jnp.take_along_axis(out, unsort[..., None], axis=1)
        return out.reshape(b, h, w, c)

    def _route(self, log_probs, train):
        """Hard (Gumbel-)softmax with the straight-through estimator: (one-hot policy, index)."""
        logits = log_probs
        if train and self.has_rng("dropout"):
            logits = logits + jax.random.gumbel(self.make_rng("dropout"), logits.shape)
        elif self.has_rng("gumbel"):
            logits = logits + jax.random.gumbel(self.make_rng("gumbel"), logits.shape)
        soft = jax.nn.softmax(logits, axis=-1)
        index = jnp.argmax(logits, axis=-1)
        hard = jax.nn.one_hot(index, logits.shape[-1], dtype=soft.dtype)
        return hard - jax.lax.stop_gradient(soft) + soft, index


# --- layers and network -------------------------------------------------------

class AttentiveLayer(nn.Module):
    num_heads: int
    window: int
    shift: int
    d_state: int
    inner_rank: int
    num_tokens: int
    convffn_kernel_size: int = 5
    mlp_ratio: float = 2.0
    scan_method: str = "associative"
    scan_chunk: int = 256
    gated_mlp: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        b, h, w, c = x.shape
        dt = self.dtype
        hidden = int(c * self.mlp_ratio)

        def ffn(name):
            if self.gated_mlp:
                return GatedMLP(hidden, dt, name=name)
            return ConvFFN(hidden, self.convffn_kernel_size, dt, name=name)

        def norm(name):
            return LayerNorm(epsilon=1e-5, dtype=dt, name=name)

        def layer_scale(name):
            return self.param(name, nn.initializers.constant(1e-4), (c,), jnp.float32).astype(dt)

        shortcut = x
        qkv = Linear(3 * c, dtype=dt, name="wqkv")(norm("norm1")(x))
        mask = None
        if self.shift:
            qkv = jnp.roll(qkv, (-self.shift, -self.shift), axis=(1, 2))
            mask = jnp.asarray(shifted_window_mask(h, w, self.window))
        windows = window_partition(qkv, self.window).reshape(-1, self.window * self.window, 3 * c)
        attn = WindowAttention(self.window, self.num_heads, dt, name="win_mhsa")(windows, mask)
        attn = window_reverse(attn.reshape(-1, self.window, self.window, c), self.window, h, w)
        if self.shift:
            attn = jnp.roll(attn, (self.shift, self.shift), axis=(1, 2))
        x_win = attn + shortcut
        x_win = ffn("convffn1")(norm("norm2")(x_win)) + x_win
        x = shortcut * layer_scale("scale1") + x_win

        shortcut = x
        prompt_basis = _embedding(self, "embeddingA", self.inner_rank, self.d_state, 1 / self.inner_rank)
        x_aca = ASSM(self.d_state, self.num_tokens, self.inner_rank, self.mlp_ratio, self.scan_method,
                     self.scan_chunk, dt, name="assm")(norm("norm3")(x), prompt_basis, train) + x
        x = x_aca + ffn("convffn2")(norm("norm4")(x_aca))
        return shortcut * layer_scale("scale2") + x


class ASSB(nn.Module):
    """A residual group: attentive layers (odd ones shifted by half a window), a 3x3 conv, + input."""

    depth: int
    num_heads: int
    window: int
    d_state: int
    inner_rank: int
    num_tokens: int
    convffn_kernel_size: int = 5
    mlp_ratio: float = 2.0
    scan_method: str = "associative"
    scan_chunk: int = 256
    gated_mlp: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        y = x
        for i in range(self.depth):
            y = AttentiveLayer(self.num_heads, self.window, 0 if i % 2 == 0 else self.window // 2, self.d_state,
                               self.inner_rank, self.num_tokens, self.convffn_kernel_size, self.mlp_ratio,
                               self.scan_method, self.scan_chunk, self.gated_mlp, self.dtype,
                               name=f"residual_group_layers_{i}")(y, train)
        return Conv2d(x.shape[-1], 3, padding=1, dtype=self.dtype, name="conv")(y) + x


class MambaIRv2(nn.Module):
    """The official MambaIRv2 (resi_connection '1conv', patch_norm, no absolute position embedding)."""

    upscale: int = 2
    in_chans: int = 3
    embed_dim: int = 48
    d_state: int = 8
    depths: Sequence[int] = (6, 6, 6, 6)
    num_heads: Sequence[int] = (4, 4, 4, 4)
    window_size: int = 16
    inner_rank: int = 32
    num_tokens: int = 64
    convffn_kernel_size: int = 5
    mlp_ratio: float = 2.0
    img_range: float = 1.0
    upsampler: str = ""  # "" (denoising, JPEG), "pixelshuffle" (classic SR), "pixelshuffledirect" (lightweight SR)
    scan_method: str = "associative"
    scan_chunk: int = 256
    gated_mlp: bool = False  # MambaIRv2Light
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        if self.upsampler not in UPSAMPLERS:
            raise ValueError(f"upsampler must be one of {UPSAMPLERS}, got {self.upsampler!r}")
        if x.ndim != 4 or x.shape[-1] != self.in_chans:
            raise ValueError(f"MambaIRv2 expects NHWC input with {self.in_chans} channels, got shape {x.shape}")
        dt, dim = self.dtype, self.embed_dim
        b, h_ori, w_ori, _ = x.shape
        window = self.window_size
        # The official pads to the window size by mirroring (edge row repeated): numpy's 'symmetric'.
        pad_h, pad_w = (-h_ori) % window, (-w_ori) % window
        if pad_h > h_ori or pad_w > w_ori:
            raise ValueError(f"MambaIRv2 mirrors at most the image size as padding: {h_ori}x{w_ori} is too "
                             f"small for window {window}")
        x = jnp.pad(x.astype(jnp.float32), ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="symmetric")
        mean = jnp.asarray(RGB_MEAN if self.in_chans == 3 else (0.0,) * self.in_chans, jnp.float32)
        x = ((x - mean) * self.img_range).astype(dt)

        first = Conv2d(dim, 3, padding=1, dtype=dt, name="conv_first")(x)
        features = LayerNorm(epsilon=1e-5, dtype=dt, name="patch_embed_norm")(first)
        for i, (depth, heads) in enumerate(zip(self.depths, self.num_heads)):
            features = ASSB(depth, heads, window, self.d_state, self.inner_rank, self.num_tokens,
                            self.convffn_kernel_size, self.mlp_ratio, self.scan_method, self.scan_chunk,
                            self.gated_mlp, dt, name=f"layers_{i}")(features, train)
        features = LayerNorm(epsilon=1e-5, dtype=dt, name="norm")(features)
        res = Conv2d(dim, 3, padding=1, dtype=dt, name="conv_after_body")(features) + first

        out = swinir_reconstruction(x, res, self.upsampler, self.upscale, self.in_chans, dt)
        out = out.astype(jnp.float32) / self.img_range + mean
        scale = self.upscale if self.upsampler else 1
        return out[:, :h_ori * scale, :w_ori * scale]


# Official constructor arguments with no effect on the computation (sizes are taken from the input).
_IGNORED_KWARGS = ("img_size", "patch_size", "qkv_bias", "ape", "patch_norm", "use_checkpoint", "norm_layer",
                   "resi_connection")


def _mambairv2_kwargs(official: dict) -> dict:
    kwargs = dict(official)
    for key, want in (("qkv_bias", True), ("ape", False), ("patch_norm", True), ("resi_connection", "1conv"),
                      ("patch_size", 1)):
        if kwargs.get(key, want) != want:
            raise ValueError(f"MambaIRv2 port supports {key}={want!r} only (the paper's configurations), "
                             f"got {kwargs[key]!r}")
    for key in _IGNORED_KWARGS:
        kwargs.pop(key, None)
    if kwargs.get("upsampler") is None:
        kwargs["upsampler"] = ""
    return kwargs


def build_mambairv2(**kwargs) -> MambaIRv2:
    kwargs = _mambairv2_kwargs(kwargs)
    for key in ("depths", "num_heads"):
        if key in kwargs:
            kwargs[key] = tuple(int(v) for v in kwargs[key])
    return MambaIRv2(**kwargs)


# The official relative-position index buffer is recomputed here (`relative_position_index`).
CONVERT_HOOKS = ConvertHooks(
    renames=((r"residual_group\.layers\.(\d+)", r"residual_group_layers_\1"),
             (r"^patch_embed\.norm\.", "patch_embed_norm."),
             (r"\.(embedding[AB])\.weight$", r".\1")),
    ignored=(r"^relative_position_index_SA$",),
)

_COLOR_DN = dict(upscale=1, in_chans=3, img_range=1.0, embed_dim=174, d_state=16, depths=(6,) * 6,
                 num_heads=(6,) * 6, window_size=16, inner_rank=64, num_tokens=128, convffn_kernel_size=5,
                 mlp_ratio=2.0, upsampler="")
_SR = dict(_COLOR_DN, upsampler="pixelshuffle")
_SR_SMALL = dict(_SR, embed_dim=132, depths=(4,) * 6, num_heads=(4,) * 6)
_SR_LARGE = dict(_SR, depths=(6,) * 9, num_heads=(6,) * 9)
_LIGHT_SR = dict(upscale=2, in_chans=3, img_range=1.0, embed_dim=48, d_state=8, depths=(5,) * 4,
                 num_heads=(4,) * 4, window_size=16, inner_rank=32, num_tokens=64, convffn_kernel_size=5,
                 mlp_ratio=1.0, upsampler="pixelshuffledirect", gated_mlp=True)
# Paper configurations (options/train/mambairv2/train_MambaIRv2_*.yml) -> (kwargs, parameters counted by
# instantiating the official class: MambaIRv2, or MambaIRv2Light for lightweight SR).
CONFIGS = {
    "color_dn": (_COLOR_DN, 22_657_971),
    "jpeg_car": (dict(_COLOR_DN, in_chans=1), 22_651_705),
    **{f"sr_x{s}": (dict(_SR, upscale=s), n) for s, n in ((2, 22_903_001), (3, 23_087_641), (4, 23_050_713))},
    **{f"sr_small_x{s}": (dict(_SR_SMALL, upscale=s), n)
       for s, n in ((2, 9_621_935), (3, 9_806_575), (4, 9_769_647))},
    **{f"sr_large_x{s}": (dict(_SR_LARGE, upscale=s), n)
       for s, n in ((2, 34_090_523), (3, 34_275_163), (4, 34_238_235))},
    **{f"light_sr_x{s}": (dict(_LIGHT_SR, upscale=s), n) for s, n in ((2, 774_092), (3, 780_587), (4, 789_680))},
}

_REPO = "csguoh/MambaIR"
_FILE = "basicsr/archs/mambairv2_arch.py"

registry.register_model(registry.ModelEntry(
    name="mambairv2",
    builder=build_mambairv2,
    official=((_REPO, "MambaIRv2"),),
    translate_kwargs=_mambairv2_kwargs,
    convert_hooks=CONVERT_HOOKS,
    official_file=_FILE,
    description="MambaIRv2 (CVPR 2025): window attention + attentive state space (routed prompts, "
                "sorted scan); colour denoising 22.7M; SR/JPEG configs in jaxir.models.mambairv2.CONFIGS.",
))


def _light_kwargs(official: dict) -> dict:
    return dict(_mambairv2_kwargs(official), gated_mlp=True)


registry.register_model(registry.ModelEntry(
    name="mambairv2_light",
    builder=lambda **kw: build_mambairv2(**{**kw, "gated_mlp": True}),
    official=((_REPO, "MambaIRv2Light"),),
    translate_kwargs=_light_kwargs,
    convert_hooks=CONVERT_HOOKS,
    official_file="basicsr/archs/mambairv2light_arch.py",
    description="MambaIRv2Light (lightweight SR, 0.77M at x2): MambaIRv2 with gated MLPs.",
))
