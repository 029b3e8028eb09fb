"""VLU-Net: vision-language guided deep unfolding for all-in-one restoration.

Zeng, Xiang, ... "Vision-Language Gradient Descent-driven All-in-One Deep Unfolding
Networks", CVPR 2025. Official code: xianggkl/VLU-Net, net/Final.py (`VLUNet`).

A Restormer-shaped U-Net in which every stage is one unfolded proximal-gradient
step: a gradient-descent module (GDM)
    x <- x - r * phi^T(phi(x, p) - y)
whose operator phi is a cross-attention of the features with a degradation prompt
p, and phi^T a transposed (channel) attention; then Restormer transformer blocks
act as the proximal denoiser. The prompt is a softmax(linear(v))-weighted sum of
`de_dim` learned prompts, v being the 512-d CLIP degradation vector of the input,
bilinearly resized to the feature size. A second stream of image features y runs
beside the features through the same U-Net (its own down/up-samplers).

`VLUNetCLIP` (`vlu_net_clip`) is the whole system as the official train.py/test.py run
it: the degradation vector is computed from the input by a frozen open_clip ViT-B/32
image tower followed by the fine-tuned adapter MLP (net/clip.py `DA_adapter`,
`get_image_features`), on the input resized to 224 and normalised as
utils/dataset_utils_clip.py does. Submodules keep the official LightningModule's names
(`net`, `model_degradation.ad_imageEncoder.{clip_model.visual, adapter}`), so its
checkpoints convert as they are.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxir import registry
from jaxir.convert.state_dict import ConvertHooks
from jaxir.models.attention import dot_product_attention, l2_normalize, merge_heads, split_heads
from jaxir.models.blocks import Conv2d, LayerNorm, Linear, interpolate_bilinear
from jaxir.models.clip import OPEN_CLIP_IGNORED, OPEN_CLIP_RENAMES, CLIPTextModel, OpenCLIPVisual, preprocess
from jaxir.models.restormer import MDTA, Downsample, OverlapPatchEmbed, TransformerBlock, Upsample

Dtype = Any
DEGRADATION_DIM = 512


class CrossAttention(nn.Module):
    """Transposed (channel) attention with queries and values from x, keys from the prompt."""

    num_heads: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, prompt):
        b, h, w, c = x.shape
        dt = self.dtype
        temperature = self.param("temperature", nn.initializers.ones, (self.num_heads,), jnp.float32)
        qv = Conv2d(2 * c, 1, use_bias=False, dtype=dt, name="qv")(x)
        qv = Conv2d(2 * c, 3, padding=1, groups=2 * c, use_bias=False, dtype=dt, name="qv_dwconv")(qv)
        k = Conv2d(c, 1, use_bias=False, dtype=dt, name="k")(prompt)
        k = Conv2d(c, 3, padding=1, groups=c, use_bias=False, dtype=dt, name="k_dwconv")(k)
        q, v = jnp.split(qv, 2, axis=-1)
        q, k, v = (split_heads(t.reshape(b, h * w, c), self.num_heads).swapaxes(-1, -2) for t in (q, k, v))
        out = dot_product_attention(l2_normalize(q), l2_normalize(k), v, temperature[:, None, None])
        out = merge_heads(out.swapaxes(-1, -2)).reshape(b, h, w, c)
        return Conv2d(c, 1, use_bias=False, dtype=dt, name="project_out")(out)


def prompt_channels(dim: int, stage: int) -> int:
    """The official int(dim // 10 * stage)."""
    return int(dim // 10 * stage)


class GDM(nn.Module):
    """One gradient step x - r * phi^T(phi(x, prompt(v)) - y) (the official `GDM`)."""

    de_dim: int
    stage: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, img, degradation):
        b, h, w, dim = x.shape
        promptdim, size = prompt_channels(dim, self.stage), int(96 // self.stage)
        r = self.param("r", nn.initializers.ones, (1,), jnp.float32)
        weights = jax.nn.softmax(Linear(self.de_dim, name="linear")(degradation.astype(jnp.float32)), axis=-1)
        # Official layout (1, de_dim, C, S, S), torch.rand init.
        prompts = self.param("prompt_param", nn.initializers.uniform(1.0),
                             (1, self.de_dim, promptdim, size, size), jnp.float32)
        prompt = jnp.einsum("bd,dchw->bhwc", weights, prompts[0])
        prompt = interpolate_bilinear(prompt, size=(h, w)).astype(self.dtype)
        residual = CrossAttention(2, self.dtype, name="phi")(x, prompt) - img
        return x - r.astype(self.dtype) * MDTA(2, dtype=self.dtype, name="phit")(residual)


class Denoiser(nn.Module):
    """The official `num_Transformer_Block`: `num_blocks` Restormer blocks under `blocks`."""

    num_blocks: int
    num_heads: int
    ffn_expansion_factor: float
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        for i in range(self.num_blocks):
            x = TransformerBlock(self.num_heads, self.ffn_expansion_factor, dtype=self.dtype, name=f"blocks_{i}")(x)
        return x


class UnfoldingStage(nn.Module):
    """`DUN_BaseBlock`: a GDM step then the denoiser; the image stream passes through unchanged."""

    de_dim: int
    stage: int
    num_blocks: int
    num_heads: int
    ffn_expansion_factor: float
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, img, degradation):
        x = GDM(self.de_dim, self.stage, self.dtype, name="gradient_descent")(x, img, degradation)
        return Denoiser(self.num_blocks, self.num_heads, self.ffn_expansion_factor, self.dtype, name="denoiser")(x)


class VLUNet(nn.Module):
    """The official `VLUNet`; inputs: NHWC image and the (N, 512) degradation vector."""

    de_dim: int = 7
    inp_channels: int = 3
    out_channels: int = 3
    dim: int = 48
    num_blocks: Sequence[int] = (4, 6, 6, 8)
    num_refinement_blocks: int = 4
    heads: Sequence[int] = (1, 2, 4, 8)
    ffn_expansion_factor: float = 2.66
    use_bias: bool = False  # the 1x1 channel reductions and the output conv only
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, inp, degradation, train: bool = False):
        if inp.ndim != 4 or inp.shape[-1] != self.inp_channels:
            raise ValueError(f"VLUNet expects NHWC input with {self.inp_channels} channels, got shape {inp.shape}")
        if inp.shape[1] % 8 or inp.shape[2] % 8:
            raise ValueError(f"VLUNet needs H and W divisible by 8, got {inp.shape[1]}x{inp.shape[2]}; "
                             "pad the input (registry pad_multiple=8)")
        if degradation.shape != (inp.shape[0], DEGRADATION_DIM):
            raise ValueError(f"degradation vector must be (N, {DEGRADATION_DIM}), got {degradation.shape}")
        dt, dim, nb, hd = self.dtype, self.dim, self.num_blocks, self.heads
        inp = inp.astype(dt)

        def unfold(name, stage, level, x, img, blocks=None):
            return UnfoldingStage(self.de_dim, stage, nb[level] if blocks is None else blocks, hd[level],
                                  self.ffn_expansion_factor, dt, name=name)(x, img, degradation)

        def reduce(x, features, name):
            return Conv2d(features, 1, use_bias=self.use_bias, dtype=dt, name=name)(x)

        enc1 = unfold("encoder_level1", 1, 0, OverlapPatchEmbed(dim, dtype=dt, name="patch_embed")(inp),
                      img1 := OverlapPatchEmbed(dim, dtype=dt, name="patch_embed_i")(inp))
        # The official forward downsamples the level-1 image stream with `down1_2`, the feature
        # downsampler; `down1_2_i` holds parameters its forward never uses (kept for the state dict).
        down1_2 = Downsample(dt, name="down1_2")
        Downsample(dt, name="down1_2_i")(img1)
        img2 = down1_2(img1)
        enc2 = unfold("encoder_level2", 2, 1, down1_2(enc1), img2)
        img3 = Downsample(dt, name="down2_3_i")(img2)
        enc3 = unfold("encoder_level3", 3, 2, Downsample(dt, name="down2_3")(enc2), img3)
        img4 = Downsample(dt, name="down3_4_i")(img3)
        latent = unfold("latent", 4, 3, Downsample(dt, name="down3_4")(enc3), img4)

        x = reduce(jnp.concatenate([Upsample(dt, name="up4_3")(latent), enc3], -1), 4 * dim, "reduce_chan_level3")
        y = reduce(jnp.concatenate([Upsample(dt, name="up4_3_i")(img4), img3], -1), 4 * dim,
                   "reduce_chan_level3_img")
        x = unfold("decoder_level3", 3, 2, x, y)
        x = reduce(jnp.concatenate([Upsample(dt, name="up3_2")(x), enc2], -1), 2 * dim, "reduce_chan_level2")
        y = reduce(jnp.concatenate([Upsample(dt, name="up3_2_i")(y), img2], -1), 2 * dim, "reduce_chan_level2_img")
        x = unfold("decoder_level2", 2, 1, x, y)
        x = jnp.concatenate([Upsample(dt, name="up2_1")(x), enc1], -1)
        y = jnp.concatenate([Upsample(dt, name="up2_1_i")(y), img1], -1)
        x = unfold("decoder_level1", 1, 0, x, y)
        x = unfold("refinement", 1, 0, x, y, blocks=self.num_refinement_blocks)
        out = Conv2d(self.out_channels, 3, padding=1, use_bias=self.use_bias, dtype=dt, name="output")(x) + inp
        return out.astype(jnp.float32)


