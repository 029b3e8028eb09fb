"""The PyTorch references used by `jaxir bench` are equivalent to the official code."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from jaxir.parity import golden_state_dict, load_golden  # noqa: E402
from jaxir.torch_reference import REFERENCES, build_reference  # noqa: E402
from jaxir import registry  # noqa: E402

CASES = {"nafnet": "nafnet", "baseline": "nafnet_baseline"}


@pytest.mark.parametrize("model_id", sorted(CASES))
def test_reference_reproduces_official_outputs(golden_dir, model_id):
    meta, arrays = load_golden(golden_dir / f"{model_id}.npz")
    entry = registry.entry_for_official(meta["repo"], meta["class"], meta.get("file"))
    kwargs = entry.translate_kwargs(meta["kwargs"])
    kwargs.pop("block", None)
    model = build_reference(CASES[model_id], **kwargs).eval()
    state = {k: torch.from_numpy(np.asarray(v, np.float32) if v.dtype.kind == "f" else v)
             for k, v in golden_state_dict(arrays).items()}
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        out = model(torch.from_numpy(arrays["input"]))
    np.testing.assert_allclose(out.numpy(), arrays["output_0"], atol=1e-5, rtol=1e-5)
