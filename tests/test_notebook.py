"""notebooks/quickstart.ipynb executes top to bottom (nbclient, CPU) and is stored without outputs."""
from __future__ import annotations

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"


def test_notebook_is_stored_without_outputs():
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert len(code) >= 8
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.mark.slow
def test_notebook_executes_without_errors(monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("torch")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # The kernel imports this checkout's jaxir and runs XLA as a user's would: one CPU device (not the
    # tests' eight simulated ones) and optimised code (training 100 steps unoptimised is far slower).
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError naming the failing cell
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4  # before/after twice, the curves and the sample grids
    assert "17,111,907" in text  # NAFNet-width32 GoPro, counted without allocating it
    assert "4 of 1111" in text and "not comparable" in text  # the fixture benchmark is flagged
    assert "HTML page:" in text
