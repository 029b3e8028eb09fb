"""CLIP (Radford et al., ICML 2021): the transformer blocks, transformers' text encoder, and open_clip's model.

Blocks and `CLIPTextModel` follow transformers' `models/clip/modeling_clip.py` (parameter names kept:
`text_model.encoder.layers.0.self_attn.q_proj.weight` ...); Stable Diffusion's text encoder
(`jaxir.diffusion.latent.clip_text`) is this model. `OpenCLIP` is mlfoundations/open_clip's `CLIP`
(`src/open_clip/model.py`, `transformer.py`: `VisionTransformer`, `TextTransformer`, v3.3.0) built from the
same blocks: a ViT image tower (patch conv, class token, positions, ln_pre, pre-LN blocks without a mask,
ln_post on the class token, projection) and a text tower (token + position embeddings, causal blocks,
ln_final, the end-of-text state, projection). `convert_open_clip` reads an open_clip state dict (the
packed `attn.in_proj_weight` is one Linear split into q, k, v). Defaults: ViT-B/32 (151,277,313 params).
"""
from __future__ import annotations

from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxir.models.attention import merge_heads, split_heads
from jaxir.models.blocks import Conv2d, Dtype, LayerNorm, Linear

_ACTIVATIONS = {
    "quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
}


class CLIPAttention(nn.Module):
    """Multi-head self-attention; `causal` masks later positions (text), `packed` holds q, k, v in one
    projection `in_proj` (torch's nn.MultiheadAttention, as open_clip) instead of q_proj/k_proj/v_proj."""

    heads: int
    dtype: Dtype = jnp.float32
    causal: bool = True
    packed: bool = False

    @nn.compact
    def __call__(self, x):
        d = x.shape[-1]
        if self.packed:
            qkv = jnp.split(Linear(3 * d, dtype=self.dtype, name="in_proj")(x), 3, axis=-1)
        else:
            qkv = [Linear(d, dtype=self.dtype, name=n)(x) for n in ("q_proj", "k_proj", "v_proj")]
        q, k, v = (split_heads(t, self.heads) for t in qkv)
        scale = (d // self.heads) ** -0.5
        logits = jnp.einsum("bhnd,bhmd->bhnm", q, k, preferred_element_type=jnp.float32) * scale
        if self.causal:
            n = x.shape[1]
            logits = jnp.where(jnp.tril(jnp.ones((n, n), bool)), logits, jnp.finfo(jnp.float32).min)
        out = jnp.einsum("bhnm,bhmd->bhnd", jax.nn.softmax(logits, axis=-1).astype(v.dtype), v)
        return Linear(d, dtype=self.dtype, name="out_proj")(merge_heads(out))


class CLIPMLP(nn.Module):
    intermediate_size: int
    hidden_act: str = "quick_gelu"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        h = _ACTIVATIONS[self.hidden_act](Linear(self.intermediate_size, dtype=self.dtype, name="fc1")(x))
        return Linear(x.shape[-1], dtype=self.dtype, name="fc2")(h)


class CLIPEncoderLayer(nn.Module):
    heads: int
    intermediate_size: int
    hidden_act: str = "quick_gelu"
    eps: float = 1e-5
    dtype: Dtype = jnp.float32
    causal: bool = True
    packed: bool = False

    @nn.compact
    def __call__(self, x):
        dt = self.dtype
        h = LayerNorm(self.eps, dtype=dt, name="layer_norm1")(x)
        x = x + CLIPAttention(self.heads, dt, self.causal, self.packed, name="self_attn")(h)
        h = LayerNorm(self.eps, dtype=dt, name="layer_norm2")(x)
        return x + CLIPMLP(self.intermediate_size, self.hidden_act, dt, name="mlp")(h)


class CLIPEncoder(nn.Module):
    """`num_hidden_layers` pre-LN blocks named `layers_i`."""

    num_hidden_layers: int
    heads: int
    intermediate_size: int
    hidden_act: str
    eps: float
    dtype: Dtype
    causal: bool = True
    packed: bool = False

    @nn.compact
    def __call__(self, x):
        for i in range(self.num_hidden_layers):
            x = CLIPEncoderLayer(self.heads, self.intermediate_size, self.hidden_act, self.eps, self.dtype,
                                 self.causal, self.packed, name=f"layers_{i}")(x)
        return x


class _Embeddings(nn.Module):
    vocab_size: int
    hidden_size: int
    max_position_embeddings: int

    @nn.compact
    def __call__(self, ids):
        tok = nn.Embed(self.vocab_size, self.hidden_size, name="token_embedding")(ids)
        pos = nn.Embed(self.max_position_embeddings, self.hidden_size, name="position_embedding")(
            jnp.arange(ids.shape[1]))
        return tok + pos[None]


class _TextTransformer(nn.Module):
    config: dict
    dtype: Dtype
    packed: bool = False

    @nn.compact
    def __call__(self, ids):
        c = self.config
        x = _Embeddings(c["vocab_size"], c["hidden_size"], c["max_position_embeddings"], name="embeddings")(ids)
        x = CLIPEncoder(c["num_hidden_layers"], c["num_attention_heads"], c["intermediate_size"], c["hidden_act"],
                        c["layer_norm_eps"], self.dtype, causal=True, packed=self.packed,
                        name="encoder")(x.astype(self.dtype))
        return LayerNorm(c["layer_norm_eps"], dtype=self.dtype, name="final_layer_norm")(x).astype(jnp.float32)


VIT_L14 = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
               num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5,
               eos_token_id=2)


