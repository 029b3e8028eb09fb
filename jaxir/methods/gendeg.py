"""GenDeg's training (sudraj2002/GenDeg `configs/train.yaml`, `ddpm_edit.py`) of `jaxir.diffusion.latent.gendeg.
GenDegLDM` in the shared loop.

- Only the U-Net and the μ/σ conditioner (`stats_proj`, `cc_projection`) are optimised (the official
  `configure_optimizers`); the VAE and the CLIP text encoder are frozen.
- The prompt of each record is picked by its 'task' label (records without one take prompt 0): the method
  tokenizes `prompts` once on the host, and the forward gets the ids and the empty prompt's ids.
  GenDeg's prompts are BLIP-2 captions + " in <adjective> conditions"; without per-image captions the
  prompts here are one per degradation (`gendeg.prompt`).
- A fresh run starts `cc_projection` as the identity on the text part (the official init).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxir.methods import TrainMethod


class GenDegTraining(TrainMethod):
    name = "gendeg"

    def __init__(self, tokenizer: str, prompts: Sequence[str], context_length: int = 77,
                 trainable_parts: Sequence[str] = ("unet", "conditioner")):
        if not prompts:
            raise ValueError("method gendeg: give at least one prompt (one per degradation label)")
        self.tokenizer, self.prompts = str(tokenizer), [str(p) for p in prompts]
        self.context_length, self.trainable_parts = int(context_length), tuple(trainable_parts)
        self._ids: np.ndarray | None = None

    def prompt_ids(self) -> np.ndarray:
        """(len(prompts) + 1, context_length) int32: the prompts, then the empty prompt. Tokenized on first use,
        so a config builds without the tokenizer files."""
        if self._ids is None:
            from transformers import CLIPTokenizer

            from jaxir.diffusion.latent import clip_text

            tokenizer = CLIPTokenizer.from_pretrained(self.tokenizer)
            self._ids = clip_text.tokenize(tokenizer, [*self.prompts, ""], self.context_length)
        return self._ids

    def prepare(self, params: Any) -> Any:
        from jaxir.diffusion.latent.gendeg import identity_text_projection

        return identity_text_projection(params)

    def trainable(self, params: Any) -> Any:
        return {name: jax.tree.map(lambda _, keep=name in self.trainable_parts: keep, tree)
                for name, tree in params.items()}

    def batch_kwargs(self, batch: Mapping[str, jax.Array]) -> dict:
        ids = jnp.asarray(self.prompt_ids())
        n = batch["target"].shape[0]
        labels = batch["task"].astype(jnp.int32) if "task" in batch else jnp.zeros((n,), jnp.int32)
        return {"prompt_ids": ids[:-1][labels], "null_ids": ids[-1:]}