ADAPTER_ACTIVATIONS = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "leaky_relu": lambda x: jax.nn.leaky_relu(x, 0.01),
}


def adapter_mlp(x, act: str = "gelu"):
    """The official adapter `nn.Sequential`: (Linear, LayerNorm) x 3 on the 512-d CLIP feature with an
    activation between, as layers `adapter_0, _1, _3, _4, _6, _7` of the calling compact module. net/clip.py
    (train.py, test.py) has GELU, the fine-tuning notebook LeakyReLU; neither has parameters."""
    for i in range(3):
        if i:
            x = ADAPTER_ACTIVATIONS[act](x)
        x = Linear(DEGRADATION_DIM, name=f"adapter_{3 * i}")(x)
        x = LayerNorm(1e-5, name=f"adapter_{3 * i + 1}")(x)
    return x


class _ImageTower(nn.Module):
    """An open_clip CLIP's `visual` (the official `clip_model`, of which only the image tower runs here)."""

    patch_size: int
    width: int
    layers: int
    heads: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, image):
        return OpenCLIPVisual(DEGRADATION_DIM, self.patch_size, self.width, self.layers, self.heads,
                              dtype=self.dtype, name="visual")(image)


class CLIPAdaptedImageEncoder(nn.Module):
    """The official `CLIP_Adapted_ImageEncoder`: adapter(clip_model.encode_image(x)) on a CLIP-preprocessed image."""

    patch_size: int = 32
    width: int = 768
    layers: int = 12
    heads: int = 12
    adapter_act: str = "gelu"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, clip_input):
        features = _ImageTower(self.patch_size, self.width, self.layers, self.heads, self.dtype,
                               name="clip_model")(clip_input)
        return adapter_mlp(features, self.adapter_act)


