"""Name -> model builder, and official PyTorch class -> jaxir model.

Every architecture module registers itself with `register_model`. A model entry
knows how to build the Linen module from keyword arguments, how to translate the
official constructor's kwargs (as recorded in a golden sidecar) into its own, and
which state-dict quirks its converter must handle.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Mapping

import flax.linen as nn

# Modules imported on first registry use, so `import jaxir` stays light.
_MODEL_MODULES = (
    "jaxir.models.nafnet",
    "jaxir.models.convir",
    "jaxir.models.mimo_unet",
    "jaxir.models.xydeblur",
    "jaxir.models.restormer",
    "jaxir.models.stripformer",
    "jaxir.models.p2ikt",
    "jaxir.models.airnet",
    "jaxir.models.mpmf_net",
    "jaxir.models.da_rcot",
    "jaxir.models.msbdn",
    "jaxir.models.dcpt_classifier",
    "jaxir.models.vlu_net",
    "jaxir.models.promptir",
    "jaxir.models.moce_ir",
    "jaxir.models.adm_unet",
    "jaxir.models.cm_unet",
    "jaxir.models.ldm_unet",
    "jaxir.diffusion.latent.osdface_vre",
    "jaxir.diffusion.dvsr",
    "jaxir.diffusion.latent.gendeg",
    "jaxir.metrics.inception",
    "jaxir.models.mair",
    "jaxir.models.mambairv2",
    "jaxir.models.acl",
    "jaxir.models.allinone_codec",
)


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    # (repo, class name) pairs of official code this model reproduces.
    official: tuple[tuple[str, str], ...] = ()
    # Official constructor kwargs (sidecar) -> jaxir builder kwargs.
    translate_kwargs: Callable[[Mapping[str, Any]], dict] | None = None
    # Extra key renames / skips / custom tensor rules for this model's state dict.
    convert_hooks: Any = None
    # Inputs must be padded to a multiple of this on H and W (1: any size).
    pad_multiple: int = 1
    # Smallest input side the model accepts.
    min_size: int = 1
    # The official file(s) the port follows; they tell apart task variants sharing a class name.
    official_file: str | tuple[str, ...] | None = None
    # (module, golden NHWC input shapes) -> the input shapes this configuration takes, for models
    # whose further inputs depend on the config (parameter counts of paper configs).
    example_input_shapes: Callable[[nn.Module, list[tuple]], list[tuple]] | None = None
    # module -> names of the submodules whose outputs are the encoder's features, shallow to deep
    # (one per level); methods that read an encoder (DCPT) tap these.
    encoder_taps: Callable[[nn.Module], tuple[str, ...]] | None = None
    description: str = ""
    # (model, batch, height, width) -> abstract inputs, for models taking more than one image
    # (a diffusion U-Net's timesteps and labels); None: one NHWC image.
    example_inputs: Callable[..., list] | None = None
    # (model, variables, batch, key, num_samples) -> (average, one sample), for stochastic restorers
    # (a diffusion model's sampler); None: the model is deterministic.
    stochastic_restore: Callable[..., tuple] | None = None


_REGISTRY: dict[str, ModelEntry] = {}
_loaded = False


def register_model(entry: ModelEntry) -> ModelEntry:
    if entry.name in _REGISTRY and _REGISTRY[entry.name] is not entry:
        raise ValueError(f"model {entry.name!r} registered twice")
    _REGISTRY[entry.name] = entry
    return entry


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _MODEL_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            # A model file not written yet is simply not registered.
            if err.name != module:
                raise


def model_names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
    _load_all()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def build_model(name: str, **kwargs) -> nn.Module:
    return get_entry(name).builder(**kwargs)


def entry_for_official(repo: str, class_name: str, file: str | None = None) -> ModelEntry:
    """The jaxir model for an official (repo, class). `file` disambiguates task variants."""
    _load_all()
    matches = [e for e in _REGISTRY.values() if (repo, class_name) in e.official]
    if file is not None and len(matches) > 1:
        by_file = [e for e in matches if file in _as_tuple(e.official_file)]
        matches = by_file or matches
    if not matches:
        known = sorted({f"{r}:{c}" for e in _REGISTRY.values() for r, c in e.official})
        raise KeyError(f"no jaxir model reproduces {repo}:{class_name}; known official classes: {', '.join(known)}")
    if len(matches) > 1:
        raise KeyError(f"{repo}:{class_name} is ambiguous between {[e.name for e in matches]}")
    return matches[0]


def _as_tuple(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def build_official(repo: str, class_name: str, kwargs: Mapping[str, Any], file: str | None = None):
    """Build the jaxir module that reproduces an official class built with `kwargs`."""
    entry = entry_for_official(repo, class_name, file)
    own_kwargs = entry.translate_kwargs(kwargs) if entry.translate_kwargs else dict(kwargs)
    return entry, entry.builder(**own_kwargs)
