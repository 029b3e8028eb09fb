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

import jax.numpy as jnp
import numpy as np

from jaxir.convert.state_dict import ConvertHooks
# The blocks and the text model live with the other CLIP towers (open_clip's, for VLU-Net) in jaxir.models.
from jaxir.models.clip import (CLIPAttention, CLIPEncoderLayer, CLIPMLP, CLIPTextModel,  # noqa: F401
                               VIT_L14)


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