class DegradationExtractor(nn.Module):
    """[0, 1] NHWC image -> (N, 512) degradation vector: CLIP preprocessing (utils/dataset_utils_clip.py's
    `transform_clip`), then `DA_adapter.get_image_features` (module names kept: `ad_imageEncoder`)."""

    image_size: int = 224
    patch_size: int = 32
    width: int = 768
    layers: int = 12
    heads: int = 12
    adapter_act: str = "gelu"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, image):
        encoder = CLIPAdaptedImageEncoder(self.patch_size, self.width, self.layers, self.heads, self.adapter_act,
                                          self.dtype, name="ad_imageEncoder")
        return encoder(preprocess(image, self.image_size))


# CLIP_degradation_extractor.ipynb's NHRBL_text (NHR_text: the first five), in jaxir's task order (TASK_IDS:
# rain 3, haze 4, as utils/clip_dataset.py labels them by list position), and their open_clip 'ViT-B-32'
# tokens (start 49406 ... end 49407; tests/test_vlu_net_clip.py checks them against open_clip's tokenizer).
DESCRIPTIONS = ("image with noise", "image with many noise", "image with large amount of noise",
                "image with rain", "image with haze", "image with blur", "image with low light")
DESCRIPTION_TOKENS = ((49406, 2867, 593, 9307, 49407), (49406, 2867, 593, 1346, 9307, 49407),
                      (49406, 2867, 593, 3638, 6403, 539, 9307, 49407), (49406, 2867, 593, 2443, 49407),
                      (49406, 2867, 593, 22785, 49407), (49406, 2867, 593, 27976, 49407),
                      (49406, 2867, 593, 1042, 1395, 49407))


