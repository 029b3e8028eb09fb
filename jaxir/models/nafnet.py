"""NAFNet and the plain Baseline of the same paper.

Chen, Chu, Zhang, Sun. "Simple Baselines for Image Restoration", ECCV 2022.
Official code: megvii-research/NAFNet, basicsr/models/archs/{NAFNet,Baseline,local}_arch.py.

Test-time local converter (TLC, Chu et al. 2021, "Revisiting Global Statistics
Aggregation for Improving Image Restoration"): set `tlc_train_size=(H, W)` (the
training patch size) and every global average pool of the channel attention
becomes a local average over a window 1.5x the training-time feature size, which
closes the train/test statistics gap on full-resolution images. This is the
official `NAFNetLocal`/`BaselineLocal` with `fast_imp=False`.
"""
from __future__ import annotations

from typing import Any, Sequence

import jax.numpy as jnp
import flax.linen as nn

from jaxir import registry
from jaxir.models.blocks import Conv2d, LayerNorm, gelu, global_avg_pool, pad_to_multiple, pixel_shuffle

Dtype = Any


def local_avg_pool(x, kernel: tuple[int, int]):
    """TLC's local average: box filter of `kernel` (cumulative sums), replicate-padded back to size.

    Falls back to the global average when the window covers the feature map, as the official code.
    """
    n, h, w, c = x.shape
    if kernel[0] >= h and kernel[1] >= w:
        return global_avg_pool(x)
    k1, k2 = min(h, kernel[0]), min(w, kernel[1])
    s = jnp.cumsum(jnp.cumsum(x, axis=2), axis=1)
    s = jnp.pad(s, ((0, 0), (1, 0), (1, 0), (0, 0)))
    out = s[:, k1:, k2:] + s[:, :-k1, :-k2] - s[:, :-k1, k2:] - s[:, k1:, :-k2]
    out = out / (k1 * k2)
    oh, ow = out.shape[1:3]
    pad = (((h - oh) // 2, (h - oh + 1) // 2), ((w - ow) // 2, (w - ow + 1) // 2))
    return jnp.pad(out, ((0, 0), pad[0], pad[1], (0, 0)), mode="edge")


def _pool(x, tlc_kernel):
    return global_avg_pool(x) if tlc_kernel is None else local_avg_pool(x, tlc_kernel)


def _simple_gate(x):
    x1, x2 = jnp.split(x, 2, axis=-1)
    return x1 * x2


class NAFBlock(nn.Module):
    """Norm, pointwise/depthwise convs, a gate and channel attention; then a gated FFN, both residual.

    NAFNet's block (`baseline=False`): SimpleGate and the simplified channel attention.
    The paper's plain baseline block (`baseline=True`): GELU and a squeeze-excitation.
    """

    channels: int
    dw_expand: int = 2
    ffn_expand: int = 2
    drop_out_rate: float = 0.0
    tlc_kernel: tuple[int, int] | None = None
    baseline: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, inp, train: bool = False):
        c, dt = self.channels, self.dtype
        dw_channel = c * self.dw_expand
        gate = gelu if self.baseline else _simple_gate
        x = LayerNorm(epsilon=1e-6, dtype=dt, name="norm1")(inp)
        x = Conv2d(dw_channel, 1, dtype=dt, name="conv1")(x)
        x = gate(Conv2d(dw_channel, 3, padding=1, groups=dw_channel, dtype=dt, name="conv2")(x))
        pooled = _pool(x, self.tlc_kernel)
        if self.baseline:
            # Official `se` Sequential: pool(0), conv(1), ReLU(2), conv(3), Sigmoid(4).
            s = nn.relu(Conv2d(dw_channel // 2, 1, dtype=dt, name="se_1")(pooled))
            x = x * nn.sigmoid(Conv2d(dw_channel, 1, dtype=dt, name="se_3")(s))
        else:
            # Official `sca` Sequential: pool(0), conv(1).
            x = x * Conv2d(x.shape[-1], 1, dtype=dt, name="sca_1")(pooled)
        x = Conv2d(c, 1, dtype=dt, name="conv3")(x)
        x = nn.Dropout(self.drop_out_rate, deterministic=not train)(x) if self.drop_out_rate > 0 else x
        beta = self.param("beta", nn.initializers.zeros, (c,), jnp.float32)
        y = inp + x * beta.astype(dt)

        x = Conv2d(self.ffn_expand * c, 1, dtype=dt, name="conv4")(LayerNorm(epsilon=1e-6, dtype=dt, name="norm2")(y))
        x = Conv2d(c, 1, dtype=dt, name="conv5")(gate(x))
        x = nn.Dropout(self.drop_out_rate, deterministic=not train)(x) if self.drop_out_rate > 0 else x
        gamma = self.param("gamma", nn.initializers.zeros, (c,), jnp.float32)
        return y + x * gamma.astype(dt)


class NAFNet(nn.Module):
    """U-Net of NAFBlocks (NAFNet or baseline variant); global residual; pads to 2**levels inside, crops back."""

    img_channel: int = 3
    width: int = 16
    middle_blk_num: int = 1
    enc_blk_nums: Sequence[int] = ()
    dec_blk_nums: Sequence[int] = ()
    dw_expand: int = 2
    ffn_expand: int = 2
    drop_out_rate: float = 0.0
    block: str = "naf"  # naf | baseline
    # TLC: the training patch (H, W); None keeps the global pooling of training.
    tlc_train_size: tuple[int, int] | None = None
    tlc_base_scale: float = 1.5
    dtype: Dtype = jnp.float32

    def _tlc_kernel(self, level: int):
        if self.tlc_train_size is None:
            return None
        multiple = 2 ** len(self.enc_blk_nums)
        kernel = []
        for size in self.tlc_train_size:
            padded = size + (-size) % multiple
            base = int(size * self.tlc_base_scale)
            # The official code fixes the window at a first forward pass of a training-size input.
            kernel.append((padded // 2**level) * base // size)
        return tuple(kernel)

    @nn.compact
    def __call__(self, inp, train: bool = False):
        if inp.ndim != 4 or inp.shape[-1] != self.img_channel:
            raise ValueError(f"NAFNet expects NHWC input with {self.img_channel} channels, got shape {inp.shape}")
        if self.block not in ("naf", "baseline"):
            raise ValueError(f"block must be 'naf' or 'baseline', got {self.block!r}")
        dt = self.dtype
        h, w = inp.shape[1:3]
        inp = pad_to_multiple(inp.astype(dt), 2 ** len(self.enc_blk_nums))

        def stage(x, num, chan, level, prefix):
            for i in range(num):
                x = NAFBlock(chan, self.dw_expand, self.ffn_expand, self.drop_out_rate, self._tlc_kernel(level),
                             baseline=self.block == "baseline", dtype=dt, name=f"{prefix}_{i}")(x, train)
            return x

        x = Conv2d(self.width, 3, padding=1, dtype=dt, name="intro")(inp)
        chan, skips = self.width, []
        for level, num in enumerate(self.enc_blk_nums):
            x = stage(x, num, chan, level, f"encoders_{level}")
            skips.append(x)
            x = Conv2d(2 * chan, 2, stride=2, dtype=dt, name=f"downs_{level}")(x)
            chan *= 2
        x = stage(x, self.middle_blk_num, chan, len(self.enc_blk_nums), "middle_blks")
        for j, (num, skip) in enumerate(zip(self.dec_blk_nums, reversed(skips))):
            x = pixel_shuffle(Conv2d(chan * 2, 1, use_bias=False, dtype=dt, name=f"ups_{j}_0")(x), 2)
            chan //= 2
            x = stage(x + skip, num, chan, len(self.enc_blk_nums) - 1 - j, f"decoders_{j}")
        x = Conv2d(self.img_channel, 3, padding=1, dtype=dt, name="ending")(x) + inp
        return x[:, :h, :w].astype(jnp.float32)


def _nafnet_kwargs(official: dict) -> dict:
    kwargs = dict(official)
    kwargs.pop("fast_imp", None)
    train_size = kwargs.pop("train_size", None)
    if train_size is not None:
        kwargs["tlc_train_size"] = tuple(train_size[-2:])
    for key in ("enc_blk_nums", "dec_blk_nums"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    return kwargs


def _baseline_kwargs(official: dict) -> dict:
    kwargs = _nafnet_kwargs(official)
    kwargs.setdefault("dw_expand", 1)
    return kwargs


def build_nafnet(**kwargs) -> NAFNet:
    for key in ("enc_blk_nums", "dec_blk_nums"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    if "tlc_train_size" in kwargs and kwargs["tlc_train_size"] is not None:
        kwargs["tlc_train_size"] = tuple(kwargs["tlc_train_size"])
    return NAFNet(**kwargs)


def build_baseline(**kwargs) -> NAFNet:
    kwargs.setdefault("dw_expand", 1)
    return build_nafnet(block="baseline", **kwargs)


_REPO = "megvii-research/NAFNet"

def _encoder_taps(model) -> tuple[str, ...]:
    """The last block of each encoder level (its output is the level's skip feature)."""
    if not all(model.enc_blk_nums):
        raise ValueError(f"every encoder level needs a block to tap, got enc_blk_nums={model.enc_blk_nums}")
    return tuple(f"encoders_{level}_{num - 1}" for level, num in enumerate(model.enc_blk_nums))


registry.register_model(registry.ModelEntry(
    name="nafnet",
    builder=build_nafnet,
    official=((_REPO, "NAFNet"), (_REPO, "NAFNetLocal")),
    translate_kwargs=_nafnet_kwargs,
    pad_multiple=1,  # pads internally
    official_file="basicsr/models/archs/NAFNet_arch.py",
    description="NAFNet (ECCV 2022); tlc_train_size enables the test-time local converter.",
    encoder_taps=lambda m: _encoder_taps(m),
))
registry.register_model(registry.ModelEntry(
    name="nafnet_baseline",
    builder=build_baseline,
    official=((_REPO, "Baseline"), (_REPO, "BaselineLocal")),
    translate_kwargs=_baseline_kwargs,
    pad_multiple=1,
    official_file="basicsr/models/archs/Baseline_arch.py",
    description="The plain baseline of the NAFNet paper (GELU, SE channel attention).",
    encoder_taps=lambda m: _encoder_taps(m),
))
