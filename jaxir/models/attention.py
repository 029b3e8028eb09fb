"""Multi-head attention pieces shared by the transformer restorers (Restormer, Stripformer, ...).

The official models differ in what a token is (Restormer: a channel, across all
pixels; Stripformer: a pixel of a strip, or a whole strip), but all compute
softmax(scale * Q K^T) V per head with heads cut from the feature axis; these
helpers do that on (batch, tokens, features) arrays.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxir.models.blocks import PRECISION


def split_heads(x: jax.Array, num_heads: int) -> jax.Array:
    """(B, N, D) -> (B, heads, N, D / heads): head h takes features [h*D/heads, (h+1)*D/heads)."""
    b, n, d = x.shape
    if d % num_heads:
        raise ValueError(f"attention features {d} are not divisible by {num_heads} heads")
    return x.reshape(b, n, num_heads, d // num_heads).transpose(0, 2, 1, 3)


def merge_heads(x: jax.Array) -> jax.Array:
    """(B, heads, N, d) -> (B, N, heads * d), the inverse of `split_heads`."""
    b, h, n, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, n, h * d)


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
    """`torch.nn.functional.normalize`: x / max(||x||_2, eps), the norm taken in float32."""
    norm = jnp.sqrt(jnp.sum(jnp.square(x.astype(jnp.float32)), axis=axis, keepdims=True))
    return (x.astype(jnp.float32) / jnp.maximum(norm, eps)).astype(x.dtype)


def dot_product_attention(q: jax.Array, k: jax.Array, v: jax.Array, scale) -> jax.Array:
    """softmax(scale * q k^T) v over the last two axes of (..., N, d) arrays.

    `scale` is a number or an array broadcasting against the (..., N, N) logits
    (Restormer's learned per-head temperature). Logits and softmax are float32 so
    bfloat16 compute stays stable.
    """
    logits = jnp.einsum("...nd,...md->...nm", q, k, precision=PRECISION, preferred_element_type=jnp.float32)
    weights = jax.nn.softmax(logits * scale, axis=-1).astype(v.dtype)
    return jnp.einsum("...nm,...md->...nd", weights, v, precision=PRECISION)