class _TextTower(nn.Module):
    """An open_clip CLIP's text side (`token_embedding` ... `ln_final`, `text_projection`)."""

    vocab_size: int = 49408
    context_length: int = 77
    width: int = 512
    heads: int = 8
    layers: int = 12
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, ids):
        _, pooled = CLIPTextModel(self.vocab_size, self.width, 4 * self.width, self.layers, self.heads,
                                  self.context_length, "gelu", 1e-5, eos_token_id=2, dtype=self.dtype, packed=True,
                                  name="text")(ids)
        proj = self.param("text_projection", nn.initializers.normal(self.width ** -0.5),
                          (self.width, DEGRADATION_DIM), jnp.float32)
        return pooled @ proj


class CLIPAdaptedTextEncoder(nn.Module):
    """The official `CLIP_Adapted_TextEncoder`: adapter(clip_model.encode_text(ids))."""

    vocab_size: int = 49408
    context_length: int = 77
    width: int = 512
    heads: int = 8
    layers: int = 12
    adapter_act: str = "leaky_relu"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, ids):
        features = _TextTower(self.vocab_size, self.context_length, self.width, self.heads, self.layers, self.dtype,
                              name="clip_model")(ids)
        return adapter_mlp(features, self.adapter_act)


def description_ids(num_tasks: int, context_length: int = 77) -> np.ndarray:
    ids = np.zeros((num_tasks, context_length), np.int32)
    for i, tokens in enumerate(DESCRIPTION_TOKENS[:num_tasks]):
        ids[i, :len(tokens)] = tokens
    return ids


class DegradationAligner(nn.Module):
    """The fine-tuning notebook's `DA_adapter` forward: image -> logits_per_image = adapted image features @
    adapted text features of the first `num_tasks` descriptions, transposed (no normalisation, no
    temperature), trained with cross-entropy on the task label. `ad_imageEncoder` is laid out as
    VLUNetCLIP's `model_degradation.ad_imageEncoder`."""

    num_tasks: int = 7
    clip_image_size: int = 224
    clip_patch_size: int = 32
    clip_width: int = 768
    clip_layers: int = 12
    clip_heads: int = 12
    vocab_size: int = 49408
    context_length: int = 77
    text_width: int = 512
    text_heads: int = 8
    text_layers: int = 12
    adapter_act: str = "leaky_relu"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, image, train: bool = False):
        image_features = CLIPAdaptedImageEncoder(self.clip_patch_size, self.clip_width, self.clip_layers,
                                                 self.clip_heads, self.adapter_act, self.dtype,
                                                 name="ad_imageEncoder")(preprocess(image, self.clip_image_size))
        ids = jnp.asarray(description_ids(self.num_tasks, self.context_length))
        text_features = CLIPAdaptedTextEncoder(self.vocab_size, self.context_length, self.text_width, self.text_heads,
                                               self.text_layers, self.adapter_act, self.dtype,
                                               name="ad_textEncoder")(ids)
        return image_features @ text_features.T