class CLIPTextModel(nn.Module):
    """ids (N, L) int -> (last_hidden_state (N, L, D), pooled (N, D)). Defaults: ViT-L/14 (123,060,480 params).

    pooled is the state at the end-of-text token: the highest id when `eos_token_id == 2` (transformers'
    legacy rule, and open_clip's 'argmax' pooling), else the first `eos_token_id`.
    """

    vocab_size: int = VIT_L14["vocab_size"]
    hidden_size: int = VIT_L14["hidden_size"]
    intermediate_size: int = VIT_L14["intermediate_size"]
    num_hidden_layers: int = VIT_L14["num_hidden_layers"]
    num_attention_heads: int = VIT_L14["num_attention_heads"]
    max_position_embeddings: int = VIT_L14["max_position_embeddings"]
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    eos_token_id: int = 2
    dtype: Dtype = jnp.float32
    packed: bool = False

    @nn.compact
    def __call__(self, input_ids, train: bool = False):
        config = dict(vocab_size=self.vocab_size, hidden_size=self.hidden_size,
                      intermediate_size=self.intermediate_size, num_hidden_layers=self.num_hidden_layers,
                      num_attention_heads=self.num_attention_heads,
                      max_position_embeddings=self.max_position_embeddings, hidden_act=self.hidden_act,
                      layer_norm_eps=self.layer_norm_eps)
        hidden = _TextTransformer(config, self.dtype, self.packed, name="text_model")(input_ids)
        if self.eos_token_id == 2:
            eos = jnp.argmax(input_ids, axis=-1)
        else:
            eos = jnp.argmax((input_ids == self.eos_token_id).astype(jnp.int32), axis=-1)
        pooled = hidden[jnp.arange(hidden.shape[0]), eos]
        return hidden, pooled


# ---------------------------------------------------------------------------------------------
# open_clip

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

# open_clip's model_configs/ViT-B-32.json (nn.GELU, LayerNorm eps 1e-5).
VIT_B32 = dict(embed_dim=512, image_size=224, patch_size=32, vision_width=768, vision_layers=12,
               vision_heads=12, mlp_ratio=4.0, context_length=77, vocab_size=49408, text_width=512,
               text_heads=8, text_layers=12, act="gelu")


