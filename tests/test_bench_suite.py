"""`jaxir bench --suite paper`: a reduced suite (one small recipe, small sizes) runs end to end on CPU."""
import json

import pytest

from jaxir import bench_suite
from jaxir.cli import main


@pytest.mark.slow
def test_reduced_suite_rows_summary_and_records(tmp_path):
    entry = bench_suite.SuiteEntry("NAFNet demo", "experiments/nafnet_demo.py", (40, 36),
                                   model_overrides=(("width", 4),))
    record, out = tmp_path / "BENCH.md", tmp_path / "rows.jsonl"
    lines = []
    rows = bench_suite.run_suite([entry], dtypes=("float32", "bfloat16"), steps=1, torch_compile=False,
                                 record=str(record), out=str(out), size_override={"train": (32, 32)},
                                 echo=lines.append)
    assert [(r.hw, r.dtype) for r in rows] == [((32, 32), "float32"), ((32, 32), "bfloat16"),
                                               ((40, 36), "float32"), ((40, 36), "bfloat16")]
    for row in rows:
        assert row.compile_s > 0 and row.train_steps_s > 0 and row.peak_mb > 0
        assert row.flops_per_step > 0 and 0 < row.mfu < 1
        assert row.torch_eager_steps_s > 0 and row.torch_compiled_steps_s is None
    # The test frame has more pixels, so more FLOPs per step.
    assert rows[2].flops_per_step > rows[0].flops_per_step
    assert "assumed CPU peak" in lines[-1] and "JAX/torch eager" in lines[-1]
    text = record.read_text()
    assert "## Paper suite" in text and text.count("| NAFNet demo |") == 4
    assert len([json.loads(line) for line in out.read_text().splitlines()]) == 4


def test_paper_suite_names_every_recipe_and_filters():
    import pathlib

    labels = [e.label for e in bench_suite.PAPER_SUITE]
    assert len(labels) == len(set(labels))
    for entry in bench_suite.PAPER_SUITE:
        assert pathlib.Path(entry.config.split(":")[0]).is_file() or \
            (pathlib.Path(__file__).parents[1] / entry.config.split(":")[0]).is_file()
    assert [e.label for e in bench_suite.select("restormer")] == ["Restormer GoPro", "Restormer DPDD dual-pixel"]
    with pytest.raises(ValueError, match="matches none"):
        bench_suite.select("no such model")
    assert main(["bench", "--suite", "paper", "--suite-filter", "no such model"]) == 2
