"""ADM U-Net: the diffusion U-Net of "Diffusion Models Beat GANs on Image Synthesis"
(Dhariwal & Nichol, NeurIPS 2021), openai/guided-diffusion `guided_diffusion/unet.py`
`UNetModel`, as ChongWang1024/RDMD ships it (commit 433e0ea) for its pre-trained priors.

Timestep embedding -> MLP; input conv; per level `num_res_blocks` ResBlocks (with
attention at the downsample rates in `attention_resolutions`) and a downsampling
block; middle ResBlock-attention-ResBlock; mirrored output blocks on skip
concatenations; GroupNorm-SiLU-conv out. With `out_channels=6` the second half of
the output is the learned-variance interpolation v of "Improved DDPM"
(`jaxir.diffusion.gaussian.learned_range_log_variance`).

The consistency-model U-Net (openai/consistency_models `cm/unet.py`) is this class
with `qkv_order='qkv_first'` (its flash attention splits q/k/v before heads);
`cm_unet` registers it. Inputs: NHWC x, timesteps (N,) (float allowed), and class
labels y (N,) int when `num_classes` is set.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxir import registry
from jaxir.models.blocks import Conv2d, Dtype, Linear
from jaxir.models.unet_blocks import AttentionBlock, Downsample, GroupNorm32, ResBlock, Upsample, timestep_embedding


class ADMUNet(nn.Module):
    in_channels: int = 3
    model_channels: int = 128
    out_channels: int = 6
    num_res_blocks: int = 2
    attention_resolutions: Sequence[int] = (16,)  # downsample rates (image_size // resolution)
    dropout: float = 0.0
    channel_mult: Sequence[float] = (1, 2, 4, 8)
    conv_resample: bool = True
    num_classes: int | None = None
    num_heads: int = 1
    num_head_channels: int = -1
    num_heads_upsample: int = -1
    use_scale_shift_norm: bool = False
    resblock_updown: bool = False
    qkv_order: str = "heads_first"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, timesteps, y=None, train: bool = False):
        if (y is None) != (self.num_classes is None):
            raise ValueError("pass class labels y if and only if the model is class-conditional (num_classes)")
        if x.ndim != 4 or x.shape[-1] != self.in_channels:
            raise ValueError(f"ADM U-Net expects NHWC input with {self.in_channels} channels, got {x.shape}")
        levels = len(self.channel_mult) - 1
        if x.shape[1] % 2 ** levels or x.shape[2] % 2 ** levels:
            raise ValueError(f"H and W must be multiples of {2 ** levels} ({levels} downsamplings), got {x.shape[1:3]}")
        dt = self.dtype
        mc = self.model_channels
        heads_up = self.num_heads if self.num_heads_upsample == -1 else self.num_heads_upsample
        emb_dim = 4 * mc
        emb = timestep_embedding(timesteps, mc)
        emb = Linear(emb_dim, dtype=dt, name="time_embed_0")(emb)
        emb = Linear(emb_dim, dtype=dt, name="time_embed_2")(nn.silu(emb))
        if self.num_classes is not None:
            emb = emb + nn.Embed(self.num_classes, emb_dim, name="label_emb")(y).astype(emb.dtype)

        def res(h, out_ch, name, **kw):
            return ResBlock(out_ch, self.dropout, use_scale_shift_norm=self.use_scale_shift_norm, dtype=dt,
                            name=name, **kw)(h, emb, train)

        def attn(h, heads, name):
            return AttentionBlock(heads, self.num_head_channels, self.qkv_order, dt, name=name)(h)

        h = Conv2d(int(self.channel_mult[0] * mc), 3, padding=1, dtype=dt, name="input_blocks_0_0")(x.astype(dt))
        hs = [h]
        ds, index = 1, 1
        for level, mult in enumerate(self.channel_mult):
            for _ in range(self.num_res_blocks):
                h = res(h, int(mult * mc), f"input_blocks_{index}_0")
                if ds in self.attention_resolutions:
                    h = attn(h, self.num_heads, f"input_blocks_{index}_1")
                hs.append(h)
                index += 1
            if level != levels:
                name = f"input_blocks_{index}_0"
                h = res(h, h.shape[-1], name, down=True) if self.resblock_updown else \
                    Downsample(self.conv_resample, h.shape[-1], dt, name=name)(h)
                hs.append(h)
                index += 1
                ds *= 2

        h = res(h, h.shape[-1], "middle_block_0")
        h = attn(h, self.num_heads, "middle_block_1")
        h = res(h, h.shape[-1], "middle_block_2")

        index = 0
        for level, mult in reversed(list(enumerate(self.channel_mult))):
            for i in range(self.num_res_blocks + 1):
                h = jnp.concatenate([h, hs.pop()], axis=-1)
                h = res(h, int(mc * mult), f"output_blocks_{index}_0")
                sub = 1
                if ds in self.attention_resolutions:
                    h = attn(h, heads_up, f"output_blocks_{index}_{sub}")
                    sub += 1
                if level and i == self.num_res_blocks:
                    name = f"output_blocks_{index}_{sub}"
                    h = res(h, h.shape[-1], name, up=True) if self.resblock_updown else \
                        Upsample(self.conv_resample, h.shape[-1], dt, name=name)(h)
                    ds //= 2
                index += 1

        h = nn.silu(GroupNorm32(name="out_0")(h))
        out = Conv2d(self.out_channels, 3, padding=1, dtype=dt, name="out_2")(h)
        return out.astype(jnp.float32)


_UNUSED_OFFICIAL = ("image_size", "use_checkpoint", "use_fp16", "dims")


def official_kwargs(official: dict, qkv_order: str | None = None) -> dict:
    """Official `UNetModel(...)` kwargs -> ADMUNet fields (fp16, checkpointing and image_size do not change the function)."""
    if official.get("dims", 2) != 2:
        raise ValueError("only 2-D U-Nets are ported")
    kwargs = {k: v for k, v in official.items() if k not in _UNUSED_OFFICIAL}
    new_order = kwargs.pop("use_new_attention_order", False)
    kwargs["qkv_order"] = qkv_order or ("qkv_first" if new_order else "heads_first")
    for key in ("attention_resolutions", "channel_mult"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    return kwargs


def build_adm_unet(**kwargs) -> ADMUNet:
    for key in ("attention_resolutions", "channel_mult"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    return ADMUNet(**kwargs)


def example_inputs(model: ADMUNet, batch: int, height: int, width: int) -> list:
    """Abstract (x, timesteps[, y]) for tracing a diffusion U-Net."""
    inputs = [jax.ShapeDtypeStruct((batch, height, width, model.in_channels), jnp.float32),
              jax.ShapeDtypeStruct((batch,), jnp.float32)]
    if model.num_classes is not None:
        inputs.append(jax.ShapeDtypeStruct((batch,), jnp.int32))
    return inputs


registry.register_model(registry.ModelEntry(
    name="adm_unet",
    builder=build_adm_unet,
    official=(("ChongWang1024/RDMD", "UNetModel"), ("openai/guided-diffusion", "UNetModel")),
    translate_kwargs=official_kwargs,
    pad_multiple=32,
    min_size=32,
    official_file="guided_diffusion/unet.py",
    example_inputs=example_inputs,
    description="ADM diffusion U-Net (guided-diffusion; RDMD's prior): 552.8M ImageNet-256 uncond, 93.6M FFHQ.",
))
