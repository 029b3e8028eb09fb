"""Every golden file whose official class jaxir ports must match within atol/rtol 1e-4."""
import json
import pathlib

import pytest

from jaxir import registry
from jaxir.parity import check_parity

GOLDEN = pathlib.Path(__file__).resolve().parents[2] / "shared" / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.npz")) if GOLDEN.is_dir() else []


@pytest.mark.parametrize("model_id", CASES)
def test_golden_parity(golden_dir, model_id):
    meta = json.loads((golden_dir / f"{model_id}.json").read_text())
    try:
        registry.entry_for_official(meta["repo"], meta["class"], meta.get("file"))
    except KeyError:
        pytest.skip(f"{meta['repo']}:{meta['class']} is not ported yet")
    report = check_parity(golden_dir / f"{model_id}.npz")
    assert report.ok, report.format()