class OpenCLIPVisual(nn.Module):
    """open_clip `VisionTransformer` (class-token pooling): NHWC normalised image -> (N, embed_dim)."""

    embed_dim: int = 512
    patch_size: int = 32
    width: int = 768
    layers: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    act: str = "gelu"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, image):
        dt, w = self.dtype, self.width
        x = Conv2d(w, self.patch_size, stride=self.patch_size, use_bias=False, dtype=dt, name="conv1")(
            image.astype(dt))
        n, gh, gw, _ = x.shape
        x = x.reshape(n, gh * gw, w)
        scale = w ** -0.5
        cls = self.param("class_embedding", nn.initializers.normal(scale), (w,), jnp.float32)
        pos = self.param("positional_embedding", nn.initializers.normal(scale), (gh * gw + 1, w), jnp.float32)
        x = jnp.concatenate([jnp.broadcast_to(cls.astype(dt), (n, 1, w)), x], axis=1) + pos.astype(dt)
        x = LayerNorm(1e-5, dtype=dt, name="ln_pre")(x)
        x = CLIPEncoder(self.layers, self.heads, int(w * self.mlp_ratio), self.act, 1e-5, dt, causal=False,
                        packed=True, name="encoder")(x)
        pooled = LayerNorm(1e-5, dtype=dt, name="ln_post")(x[:, 0])
        proj = self.param("proj", nn.initializers.normal(scale), (w, self.embed_dim), jnp.float32)
        return (pooled @ proj.astype(dt)).astype(jnp.float32)


class OpenCLIP(nn.Module):
    """open_clip `CLIP` (ViT image tower, transformer text tower). `__call__(image, text)` returns both
    (unnormalised) features; `encode_image` / `encode_text` one tower each. Defaults: ViT-B/32."""

    embed_dim: int = VIT_B32["embed_dim"]
    patch_size: int = VIT_B32["patch_size"]
    vision_width: int = VIT_B32["vision_width"]
    vision_layers: int = VIT_B32["vision_layers"]
    vision_heads: int = VIT_B32["vision_heads"]
    mlp_ratio: float = VIT_B32["mlp_ratio"]
    context_length: int = VIT_B32["context_length"]
    vocab_size: int = VIT_B32["vocab_size"]
    text_width: int = VIT_B32["text_width"]
    text_heads: int = VIT_B32["text_heads"]
    text_layers: int = VIT_B32["text_layers"]
    act: str = VIT_B32["act"]
    dtype: Dtype = jnp.float32

    def setup(self):
        self.visual = OpenCLIPVisual(self.embed_dim, self.patch_size, self.vision_width, self.vision_layers,
                                     self.vision_heads, self.mlp_ratio, self.act, self.dtype)
        self.text = CLIPTextModel(self.vocab_size, self.text_width, int(self.text_width * self.mlp_ratio),
                                  self.text_layers, self.text_heads, self.context_length, self.act, 1e-5,
                                  eos_token_id=2, dtype=self.dtype, packed=True)
        self.text_projection = self.param("text_projection", nn.initializers.normal(self.text_width ** -0.5),
                                          (self.text_width, self.embed_dim), jnp.float32)
        self.logit_scale = self.param("logit_scale", nn.initializers.constant(np.log(1 / 0.07)), (), jnp.float32)

    def encode_image(self, image):
        """NHWC image already resized and normalised (`preprocess`) -> (N, embed_dim)."""
        return self.visual(image)

    def encode_text(self, ids):
        """(N, context_length) token ids (open_clip's tokenizer; end-of-text is the highest id) -> (N, embed_dim)."""
        _, pooled = self.text(ids)
        return pooled @ self.text_projection

    def __call__(self, image, ids, train: bool = False):
        return self.encode_image(image), self.encode_text(ids)


