"""Consistency-model U-Net: openai/consistency_models `cm/unet.py` `UNetModel` (Song et al., ICML 2023).

The ADM U-Net of `adm_unet.py`; the one architectural difference is the
attention, whose flash kernel splits the qkv channels into q/k/v before heads
(`qkv_order='qkv_first'`) and whose qkv/proj_out are 2-D 1x1 convolutions (same
parameters, converted by the same rule). The network takes the rescaled noise
level 250 log σ as its timestep; the Karras denoiser scalings c_skip, c_out,
c_in around it are `jaxir.diffusion.karras.KarrasDenoiser`.
"""
from __future__ import annotations

from jaxir import registry
from jaxir.models.adm_unet import build_adm_unet, example_inputs, official_kwargs


def build_cm_unet(**kwargs):
    kwargs.setdefault("qkv_order", "qkv_first")
    return build_adm_unet(**kwargs)


def _cm_kwargs(official: dict) -> dict:
    kwargs = dict(official)
    for key in ("attention_type", "channels_last"):  # flash vs legacy kernels compute the same
        kwargs.pop(key, None)
    return official_kwargs(kwargs, qkv_order="qkv_first")


registry.register_model(registry.ModelEntry(
    name="cm_unet",
    builder=build_cm_unet,
    official=(("openai/consistency_models", "UNetModel"),),
    translate_kwargs=_cm_kwargs,
    pad_multiple=32,
    min_size=32,
    official_file="cm/unet.py",
    example_inputs=example_inputs,
    description="Consistency-model U-Net (openai/consistency_models): 526.3M LSUN-256, 295.9M ImageNet-64 (class-cond.).",
))
