"""VLU-Net's training recipe (xianggkl/VLU-Net train.py): the restoration network learns while its CLIP
degradation extractor stays frozen.

The model trained is `vlu_net_clip` (jaxir.models.vlu_net.VLUNetCLIP), whose forward computes the 512-d
degradation vector from the degraded input itself, so training, `jaxir eval` and `jaxir restore` call it
alike with one image. This method
  - keeps the extractor's parameters (`model_degradation`: open_clip ViT-B/32 image tower + adapter) out
    of the optimizer (train.py: `requires_grad = False` for the CLIP model and, with `set_frozen`, the
    adapters), weight decay included;
  - fills them, in a fresh run, from an open_clip state dict (`clip`: laion2b_s34b_b79k's
    `open_clip_pytorch_model.bin`, as `open_clip.create_model_and_transforms('ViT-B-32',
    pretrained='laion2b_s34b_b79k')` downloads) and the fine-tuned adapter (`adapter`: the official
    `pretrained_ckpt/clip_tuned.pth`, whose 'learnable_params' hold `ad_imageEncoder.adapter.*`; or any
    state dict with those keys). Without files the extractor keeps its random initialisation (tests).
"""
from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxir.methods import TrainMethod

EXTRACTOR = "model_degradation"


def extractor_state_dict(clip: str, adapter: str) -> dict[str, np.ndarray]:
    """open_clip state dict + adapter state dict -> one state dict keyed as `DA_adapter` (`ad_imageEncoder.…`)."""
    from jaxir.convert.torch_io import load_checkpoint, load_state_dict, select_state_dict

    state = {f"ad_imageEncoder.clip_model.{k}": v for k, v in load_state_dict(clip).items()}
    checkpoint = load_checkpoint(adapter)
    key = "learnable_params" if isinstance(checkpoint, dict) and "learnable_params" in checkpoint else None
    for k, v in select_state_dict(checkpoint, key, source=str(adapter)).items():
        state[k[len("model_degradation."):] if k.startswith("model_degradation.") else k] = v
    return state


def convert_extractor(state_dict, model) -> dict:
    """A `DA_adapter`-keyed state dict -> the `model_degradation` variables of VLUNetCLIP `model`."""
    import jax.numpy as jnp

    from jaxir.convert.state_dict import ConvertHooks, convert_state_dict
    from jaxir.models.clip import OPEN_CLIP_IGNORED, OPEN_CLIP_RENAMES
    from jaxir.models.vlu_net import DegradationExtractor

    extractor = DegradationExtractor(model.clip_image_size, model.clip_patch_size, model.clip_width,
                                     model.clip_layers, model.clip_heads, model.adapter_act)
    hooks = ConvertHooks(renames=OPEN_CLIP_RENAMES, ignored=OPEN_CLIP_IGNORED + (
        r"^ad_textEncoder\.", r"^ad_imageEncoder\.clip_model\.(?!visual\.)"))
    size = model.clip_image_size
    return convert_state_dict(state_dict, extractor, jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32),
                              hooks=hooks)


class FrozenCLIPExtractor(TrainMethod):
    """Supervised training of `vlu_net_clip` with its degradation extractor frozen (and loaded from files)."""

    name = "vlu"

    def __init__(self, clip: str = "", adapter: str = ""):
        if bool(clip) != bool(adapter):
            raise ValueError("method vlu: give both `clip` (open_clip ViT-B/32 weights) and `adapter` "
                             "(the fine-tuned adapter, e.g. clip_tuned.pth), or neither")
        self.clip, self.adapter = clip, adapter
        self.model = None

    def wrap_model(self, model: Any, entry: Any) -> Any:
        if not hasattr(model, "clip_image_size"):
            raise ValueError(f"method vlu trains vlu_net_clip (VLU-Net with its extractor), not {entry.name!r}")
        self.model = model
        return model

    def trainable(self, params: Any) -> Any:
        return {k: jax.tree.map(lambda _: k != EXTRACTOR, v) for k, v in params.items()}

    def prepare(self, params: Any) -> Any:
        if not self.clip:
            return params
        if self.model is None:
            raise ValueError("method vlu: prepare before wrap_model")
        target = params[EXTRACTOR]

        def load():
            loaded = convert_extractor(extractor_state_dict(self.clip, self.adapter), self.model)["params"]
            return jax.tree.map(lambda want, got: np.asarray(got, want.dtype), target, loaded)

        # Read on the host when the initial state is built (it is jitted): a callback, not 88M constants.
        shapes = jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), target)
        return {**params, EXTRACTOR: jax.pure_callback(load, shapes)}