def preprocess(image, size: int = 224, mean=OPENAI_MEAN, std=OPENAI_STD):
    """NHWC [0, 1] -> CLIP input as open_clip's transform on a tensor: shorter side resized to `size` (bicubic,
    Keys a = -0.5, antialiased when shrinking: Resize(antialias=True)), centre crop, then (x - mean) / std."""
    n, h, w, c = image.shape
    # torchvision: the shorter side becomes `size`, the longer int(size * long / short)
    nh, nw = (size, int(size * w / h)) if h <= w else (int(size * h / w), size)
    if (nh, nw) != (h, w):
        image = jax.image.resize(image.astype(jnp.float32), (n, nh, nw, c), "bicubic", antialias=True)
    top, left = (nh - size) // 2, (nw - size) // 2
    image = image[:, top:top + size, left:left + size]
    return (image - jnp.asarray(mean, image.dtype)) / jnp.asarray(std, image.dtype)


# open_clip key -> this module's path: one regex set for both towers (the text tower's keys have no prefix).
OPEN_CLIP_RENAMES = (
    (r"(^|\.)visual\.transformer\.resblocks\.", r"\1visual.encoder.layers."),
    (r"^transformer\.resblocks\.", "text.text_model.encoder.layers."),
    (r"^token_embedding\.", "text.text_model.embeddings.token_embedding."),
    (r"^positional_embedding$", "text.text_model.embeddings.position_embedding.weight"),
    (r"^ln_final\.", "text.text_model.final_layer_norm."),
    (r"\.ln_1\.", ".layer_norm1."),
    (r"\.ln_2\.", ".layer_norm2."),
    (r"\.attn\.in_proj_(weight|bias)$", r".self_attn.in_proj.\1"),
    (r"\.attn\.out_proj\.", ".self_attn.out_proj."),
    (r"\.mlp\.c_fc\.", ".mlp.fc1."),
    (r"\.mlp\.c_proj\.", ".mlp.fc2."),
)
# The causal mask is a (non-persistent, in v3) buffer; the forward rebuilds it.
OPEN_CLIP_IGNORED = (r"(^|\.)attn_mask$",)


def open_clip_hooks(prefix: str = ""):
    """ConvertHooks for an open_clip state dict whose keys sit under `prefix` in the target model's tree
    (e.g. 'extractor.clip.' inside VLU-Net's extractor)."""
    from jaxir.convert.state_dict import ConvertHooks

    renames = tuple((p, r) for p, r in OPEN_CLIP_RENAMES)
    if prefix:
        renames = renames + ((r"^", prefix),)
    return ConvertHooks(renames=renames, ignored=OPEN_CLIP_IGNORED)


def open_clip_kwargs(config: Mapping) -> dict:
    """open_clip model config JSON ({'embed_dim', 'vision_cfg', 'text_cfg'}) -> OpenCLIP fields."""
    vision, text = config.get("vision_cfg", {}), config.get("text_cfg", {})
    if vision.get("timm_model_name") or text.get("hf_model_name") or isinstance(vision.get("layers"), (list, tuple)):
        raise ValueError("only open_clip's ViT image tower with its own text transformer is ported")
    kwargs = dict(embed_dim=config["embed_dim"], patch_size=vision.get("patch_size", 16),
                  vision_width=vision.get("width", 768), vision_layers=vision.get("layers", 12),
                  vision_heads=vision.get("width", 768) // vision.get("head_width", 64),
                  mlp_ratio=vision.get("mlp_ratio", 4.0), context_length=text.get("context_length", 77),
                  vocab_size=text.get("vocab_size", 49408), text_width=text.get("width", 512),
                  text_heads=text.get("heads", 8), text_layers=text.get("layers", 12),
                  act="quick_gelu" if config.get("quick_gelu") else "gelu")
    return kwargs


def convert_open_clip(state_dict: Mapping[str, np.ndarray], model: OpenCLIP, image_size: int = 224) -> dict:
    """An open_clip `CLIP` state dict -> variables of `model` (an OpenCLIP with the same config)."""
    from jaxir.convert.state_dict import convert_state_dict

    image = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
    ids = jax.ShapeDtypeStruct((1, model.context_length), jnp.int32)
    return convert_state_dict(state_dict, model, image, ids, hooks=open_clip_hooks())
