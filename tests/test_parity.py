"""Every golden file whose official class jaxir ports must match within atol/rtol 1e-4."""
import json
import pathlib

import pytest

from jaxir import registry
from jaxir.parity import check_parity

GOLDEN = pathlib.Path(__file__).resolve().parents[2] / "shared" / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.npz")) if GOLDEN.is_dir() else []
# Golden files whose official forward is not a function of its input: no port can reproduce them exactly.
UNREPRODUCIBLE = {
    "mambairv2": "the official routes tokens by hard Gumbel-softmax noise even in eval and sorts ties unstably "
                 "(two official runs differ by ~1.1e-3); tests/test_mambairv2.py checks the port against the "
                 "deterministic PyTorch reference at 1e-4 and the golden output within that spread",
}


@pytest.mark.parametrize("model_id", CASES)
def test_golden_parity(golden_dir, model_id, request):
    meta = json.loads((golden_dir / f"{model_id}.json").read_text())
    try:
        registry.entry_for_official(meta["repo"], meta["class"], meta.get("file"))
    except KeyError:
        pytest.skip(f"{meta['repo']}:{meta['class']} is not ported yet")
    if model_id in UNREPRODUCIBLE:
        request.applymarker(pytest.mark.xfail(strict=True, reason=UNREPRODUCIBLE[model_id]))
    report = check_parity(golden_dir / f"{model_id}.npz")
    assert report.ok, report.format()
