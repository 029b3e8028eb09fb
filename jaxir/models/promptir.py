"""PromptIR: prompting for all-in-one blind image restoration.

Potlapalli, Zamir, Khan, Khan. "PromptIR: Prompting for All-in-One Blind Image
Restoration", NeurIPS 2023. Official code: va1shn9v/PromptIR, net/model.py.

Restormer's 4-level U-Net (its MDTA/GDFN transformer blocks, imported from
`jaxir.models.restormer`) with a prompt block before each of the three decoder
levels. Prompt generation (PGM): the features' global average -> linear ->
softmax over `prompt_len` components -> weighted sum of learned prompts
(prompt_len, C, S, S) -> bilinear resize to the feature size -> 3x3 conv.
Prompt interaction (PIM): concatenate the prompt to the features, one
transformer block over the concatenation, 1x1 conv back to the level's width.

Official quirks kept: the prompt widths (64/128/320) are fixed whatever `dim`;
the decoder's level-3 and all three prompt-interaction blocks use heads[2]; six
1x1 convs the forward never uses (`chnl_reduce*`, `reduce_noise_channel_*`) are
in the state dict and in the paper's 35.59M parameters, so they are declared
here too.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxir import registry
from jaxir.models.blocks import (Conv2d, Linear, PRECISION, _torch_bias_init, _torch_uniform_fan_in,
                                 interpolate_bilinear)
from jaxir.models.restormer import (LAYER_NORM_TYPES, Downsample, OverlapPatchEmbed, TransformerBlock,
                                    Upsample)

Dtype = Any
PROMPT_LEN = 5
PROMPT_DIMS = (64, 128, 320)  # official prompt1/2/3 widths
PROMPT_SIZES = (64, 32, 16)  # official prompt1/2/3 spatial sizes (the paper's 128 crops / 2, 4, 8)


class PromptGenBlock(nn.Module):
    """Prompt generation: input-conditioned mixture of `prompt_len` learned prompts, resized to the input."""

    prompt_dim: int
    prompt_len: int = PROMPT_LEN
    prompt_size: int = 16
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        b, h, w, _ = x.shape
        # Official layout (1, prompt_len, C, S, S), torch.rand init.
        prompts = self.param("prompt_param", nn.initializers.uniform(1.0),
                             (1, self.prompt_len, self.prompt_dim, self.prompt_size, self.prompt_size), jnp.float32)
        emb = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
        weights = nn.softmax(Linear(self.prompt_len, dtype=jnp.float32, name="linear_layer")(emb), axis=-1)
        prompt = jnp.einsum("bl,lchw->bhwc", weights, prompts[0], precision=PRECISION)
        prompt = interpolate_bilinear(prompt, (h, w)).astype(self.dtype)
        return Conv2d(self.prompt_dim, 3, padding=1, use_bias=False, dtype=self.dtype, name="conv3x3")(prompt)


class UnusedConv1x1(nn.Module):
    """Parameters of an official 1x1 conv the forward never calls: declared so they convert and count."""

    in_features: int
    features: int
    use_bias: bool = False

    TORCH_PARAMS = Conv2d.TORCH_PARAMS

    @nn.compact
    def __call__(self):
        self.param("kernel", _torch_uniform_fan_in((0, 1, 2)), (1, 1, self.in_features, self.features))
        if self.use_bias:
            self.param("bias", _torch_bias_init(self.in_features), (self.features,))


class PromptIR(nn.Module):
    """The official PromptIR (decoder=True, the paper's model); `prompt_sizes` for prompt1/2/3."""

    inp_channels: int = 3
    out_channels: int = 3
    dim: int = 48
    num_blocks: Sequence[int] = (4, 6, 6, 8)
    num_refinement_blocks: int = 4
    heads: Sequence[int] = (1, 2, 4, 8)
    ffn_expansion_factor: float = 2.66
    use_bias: bool = False
    layer_norm_type: str = "WithBias"
    decoder: bool = True
    prompt_sizes: Sequence[int] = PROMPT_SIZES
    prompt_len: int = PROMPT_LEN
    dtype: Dtype = jnp.float32

    def _check(self, x):
        if not self.decoder:
            # The official decoder=False graph feeds 8*dim channels to a conv built for 4*dim: it cannot run.
            raise ValueError("PromptIR runs only with decoder=True (the official decoder=False graph is inconsistent)")
        if len(self.num_blocks) != 4 or len(self.heads) != 4 or len(self.prompt_sizes) != 3:
            raise ValueError(f"num_blocks and heads need 4 levels and prompt_sizes 3, got {self.num_blocks}, "
                             f"{self.heads}, {self.prompt_sizes}")
        if self.layer_norm_type not in LAYER_NORM_TYPES:
            raise ValueError(f"layer_norm_type must be one of {LAYER_NORM_TYPES}, got {self.layer_norm_type!r}")
        if x.ndim != 4 or x.shape[-1] != self.inp_channels:
            raise ValueError(f"PromptIR expects NHWC input with {self.inp_channels} channels, got shape {x.shape}")
        if x.shape[1] % 8 or x.shape[2] % 8:
            raise ValueError(f"PromptIR needs H and W divisible by 8, got {x.shape[1]}x{x.shape[2]}; "
                             "pad the input (registry pad_multiple=8)")

    @nn.compact
    def __call__(self, inp, train: bool = False):
        self._check(inp)
        dt, dim, bias = self.dtype, self.dim, self.use_bias
        inp = inp.astype(dt)

        def block(x, heads, name):
            return TransformerBlock(heads, self.ffn_expansion_factor, bias, self.layer_norm_type, dt, name=name)(x)

        def stage(x, num, heads, prefix):
            for i in range(num):
                x = block(x, heads, f"{prefix}_{i}")
            return x

        def conv1x1(x, features, name):
            return Conv2d(features, 1, use_bias=bias, dtype=dt, name=name)(x)

        def prompt(x, level):
            """PGM, then PIM: concat the prompt, a transformer block (heads[2]), 1x1 back to the level's width."""
            p = PromptGenBlock(PROMPT_DIMS[level - 1], self.prompt_len, self.prompt_sizes[level - 1], dt,
                               name=f"prompt{level}")(x)
            x = block(jnp.concatenate([x, p], axis=-1), self.heads[2], f"noise_level{level}")
            return conv1x1(x, (2 * dim, 4 * dim, 4 * dim)[level - 1], f"reduce_noise_level{level}")

        for name, (cin, cout) in {"chnl_reduce1": (64, 64), "chnl_reduce2": (128, 128),
                                  "chnl_reduce3": (320, 256),
                                  "reduce_noise_channel_1": (dim + 64, dim),
                                  "reduce_noise_channel_2": (2 * dim + 128, 2 * dim),
                                  "reduce_noise_channel_3": (4 * dim + 256, 4 * dim)}.items():
            UnusedConv1x1(cin, cout, bias, name=name)()

        enc1 = stage(OverlapPatchEmbed(dim, dtype=dt, name="patch_embed")(inp), self.num_blocks[0], self.heads[0],
                     "encoder_level1")
        enc2 = stage(Downsample(dt, name="down1_2")(enc1), self.num_blocks[1], self.heads[1], "encoder_level2")
        enc3 = stage(Downsample(dt, name="down2_3")(enc2), self.num_blocks[2], self.heads[2], "encoder_level3")
        latent = stage(Downsample(dt, name="down3_4")(enc3), self.num_blocks[3], self.heads[3], "latent")

        x = prompt(latent, 3)
        x = jnp.concatenate([Upsample(dt, name="up4_3")(x), enc3], axis=-1)
        x = stage(conv1x1(x, 4 * dim, "reduce_chan_level3"), self.num_blocks[2], self.heads[2], "decoder_level3")

        x = prompt(x, 2)
        x = jnp.concatenate([Upsample(dt, name="up3_2")(x), enc2], axis=-1)
        x = stage(conv1x1(x, 2 * dim, "reduce_chan_level2"), self.num_blocks[1], self.heads[1], "decoder_level2")

        x = prompt(x, 1)
        # Level 1 keeps 2*dim channels after the concatenation (no 1x1 reduction), as Restormer.
        x = jnp.concatenate([Upsample(dt, name="up2_1")(x), enc1], axis=-1)
        x = stage(x, self.num_blocks[0], self.heads[0], "decoder_level1")
        x = stage(x, self.num_refinement_blocks, self.heads[0], "refinement")
        out = Conv2d(self.out_channels, 3, padding=1, use_bias=bias, dtype=dt, name="output")(x) + inp
        return out.astype(jnp.float32)


def _promptir_kwargs(official: dict) -> dict:
    """Official constructor kwargs (plus the golden files' `prompt_sizes`) -> `build_promptir` kwargs."""
    kwargs = dict(official)
    for old, new in {"bias": "use_bias", "LayerNorm_type": "layer_norm_type"}.items():
        if old in kwargs:
            kwargs[new] = kwargs.pop(old)
    return kwargs


def build_promptir(**kwargs) -> PromptIR:
    for key in ("num_blocks", "heads", "prompt_sizes"):
        if key in kwargs:
            kwargs[key] = tuple(int(v) for v in kwargs[key])
    kwargs.setdefault("decoder", True)
    return PromptIR(**kwargs)


registry.register_model(registry.ModelEntry(
    name="promptir",
    builder=build_promptir,
    official=(("va1shn9v/PromptIR", "PromptIR"),),
    translate_kwargs=_promptir_kwargs,
    pad_multiple=8,
    min_size=8,
    official_file="net/model.py",
    description="PromptIR (NeurIPS 2023), all-in-one restoration, 35.6M params; prompt_sizes default (64, 32, 16).",
))
