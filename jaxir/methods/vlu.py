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
Method 'vlu_align' (`CLIPAdapterAlignment`) is the adapter fine-tuning of CLIP_degradation_extractor.ipynb:
the image and text adapters learn on a frozen CLIP to pick each degraded image's task description.
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


def convert_clip_towers(clip_state_dict, aligner) -> dict:
    """An open_clip ViT state dict -> {'ad_imageEncoder': {'clip_model': ...}, 'ad_textEncoder': {'clip_model': ...}}
    parameters of a DegradationAligner (adapters left out)."""
    import jax.numpy as jnp

    from jaxir.convert.state_dict import ConvertHooks, convert_state_dict
    from jaxir.models.clip import OPEN_CLIP_IGNORED, OPEN_CLIP_RENAMES
    from jaxir.models.vlu_net import _ImageTower, _TextTower

    a = aligner
    hooks = ConvertHooks(renames=OPEN_CLIP_RENAMES, ignored=OPEN_CLIP_IGNORED)
    size = a.clip_image_size
    image = convert_state_dict({k: v for k, v in clip_state_dict.items() if k.startswith("visual.")},
                               _ImageTower(a.clip_patch_size, a.clip_width, a.clip_layers, a.clip_heads),
                               jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32), hooks=hooks)
    # logit_scale: the notebook's logits use no temperature
    text_sd = {k: v for k, v in clip_state_dict.items() if not k.startswith("visual.") and k != "logit_scale"}
    text = convert_state_dict(text_sd, _TextTower(a.vocab_size, a.context_length, a.text_width, a.text_heads,
                                                  a.text_layers),
                              jax.ShapeDtypeStruct((1, a.context_length), jnp.int32), hooks=hooks)
    return {"ad_imageEncoder": {"clip_model": image["params"]}, "ad_textEncoder": {"clip_model": text["params"]}}


class CLIPAdapterAlignment(TrainMethod):
    """CLIP_degradation_extractor.ipynb as a loop config: the image and text adapters learn, with CLIP frozen,
    to classify each degraded image among the task descriptions (cross-entropy of `DegradationAligner`'s
    logits against batch['task']). `clip`: an open_clip state dict filling both towers in a fresh run.
    The trained `ad_imageEncoder` subtree is laid out as vlu_net_clip's `model_degradation.ad_imageEncoder`."""

    name = "vlu_align"

    def __init__(self, clip: str = "", num_tasks: int = 7, vocab_size: int = 49408, context_length: int = 77,
                 text_width: int = 512, text_heads: int = 8, text_layers: int = 12, adapter_act: str = "leaky_relu"):
        self.clip = clip
        self.text = dict(num_tasks=int(num_tasks), vocab_size=int(vocab_size), context_length=int(context_length),
                         text_width=int(text_width), text_heads=int(text_heads), text_layers=int(text_layers),
                         adapter_act=adapter_act)
        self.aligner = None

    def wrap_model(self, model: Any, entry: Any) -> Any:
        from jaxir.models.vlu_net import DegradationAligner

        if not hasattr(model, "clip_image_size"):
            raise ValueError(f"method vlu_align reads its CLIP configuration from vlu_net_clip, not {entry.name!r}")
        self.aligner = DegradationAligner(clip_image_size=model.clip_image_size, clip_patch_size=model.clip_patch_size,
                                          clip_width=model.clip_width, clip_layers=model.clip_layers,
                                          clip_heads=model.clip_heads, dtype=model.dtype, **self.text)
        return self.aligner

    def trainable(self, params: Any) -> Any:
        # the adapters only (DA_adapter freezes every CLIP parameter)
        return {side: {k: jax.tree.map(lambda _: k != "clip_model", v) for k, v in tree.items()}
                for side, tree in params.items()}

    def prepare(self, params: Any) -> Any:
        if not self.clip:
            return params
        targets = {side: {"clip_model": params[side]["clip_model"]} for side in ("ad_imageEncoder", "ad_textEncoder")}

        def load():
            from jaxir.convert.torch_io import load_state_dict

            loaded = convert_clip_towers(load_state_dict(self.clip), self.aligner)
            return jax.tree.map(lambda want, got: np.asarray(got, want.dtype), targets, loaded)

        shapes = jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), targets)
        loaded = jax.pure_callback(load, shapes)
        return {side: {**params[side], **loaded[side]} for side in params}
