"""MaIR: a locality- and continuity-preserving Mamba for image restoration.

Li, Zhao, Wang, Hu, Gou, Peng. "MaIR: A Locality- and Continuity-Preserving Mamba for
Image Restoration", CVPR 2025.
Official code: XLearning-SCU/2025-CVPR-MaIR (commit 2fb433e):
realDenoising/basicsr/models/archs/mairunet_arch.py (`MaIRUNet`, used for motion deblurring,
real denoising, dehazing and deraining), basicsr/archs/mair_arch.py (`MaIR`, the SwinIR-shaped
network of classic / lightweight super-resolution and Gaussian colour denoising) and
shift_scanf_util.py (the scan orders).

Restormer's 4-level U-Net with its transformer blocks replaced by VSS blocks:
x + LoSh2D(LN(x)) (each residual scaled by a learned per-channel `skip_scale`), then an
MLP. LoSh2D is a Mamba block whose 2-D feature map is read in four orders:

- Nested S-shaped scanning (NSS): the image is cut into vertical stripes `scan_len`
  wide; inside a stripe the pixels are read row by row, every other row right to
  left (a snake), and every other stripe bottom to top, so consecutive tokens are
  always spatial neighbours. The four sequences are this scan of the image, of the
  image rotated 180 degrees, of its transpose, and of the transpose rotated.
  The shifted variant starts with a stripe `shift` wide.
- Each sequence goes through its own selective scan (`jaxir.ops.scan`), is put back in
  image order, and the four are weighted by sequence shuffle attention (SSA:
  average-pool, channel shuffle, a grouped 1x1 conv over the four directions of each
  channel, sigmoid) before they are summed.

`MaIR` stacks residual groups (RMG) of the same blocks at full resolution, every other block
reading the shifted scan (first stripe `scan_len // 2` wide), behind SwinIR's shallow conv and
image reconstruction (`jaxir.models.blocks.swinir_reconstruction`).

The scan orders depend only on the input size: they are numpy index arrays built at
trace time (cached per size), so every call at one size runs the same compiled gather.
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
from jaxir.models.blocks import (SWINIR_RGB_MEAN, SWINIR_UPSAMPLERS, Conv2d, LayerNorm, Linear, gelu, s6_params,
                                 s6_scan, swinir_reconstruction)
from jaxir.models.restormer import Downsample, OverlapPatchEmbed, Upsample

Dtype = Any
NUM_DIRECTIONS = 4


# --- scan orders -------------------------------------------------------------

def snake_scan(grid: np.ndarray, scan_len: int, shift: int = 0) -> np.ndarray:
    """The nested S-shaped reading order of a (..., H, W) array, flattened to (..., H*W).

    Stripes of `scan_len` columns (after a first stripe `shift` wide when shifted, and a
    last narrower one when the width does not divide); odd stripes of the unshifted
    grid (even ones after the first when shifted) are read bottom to top; inside a
    stripe, odd rows (of the flipped stripe) are read right to left. Mirrors the
    official `sscan`, including its treatment of the leftover stripe.
    """
    x = np.array(grid, copy=True)
    h, w = x.shape[-2:]
    rest = w - shift
    starts = [shift + i * scan_len for i in range(rest // scan_len + 1)]
    stripes = [(0, shift)] if shift else []
    stripes += [(s, min(s + scan_len, w)) for s in starts if s < w]
    # Stripes read bottom to top: odd ones unshifted, even ones (of the shifted grid) when shifted.
    for i, s in enumerate(starts):
        if (i % 2 == 1) if not shift else (i % 2 == 0):
            x[..., :, s:s + scan_len] = x[..., ::-1, s:s + scan_len].copy()
    # Odd rows reversed inside every full stripe (and inside the first, shifted one).
    full = [(s, s + scan_len) for s in starts[:rest // scan_len]]
    if shift:
        full = [(0, shift)] + full
    for a, b in full:
        x[..., 1:2 * (h // 2):2, a:b] = x[..., 1:2 * (h // 2):2, a:b][..., ::-1].copy()
    leftover = rest % scan_len
    if leftover:
        x[..., 1::2, w - leftover:] = x[..., 1::2, w - leftover:][..., ::-1].copy()
    lead = x.shape[:-2]
    return np.concatenate([x[..., :, a:b].reshape(lead + (-1,)) for a, b in stripes], axis=-1)


@functools.lru_cache(maxsize=64)
def scan_indices(height: int, width: int, scan_len: int, shift: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(order, inverse), each (4, H*W): sequence k reads pixel order[k, t] (row-major index);
    inverse[k] puts it back. Directions: the image, rotated 180, transposed, transposed rotated."""
    index = np.arange(height * width).reshape(1, height, width)
    both = np.concatenate([index, index[:, ::-1, ::-1]])  # (2, H, W)
    order = np.concatenate([snake_scan(both, scan_len, shift), snake_scan(both.swapaxes(-1, -2), scan_len, shift)])
    order.setflags(write=False)
    inverse = np.argsort(order, axis=-1)
    inverse.setflags(write=False)
    return order, inverse


