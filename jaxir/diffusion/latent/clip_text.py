"""CLIP text encoder (Radford et al., ICML 2021) as Stable Diffusion uses it: transformers'
`CLIPTextModel` (`models/clip/modeling_clip.py`), parameter names kept (`text_model.encoder.layers.0.
self_attn.q_proj.weight` ...) so its `.safetensors` / diffusers `text_encoder/` folders convert by the
generic rule. ViT-L/14's text tower: 12 layers, width 768, 12 heads, 77 positions, quick-GELU.

Token + position embedding; pre-LayerNorm blocks with causal multi-head self-attention and an MLP;
final LayerNorm. Returns (last_hidden_state, pooled), pooled being the state at the end-of-text token
(the highest id when `eos_token_id == 2`, transformers' legacy rule; else the first `eos_token_id`).
Tokenisation is transformers' `CLIPTokenizer` (`tokenize`).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxir.convert.state_dict import ConvertHooks
from jaxir.models.attention import merge_heads, split_heads
from jaxir.models.blocks import Dtype, LayerNorm, Linear

_ACTIVATIONS = {
    "quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
}


class CLIPAttention(nn.Module):
    heads: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        d = x.shape[-1]
        q, k, v = (split_heads(Linear(d, dtype=self.dtype, name=n)(x), self.heads)
                   for n in ("q_proj", "k_proj", "v_proj"))
        n = x.shape[1]
        causal = jnp.tril(jnp.ones((n, n), bool))
        scale = (d // self.heads) ** -0.5
        logits = jnp.einsum("bhnd,bhmd->bhnm", q, k, preferred_element_type=jnp.float32) * scale
        logits = jnp.where(causal, logits, jnp.finfo(jnp.float32).min)
        out = jnp.einsum("bhnm,bhmd->bhnd", jax.nn.softmax(logits, axis=-1).astype(v.dtype), v)
        return Linear(d, dtype=self.dtype, name="out_proj")(merge_heads(out))


class CLIPEncoderLayer(nn.Module):
    heads: int
    intermediate_size: int
    hidden_act: str = "quick_gelu"
    eps: float = 1e-5
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        dt = self.dtype
        x = x + CLIPAttention(self.heads, dt, name="self_attn")(LayerNorm(self.eps, dtype=dt, name="layer_norm1")(x))
        h = LayerNorm(self.eps, dtype=dt, name="layer_norm2")(x)
        return x + CLIPMLP(self.intermediate_size, self.hidden_act, dt, name="mlp")(h)


class CLIPMLP(nn.Module):
    intermediate_size: int
    hidden_act: str = "quick_gelu"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        h = _ACTIVATIONS[self.hidden_act](Linear(self.intermediate_size, dtype=self.dtype, name="fc1")(x))
        return Linear(x.shape[-1], dtype=self.dtype, name="fc2")(h)


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


class _Encoder(nn.Module):
    num_hidden_layers: int
    heads: int
    intermediate_size: int
    hidden_act: str
    eps: float
    dtype: Dtype

    @nn.compact
    def __call__(self, x):
        for i in range(self.num_hidden_layers):
            x = CLIPEncoderLayer(self.heads, self.intermediate_size, self.hidden_act, self.eps, self.dtype,
                                 name=f"layers_{i}")(x)
        return x


class _TextTransformer(nn.Module):
    config: dict
    dtype: Dtype

    @nn.compact
    def __call__(self, ids):
        c = self.config
        x = _Embeddings(c["vocab_size"], c["hidden_size"], c["max_position_embeddings"], name="embeddings")(ids)
        x = _Encoder(c["num_hidden_layers"], c["num_attention_heads"], c["intermediate_size"], c["hidden_act"],
                     c["layer_norm_eps"], self.dtype, name="encoder")(x.astype(self.dtype))
        return LayerNorm(c["layer_norm_eps"], dtype=self.dtype, name="final_layer_norm")(x).astype(jnp.float32)


VIT_L14 = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
               num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5,
               eos_token_id=2)


class CLIPTextModel(nn.Module):
    """ids (N, L) int -> (last_hidden_state (N, L, D), pooled (N, D)). Defaults: ViT-L/14 (123,060,480 params)."""

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

    @nn.compact
    def __call__(self, input_ids, train: bool = False):
        config = dict(vocab_size=self.vocab_size, hidden_size=self.hidden_size,
                      intermediate_size=self.intermediate_size, num_hidden_layers=self.num_hidden_layers,
                      num_attention_heads=self.num_attention_heads,
                      max_position_embeddings=self.max_position_embeddings, hidden_act=self.hidden_act,
                      layer_norm_eps=self.layer_norm_eps)
        hidden = _TextTransformer(config, self.dtype, name="text_model")(input_ids)
        if self.eos_token_id == 2:
            eos = jnp.argmax(input_ids, axis=-1)
        else:
            eos = jnp.argmax((input_ids == self.eos_token_id).astype(jnp.int32), axis=-1)
        pooled = hidden[jnp.arange(hidden.shape[0]), eos]
        return hidden, pooled


# transformers keeps `position_ids` as a buffer in some versions (the forward recomputes it); checkpoints
# name keys `text_model.…`, while transformers 5's in-memory state dict drops that prefix.
CONVERT_HOOKS = ConvertHooks(renames=((r"^(?!text_model\.)", "text_model."),),
                             ignored=(r"embeddings\.position_ids$",))


def transformers_kwargs(config: dict) -> dict:
    """A transformers CLIPTextConfig dict -> CLIPTextModel fields."""
    keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "max_position_embeddings", "hidden_act", "layer_norm_eps", "eos_token_id")
    return {k: config[k] for k in keys if k in config}


def tokenize(tokenizer, prompts: list[str], length: int = 77) -> np.ndarray:
    """transformers CLIPTokenizer -> int32 ids padded/truncated to `length` (as SD's FrozenCLIPEmbedder)."""
    out = tokenizer(list(prompts), padding="max_length", max_length=length, truncation=True, return_tensors="np")
    return np.asarray(out["input_ids"], np.int32)


def load_transformers(folder):
    """A transformers `text_encoder/` folder (config.json + model.safetensors) -> (model, variables)."""
    import json
    import pathlib

    from jaxir.convert.state_dict import convert_state_dict
    from jaxir.convert.torch_io import load_state_dict

    folder = pathlib.Path(folder)
    model = CLIPTextModel(**transformers_kwargs(json.loads((folder / "config.json").read_text())))
    weights = next((folder / n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).is_file()), None)
    if weights is None:
        raise FileNotFoundError(f"{folder}: no model.safetensors/pytorch_model.bin")
    variables = convert_state_dict(load_state_dict(weights), model, jnp.zeros((1, 4), jnp.int32), hooks=CONVERT_HOOKS)
    return model, variables
