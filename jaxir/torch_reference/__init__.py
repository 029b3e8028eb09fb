"""PyTorch models equivalent to the official ones, for side-by-side benchmarks.

Written for jaxir (not copied from the official repositories); each is proven
equivalent by loading a golden file's official state dict with `strict=True` and
reproducing its official outputs (tests/test_torch_reference.py). Importing this
package requires torch.
"""
from __future__ import annotations

import importlib

# jaxir model name -> "module:builder" taking the jaxir builder kwargs.
REFERENCES = {
    "nafnet": "jaxir.torch_reference.nafnet:build_nafnet",
    "nafnet_baseline": "jaxir.torch_reference.nafnet:build_baseline",
    "mimo_unet": "jaxir.torch_reference.mimo_unet:build_mimo_unet",
    "mimo_unet_plus": "jaxir.torch_reference.mimo_unet:build_mimo_unet_plus",
    "convir": "jaxir.torch_reference.convir:build_convir",
    "convir_derain": "jaxir.torch_reference.convir:build_convir_derain",
    "restormer": "jaxir.torch_reference.restormer:build_restormer",
    "p2ikt": "jaxir.torch_reference.p2ikt:build_p2ikt",
    "xydeblur": "jaxir.torch_reference.xydeblur:build_xydeblur",
    "stripformer": "jaxir.torch_reference.stripformer:build_stripformer",
    "msbdn": "jaxir.torch_reference.msbdn:build_msbdn",
    "promptir": "jaxir.torch_reference.promptir:build_promptir",
    "fid_inception": "jaxir.torch_reference.fid_inception:build_fid_inception",
    "adm_unet": "jaxir.torch_reference.adm_unet:build_adm_unet",
    "cm_unet": "jaxir.torch_reference.adm_unet:build_cm_unet",
    "airnet": "jaxir.torch_reference.airnet:build_airnet",
    "da_rcot": "jaxir.torch_reference.da_rcot:build_mrcnet",
    "da_rcot_fnet": "jaxir.torch_reference.da_rcot:build_fnet",
    "mambairv2": "jaxir.torch_reference.mambairv2:build_mambairv2",
    "mambairv2_light": "jaxir.torch_reference.mambairv2:build_mambairv2_light",
    "mair_unet": "jaxir.torch_reference.mair:build_mair_unet",
    "mair": "jaxir.torch_reference.mair:build_mair",
    "moce_ir": "jaxir.torch_reference.moce_ir:build_moce_ir",
    "mpmf_net": "jaxir.torch_reference.mpmf_net:build_mpmf_net",
}


def build_reference(name: str, **kwargs):
    if name not in REFERENCES:
        raise KeyError(f"no PyTorch reference for {name!r}; available: {', '.join(sorted(REFERENCES))}")
    module_name, _, attr = REFERENCES[name].partition(":")
    return getattr(importlib.import_module(module_name), attr)(**kwargs)