# --- layers ---------------------------------------------------------------

def channel_shuffle(x, groups: int):
    """The official ShuffleAttn.channel_shuffle on NHWC: channel j*G + g -> g*(C/G) + j."""
    c = x.shape[-1]
    return x.reshape(*x.shape[:-1], c // groups, groups).swapaxes(-1, -2).reshape(x.shape)


def channel_rearrange(x, groups: int):
    """The inverse of `channel_shuffle`."""
    c = x.shape[-1]
    return x.reshape(*x.shape[:-1], groups, c // groups).swapaxes(-1, -2).reshape(x.shape)


class ShuffleAttn(nn.Module):
    """Sequence shuffle attention: a sigmoid gate per channel from the pooled features,
    mixing the four directions of each channel (grouped 1x1 conv, one group per channel)."""

    group: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        pooled = jnp.mean(channel_shuffle(x, self.group).astype(jnp.float32), axis=(1, 2), keepdims=True)
        gate = Conv2d(c, 1, groups=self.group, dtype=self.dtype, name="gating_1")(pooled.astype(self.dtype))
        return channel_rearrange(jax.nn.sigmoid(gate), self.group)


class LoSh2D(nn.Module):
    """The official LoSh2D: in_proj -> (x, z); x: depthwise 3x3 conv, SiLU, four NSS selective
    scans, SSA gate, sum of directions, LayerNorm; times SiLU(z); out_proj."""

    d_state: int = 16
    ssm_ratio: float = 2.0
    d_conv: int = 3
    shift: int = 0
    scan_len: int = 4
    scan_method: str = "associative"
    scan_chunk: int = 256
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        b, h, w, c = x.shape
        dt = self.dtype
        d_inner = int(self.ssm_ratio * c)
        dt_rank = math.ceil(c / 16)
        x, z = jnp.split(Linear(2 * d_inner, use_bias=False, dtype=dt, name="in_proj")(x), 2, axis=-1)
        x = nn.silu(Conv2d(d_inner, self.d_conv, padding=(self.d_conv - 1) // 2, groups=d_inner, dtype=dt,
                           name="conv2d")(x))
        order, inverse = scan_indices(h, w, self.scan_len, self.shift)
        flat = x.reshape(b, h * w, d_inner).swapaxes(1, 2)  # (B, D, L), row-major pixels
        xs = jnp.stack([flat[:, :, order[k]] for k in range(NUM_DIRECTIONS)], axis=1)  # (B, K, D, L)
        params = s6_params(self, NUM_DIRECTIONS, d_inner, self.d_state, dt_rank)
        y = s6_scan(params, xs, method=self.scan_method, chunk_size=self.scan_chunk)
        y = jnp.stack([y[:, k][:, :, inverse[k]] for k in range(NUM_DIRECTIONS)], axis=1)
        # (B, K, D, L) -> NHWC with channel k*D + d, as the official concatenation of directions.
        y = y.reshape(b, NUM_DIRECTIONS * d_inner, h, w).transpose(0, 2, 3, 1).astype(dt)
        y = y * ShuffleAttn(d_inner, dt, name="gating")(y)
        y = jnp.sum(y.reshape(b, h, w, NUM_DIRECTIONS, d_inner), axis=3)
        y = LayerNorm(epsilon=1e-5, dtype=dt, name="out_norm")(y)
        y = y * nn.silu(z)
        return Linear(c, use_bias=False, dtype=dt, name="out_proj")(y)


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2, back to the input width."""

    hidden: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        x = gelu(Linear(self.hidden, dtype=self.dtype, name="fc1")(x))
        return Linear(c, dtype=self.dtype, name="fc2")(x)


class VSSBlock(nn.Module):
    """x * skip_scale + LoSh2D(LN(x)); then x * skip_scale2 + MLP(LN(x)). `shift` picks the shifted scan."""

    d_state: int
    ssm_ratio: float = 2.0
    mlp_ratio: float = 1.5
    shift: int = 0
    scan_len: int = 4
    scan_method: str = "associative"
    scan_chunk: int = 256
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, inp):
        c, dt = inp.shape[-1], self.dtype
        ones = nn.initializers.ones
        x = LayerNorm(epsilon=1e-5, dtype=dt, name="ln_1")(inp)
        x = inp * self.param("skip_scale", ones, (c,), jnp.float32).astype(dt) + LoSh2D(
            self.d_state, self.ssm_ratio, shift=self.shift, scan_len=self.scan_len, scan_method=self.scan_method,
            scan_chunk=self.scan_chunk, dtype=dt, name="self_attention")(x)
        y = Mlp(int(c * self.mlp_ratio), dt, name="mlp")(LayerNorm(epsilon=1e-5, dtype=dt, name="ln_2")(x))
        return x * self.param("skip_scale2", ones, (c,), jnp.float32).astype(dt) + y


class MaIRUNet(nn.Module):
    """The official MaIRUNet; `dual_pixel_task` adds the refinement skip conv and drops the input residual."""

    inp_channels: int = 3
    out_channels: int = 3
    dim: int = 48
    num_blocks: Sequence[int] = (4, 6, 6, 8)
    num_refinement_blocks: int = 4
    ssm_ratio: float = 1.5
    flp_ratio: float = 2.0  # MLP ratio of the first encoder level
    mlp_ratio: float = 2.0
    use_bias: bool = False
    dual_pixel_task: bool = False
    scan_len: int = 8
    scan_method: str = "associative"  # see jaxir.ops.scan: associative | chunked | sequential
    scan_chunk: int = 256
    dtype: Dtype = jnp.float32

    def _check(self, x):
        if len(self.num_blocks) != 4:
            raise ValueError(f"num_blocks needs 4 levels, got {self.num_blocks}")
        if x.ndim != 4 or x.shape[-1] != self.inp_channels:
            raise ValueError(f"MaIRUNet expects NHWC input with {self.inp_channels} channels, got shape {x.shape}")
        if x.shape[1] % 8 or x.shape[2] % 8:
            raise ValueError(f"MaIRUNet needs H and W divisible by 8 (three 2x downsamplings), got "
                             f"{x.shape[1]}x{x.shape[2]}; pad the input (registry pad_multiple=8)")

    @nn.compact
    def __call__(self, inp, train: bool = False):
        self._check(inp)
        dt, dim = self.dtype, self.dim
        inp = inp.astype(dt)
        base_d_state = 4

        def stage(x, num, level, prefix, mlp_ratio=None):
            for i in range(num):
                x = VSSBlock(base_d_state * 2 ** level, self.ssm_ratio,
                             self.mlp_ratio if mlp_ratio is None else mlp_ratio, scan_len=self.scan_len,
                             scan_method=self.scan_method, scan_chunk=self.scan_chunk, dtype=dt,
                             name=f"{prefix}_{i}")(x)
            return x

        def reduce(x, features, name):
            return Conv2d(features, 1, use_bias=self.use_bias, dtype=dt, name=name)(x)

        embedded = OverlapPatchEmbed(dim, dtype=dt, name="patch_embed")(inp)
        enc1 = stage(embedded, self.num_blocks[0], 0, "encoder_level1", self.flp_ratio)
        enc2 = stage(Downsample(dt, name="down1_2")(enc1), self.num_blocks[1], 1, "encoder_level2")
        enc3 = stage(Downsample(dt, name="down2_3")(enc2), self.num_blocks[2], 2, "encoder_level3")
        latent = stage(Downsample(dt, name="down3_4")(enc3), self.num_blocks[3], 3, "latent")

        x = jnp.concatenate([Upsample(dt, name="up4_3")(latent), enc3], axis=-1)
        x = stage(reduce(x, 4 * dim, "reduce_chan_level3"), self.num_blocks[2], 2, "decoder_level3")
        x = jnp.concatenate([Upsample(dt, name="up3_2")(x), enc2], axis=-1)
        x = stage(reduce(x, 2 * dim, "reduce_chan_level2"), self.num_blocks[1], 1, "decoder_level2")
        x = jnp.concatenate([Upsample(dt, name="up2_1")(x), enc1], axis=-1)
        # Level 1 keeps 2*dim channels and level 2's state size after the concatenation.
        x = stage(x, self.num_blocks[0], 1, "decoder_level1")
        x = stage(x, self.num_refinement_blocks, 1, "refinement")

        if self.dual_pixel_task:
            x = x + reduce(embedded, 2 * dim, "skip_conv")
        out = Conv2d(self.out_channels, 3, padding=1, use_bias=self.use_bias, dtype=dt, name="output")(x)
        if not self.dual_pixel_task:
            out = out + inp
        return out.astype(jnp.float32)


# The official constructor's bookkeeping arguments: the scan orders are rebuilt per input size here.
_TRACE_TIME_KWARGS = ("img_size", "batch_size", "dynamic_ids", "drop_path_rate")


def _mair_unet_kwargs(official: dict) -> dict:
    kwargs = {k: v for k, v in official.items() if k not in _TRACE_TIME_KWARGS}
    if "bias" in kwargs:
        kwargs["use_bias"] = kwargs.pop("bias")
    return kwargs


def build_mair_unet(**kwargs) -> MaIRUNet:
    for key in _TRACE_TIME_KWARGS:
        kwargs.pop(key, None)
    if "num_blocks" in kwargs:
        kwargs["num_blocks"] = tuple(int(v) for v in kwargs["num_blocks"])
    return MaIRUNet(**kwargs)


_DEBLUR = dict(dim=48, num_blocks=(4, 6, 6, 8), num_refinement_blocks=4, ssm_ratio=2.0, flp_ratio=4.0,
               mlp_ratio=1.5, scan_len=4)
_DEHAZE = dict(dim=24, num_blocks=(2, 2, 3, 4), num_refinement_blocks=2, ssm_ratio=1.2, flp_ratio=2.0,
               mlp_ratio=2.0, scan_len=8)
# Paper configurations of MaIRUNet (realDenoising/options/train/train_MaIR_*.yml).
CONFIGS = {
    "motion_deblur": _DEBLUR,  # GoPro; 26,293,296 parameters
    "real_denoise": _DEBLUR,  # SIDD (train_MaIR_RealDN.yml)
    "dehaze": _DEHAZE,  # RESIDE ITS / OTS; 3,404,376 parameters (official class)
    "derain": _DEHAZE,  # Rain13K-style R6K (train_MaIR_R6K.yml)
}

_REPO = "XLearning-SCU/2025-CVPR-MaIR"
_FILE = "realDenoising/basicsr/models/archs/mairunet_arch.py"

registry.register_model(registry.ModelEntry(
    name="mair_unet",
    builder=build_mair_unet,
    official=((_REPO, "MaIRUNet"),),
    translate_kwargs=_mair_unet_kwargs,
    pad_multiple=8,
    min_size=8,
    official_file=_FILE,
    description="MaIR U-Net (CVPR 2025): nested S-shaped scans + sequence shuffle attention; "
                "jaxir.models.mair.CONFIGS has the deblur/denoise/dehaze/derain configs (26.3M for deblurring).",
))


# --- MaIR: SR and colour denoising (basicsr/archs/mair_arch.py) ------------------------------

class RMG(nn.Module):
    """Residual Mamba group: `depth` blocks (odd ones on the shifted scan), a 3x3 conv, the group's residual."""

    depth: int
    d_state: int
    ssm_ratio: float
    mlp_ratio: float
    scan_len: int
    scan_method: str = "associative"
    scan_chunk: int = 256
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        y = x
        for i in range(self.depth):
            y = VSSBlock(self.d_state, self.ssm_ratio, self.mlp_ratio, shift=0 if i % 2 == 0 else self.scan_len // 2,
                         scan_len=self.scan_len, scan_method=self.scan_method, scan_chunk=self.scan_chunk,
                         dtype=self.dtype, name=f"residual_group_blocks_{i}")(y)
        return Conv2d(x.shape[-1], 3, padding=1, dtype=self.dtype, name="conv")(y) + x


class MaIR(nn.Module):
    """The official MaIR (patch size 1, patch norm, resi_connection '1conv'). `upsampler`: 'pixelshuffle'
    (classic SR), 'pixelshuffledirect' (lightweight SR), '' (denoising, upscale 1)."""

    upscale: int = 2
    in_chans: int = 3
    embed_dim: int = 60
    depths: Sequence[int] = (6, 6, 6, 6)
    d_state: int = 16
    ssm_ratio: float = 1.5
    mlp_ratio: float = 2.0
    img_range: float = 1.0
    upsampler: str = "pixelshuffledirect"
    scan_len: int = 8
    scan_method: str = "associative"  # see jaxir.ops.scan: associative | chunked | sequential
    scan_chunk: int = 256
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        if self.upsampler not in SWINIR_UPSAMPLERS:
            raise ValueError(f"upsampler must be one of {SWINIR_UPSAMPLERS}, got {self.upsampler!r}")
        if x.ndim != 4 or x.shape[-1] != self.in_chans:
            raise ValueError(f"MaIR expects NHWC input with {self.in_chans} channels, got shape {x.shape}")
        dt, dim = self.dtype, self.embed_dim
        mean = jnp.asarray(SWINIR_RGB_MEAN if self.in_chans == 3 else (0.0,) * self.in_chans, jnp.float32)
        x = ((x.astype(jnp.float32) - mean) * self.img_range).astype(dt)

        first = Conv2d(dim, 3, padding=1, dtype=dt, name="conv_first")(x)
        features = LayerNorm(epsilon=1e-5, dtype=dt, name="patch_embed_norm")(first)
        for i, depth in enumerate(self.depths):
            features = RMG(depth, self.d_state, self.ssm_ratio, self.mlp_ratio, self.scan_len, self.scan_method,
                           self.scan_chunk, dt, name=f"layers_{i}")(features)
        features = LayerNorm(epsilon=1e-5, dtype=dt, name="norm")(features)
        res = Conv2d(dim, 3, padding=1, dtype=dt, name="conv_after_body")(features) + first
        out = swinir_reconstruction(x, res, self.upsampler, self.upscale, self.in_chans, dt)
        return out.astype(jnp.float32) / self.img_range + mean


# Official constructor arguments with no effect on the forward pass here (sizes come from the input; no dropout
# or drop path at inference; the scan orders are built per input size).
_MAIR_IGNORED = ("img_size", "drop_rate", "drop_path_rate", "norm_layer", "use_checkpoint", "dynamic_ids",
                 "batch_size")


def _mair_kwargs(official: dict) -> dict:
    kwargs = dict(official)
    for key, want in (("patch_size", 1), ("patch_norm", True), ("resi_connection", "1conv")):
        if kwargs.pop(key, want) != want:
            raise ValueError(f"the MaIR port supports {key}={want!r} only (every paper configuration)")
    for key in _MAIR_IGNORED:
        kwargs.pop(key, None)
    if kwargs.get("upsampler") is None:
        kwargs["upsampler"] = ""
    return kwargs


def build_mair(**kwargs) -> MaIR:
    kwargs = _mair_kwargs(kwargs)
    if "depths" in kwargs:
        kwargs["depths"] = tuple(int(v) for v in kwargs["depths"])
    return MaIR(**kwargs)


MAIR_CONVERT_HOOKS = ConvertHooks(
    renames=((r"residual_group\.blocks\.(\d+)", r"residual_group_blocks_\1"),
             (r"^patch_embed\.norm\.", "patch_embed_norm."),
             (r"\.conv_blk\.", ".mlp.")),  # the official RMB calls VSSBlock's MLP `conv_blk`
)

_SR = dict(in_chans=3, img_range=1.0, d_state=16, depths=(6,) * 6, embed_dim=180, ssm_ratio=2.0, mlp_ratio=2.5,
           upsampler="pixelshuffle", scan_len=8)
_LIGHT_S = dict(in_chans=3, img_range=1.0, d_state=16, depths=(6,) * 4, embed_dim=60, ssm_ratio=1.4, mlp_ratio=1.6,
                upsampler="pixelshuffledirect", scan_len=4)
_LIGHT_T = dict(_LIGHT_S, d_state=1, ssm_ratio=1.1, scan_len=8)
_COLOR_DN = dict(upscale=1, in_chans=3, img_range=1.0, d_state=16, depths=(6,) * 6, embed_dim=180, ssm_ratio=1.3,
                 mlp_ratio=2.0, upsampler="", scan_len=4)
# Paper configurations of MaIR (options/train/train_MaIR_*.yml) -> (kwargs, parameters counted by instantiating
# the official class). Colour denoising uses one network for sigma 15 / 25 / 50.
MAIR_CONFIGS = {
    **{f"sr_x{s}": (dict(_SR, upscale=s), n) for s, n in ((2, 19_444_247), (3, 19_628_887), (4, 19_591_959))},
    **{f"light_sr_s_x{s}": (dict(_LIGHT_S, upscale=s), n) for s, n in ((2, 1_354_680), (3, 1_362_795), (4, 1_374_156))},
    **{f"light_sr_t_x{s}": (dict(_LIGHT_T, upscale=s), n) for s, n in ((2, 877_752), (3, 885_867), (4, 897_228))},
    "color_dn": (_COLOR_DN, 14_089_035),
}

registry.register_model(registry.ModelEntry(
    name="mair",
    builder=build_mair,
    official=((_REPO, "MaIR"),),
    translate_kwargs=_mair_kwargs,
    convert_hooks=MAIR_CONVERT_HOOKS,
    min_size=8,
    official_file="basicsr/archs/mair_arch.py",
    description="MaIR (CVPR 2025) for classic / lightweight SR and colour denoising: residual groups of NSS + SSA "
                "Mamba blocks; jaxir.models.mair.MAIR_CONFIGS has the paper configurations.",
))