EXTRACTOR = "model_degradation"


class VLUNetCLIP(nn.Module):
    """VLU-Net with its degradation extractor: NHWC image -> restoration (train.py's `DAdunModel.forward`).

    The extractor's output is a constant of the restoration (stop_gradient): the official CLIP and adapter
    are frozen (requires_grad False); the training method keeps their parameters fixed too."""

    de_dim: int = 7
    inp_channels: int = 3
    out_channels: int = 3
    dim: int = 48
    num_blocks: Sequence[int] = (4, 6, 6, 8)
    num_refinement_blocks: int = 4
    heads: Sequence[int] = (1, 2, 4, 8)
    ffn_expansion_factor: float = 2.66
    use_bias: bool = False
    clip_image_size: int = 224
    clip_patch_size: int = 32
    clip_width: int = 768
    clip_layers: int = 12
    clip_heads: int = 12
    adapter_act: str = "gelu"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, inp, train: bool = False):
        vector = DegradationExtractor(self.clip_image_size, self.clip_patch_size, self.clip_width, self.clip_layers,
                                      self.clip_heads, self.adapter_act, self.dtype, name=EXTRACTOR)(inp)
        vector = jax.lax.stop_gradient(vector)
        net = VLUNet(self.de_dim, self.inp_channels, self.out_channels, self.dim, tuple(self.num_blocks),
                     self.num_refinement_blocks, tuple(self.heads), self.ffn_expansion_factor, self.use_bias,
                     self.dtype, name="net")
        return net(inp, vector, train=train)


# The LightningModule's state dict holds the whole DA_adapter: the text side and the image side's unused
# text tower (clip_model's non-visual keys) are not part of the restoration.
LIGHTNING_HOOKS_IGNORED = (r"^model_degradation\.ad_textEncoder\.",
                           r"^model_degradation\.ad_imageEncoder\.clip_model\.(?!visual\.)")


def _vlu_kwargs(official: dict) -> dict:
    kwargs = dict(official)
    if "bias" in kwargs:
        kwargs["use_bias"] = bool(kwargs.pop("bias"))
    # The official class accepts these but its blocks always use WithBias norms and never read `decoder`.
    for key in ("LayerNorm_type", "decoder"):
        kwargs.pop(key, None)
    for key in ("num_blocks", "heads"):
        if key in kwargs:
            kwargs[key] = tuple(int(v) for v in kwargs[key])
    return kwargs


registry.register_model(registry.ModelEntry(
    name="vlu_net",
    builder=lambda **kw: VLUNet(**_vlu_kwargs(kw)),
    official=(("xianggkl/VLU-Net", "VLUNet"),),
    translate_kwargs=_vlu_kwargs,
    pad_multiple=8,
    min_size=8,
    official_file="net/Final.py",
    # The second input is the (N, 512) CLIP degradation vector.
    example_input_shapes=lambda model, shapes: [shapes[0], (shapes[0][0], DEGRADATION_DIM)],
    description="VLU-Net (CVPR 2025): unfolding with a CLIP degradation prior; inputs image + 512-d vector.",
))


registry.register_model(registry.ModelEntry(
    name="vlu_net_clip",
    builder=lambda **kw: VLUNetCLIP(**_vlu_kwargs(kw)),
    translate_kwargs=_vlu_kwargs,
    convert_hooks=ConvertHooks(renames=OPEN_CLIP_RENAMES, ignored=LIGHTNING_HOOKS_IGNORED + OPEN_CLIP_IGNORED),
    pad_multiple=8,
    min_size=8,
    official_file="train.py",
    description="VLU-Net with its frozen CLIP ViT-B/32 + adapter degradation extractor: image in, restoration out.",
))
