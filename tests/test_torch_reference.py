"""The PyTorch references used by `jaxir bench` are equivalent to the official code."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from jaxir.parity import golden_state_dict, load_golden  # noqa: E402
from jaxir.torch_reference import REFERENCES, build_reference  # noqa: E402
from jaxir import registry  # noqa: E402

# golden model id -> jaxir model name (the reference's key in REFERENCES)
CASES = {
    "nafnet": "nafnet",
    "baseline": "nafnet_baseline",
    "mimo_unet": "mimo_unet",
    "mimo_unet_plus": "mimo_unet_plus",
    "convir": "convir",
    "convir_derain": "convir_derain",
    "restormer": "restormer",
    "restormer_dualpixel": "restormer",
}


def reference_kwargs(meta: dict) -> dict:
    """The sidecar's official kwargs in jaxir's builder convention, through the jaxir model's registry entry."""
    entry = registry.entry_for_official(meta["repo"], meta["class"], meta.get("file"))
    kwargs = entry.translate_kwargs(meta["kwargs"]) if entry.translate_kwargs else dict(meta["kwargs"])
    kwargs.pop("block", None)
    return kwargs


def golden_torch_state(arrays: dict) -> dict:
    # Large goldens store weights as float16 values; the official forward ran on them in float32.
    return {k: torch.from_numpy(np.asarray(v, np.float32) if v.dtype.kind == "f" else v)
            for k, v in golden_state_dict(arrays).items()}


def param_count(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("model_id", sorted(CASES))
def test_reference_reproduces_official_outputs(golden_dir, model_id):
    meta, arrays = load_golden(golden_dir / f"{model_id}.npz")
    assert CASES[model_id] in REFERENCES
    model = build_reference(CASES[model_id], **reference_kwargs(meta)).eval()
    model.load_state_dict(golden_torch_state(arrays), strict=True)
    assert param_count(model) == meta["param_count"]
    inputs = [torch.from_numpy(arrays["input"])]
    with torch.no_grad():
        out = model(*inputs)
    outputs = list(out) if isinstance(out, (tuple, list)) else [out]
    expected = sorted((k for k in arrays if k.startswith("output_")), key=lambda k: int(k.split("_")[1]))
    assert len(outputs) == len(expected)
    for got, key in zip(outputs, expected):
        np.testing.assert_allclose(got.numpy(), arrays[key], atol=1e-5, rtol=1e-5, err_msg=key)


@pytest.mark.parametrize("model_id", sorted(CASES))
def test_reference_counts_paper_parameters(golden_dir, model_id):
    meta = json.loads((golden_dir / f"{model_id}.json").read_text())
    entry = registry.entry_for_official(meta["repo"], meta["class"], meta.get("file"))
    for name, config in meta["paper_configs"].items():
        kwargs = reference_kwargs({**meta, "kwargs": config["kwargs"]})
        with torch.device("meta"):  # shapes only: big configs cost nothing
            model = build_reference(CASES[model_id], **kwargs)
        assert param_count(model) == config["param_count"], (entry.name, name)


def test_unknown_reference_is_a_clear_error():
    with pytest.raises(KeyError, match="no PyTorch reference"):
        build_reference("no_such_model")
