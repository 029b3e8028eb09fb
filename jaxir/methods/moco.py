"""AirNet's training method: MoCo contrastive degradation encoding, then joint restoration.

Li et al., "All-In-One Image Restoration for Unknown Corruption", CVPR 2022;
XLearning-SCU/2022-CVPR-AirNet train.py and net/moco.py:
- stage 'encoder' (the first `epochs_encoder` epochs): only the encoder is trained, with
  the InfoNCE loss CE(logits, 0) over [positive key, queue] (temperature 0.07);
- stage 'joint': L1(restored, clean) + 0.1 * InfoNCE (here: the configured loss terms
  on the restored image + `contrast_weight` * InfoNCE).
In both, the key encoder follows the query encoder by momentum m = 0.999 after every
step and is never touched by the optimizer; the model's forward pushes the batch's keys
into the queue (its `moco` collection).

The positive key of a query is another view of the same degraded image. The official
loader cuts a second random crop of the same degraded image; the loop's batch holds one
crop per image, so the key view here is that crop circularly shifted by a random offset
and randomly flipped (same degradation, rearranged content).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import traverse_util

from jaxir.methods import TrainMethod

STAGES = ("encoder", "joint")


def info_nce(logits: jax.Array) -> jax.Array:
    """nn.CrossEntropyLoss()(logits, zeros): the positive is column 0."""
    logits = logits.astype(jnp.float32)
    return jnp.mean(jax.nn.logsumexp(logits, axis=-1) - logits[:, 0])


def key_view(x: jax.Array, key: jax.Array) -> jax.Array:
    """Per image: a random circular shift and a random horizontal flip."""
    b, h, w, _ = x.shape
    shift_key, flip_key = jax.random.split(key)
    shifts = jax.random.randint(shift_key, (b, 2), 0, jnp.asarray([h, w]))
    flips = jax.random.bernoulli(flip_key, 0.5, (b,))

    def one(img, shift, flip):
        img = jnp.roll(img, (shift[0], shift[1]), axis=(0, 1))
        return jnp.where(flip, img[:, ::-1], img)

    return jax.vmap(one)(x, shifts, flips)


class AirNetMoCo(TrainMethod):
    name = "moco"

    def __init__(self, stage: str = "joint", momentum: float = 0.999, contrast_weight: float = 0.1,
                 encoder_path: Sequence[str] = ("E", "E")):
        if stage not in STAGES:
            raise ValueError(f"moco stage must be one of {STAGES}, got {stage!r}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"moco momentum must be in [0, 1], got {momentum}")
        self.stage, self.momentum, self.contrast_weight = stage, float(momentum), float(contrast_weight)
        self.encoder_path = tuple(encoder_path)

    def _moco(self, params):
        node = params
        for part in self.encoder_path:
            node = node[part]
        return node

    def _replace_key_encoder(self, params, encoder_k):
        moco = dict(self._moco(params))
        moco["encoder_k"] = encoder_k
        updated = moco
        for depth in range(len(self.encoder_path) - 1, -1, -1):
            parent = params
            for part in self.encoder_path[:depth]:
                parent = parent[part]
            updated = {**parent, self.encoder_path[depth]: updated}
        return updated

    def prepare(self, params):
        # The official MoCo starts the key encoder as a copy of the query encoder.
        return self._replace_key_encoder(params, jax.tree.map(jnp.copy, self._moco(params)["encoder_q"]))

    def trainable(self, params):
        flat = traverse_util.flatten_dict(params)
        prefix = (*self.encoder_path, "encoder_k")
        return traverse_util.unflatten_dict({path: path[:len(prefix)] != prefix for path in flat})

    def model_kwargs(self, inputs, key):
        return {"x_key": key_view(inputs, key), "restore": self.stage == "joint"}

    def loss(self, outputs: Any, target: jax.Array, batch: Mapping[str, jax.Array], base_loss: Callable,
             method_state: Any, key: jax.Array):
        restored, logits = outputs
        contrast = info_nce(logits)
        if self.stage == "encoder":
            return contrast, {"contrast": contrast}
        total, terms = base_loss(restored, target)
        return total + self.contrast_weight * contrast, {**terms, "contrast": contrast}

    def post_update(self, params):
        moco = self._moco(params)
        m = self.momentum
        encoder_k = jax.tree.map(lambda k, q: k * m + q * (1.0 - m), moco["encoder_k"], moco["encoder_q"])
        return self._replace_key_encoder(params, encoder_k)
