"""`jaxir bench` on a model: inference-only rows and the PyTorch reference side by side (tiny MoCE-IR)."""
import pytest

pytest.importorskip("torch")

from jaxir import bench

TINY_MOCE = dict(dim=8, num_blocks=(1, 1, 1, 1), num_dec_blocks=(1, 1, 1), levels=4, heads=(1, 1, 1, 1),
                 num_refinement_blocks=1, topk=1, num_experts=4, rank=2, rank_type="spread")


@pytest.mark.slow  # ~35 s of CPU: MoCE-IR's compile, even tiny
def test_inference_only_row_with_the_torch_reference():
    routing = "dense"  # all experts: the reference's and the port's dense paths, with converted weights
    result = bench.run_model_bench("moce_ir", dict(TINY_MOCE, routing=routing), size=16, batch=1, steps=1,
                                   dtype="float32", with_torch=True, label=f"tiny {routing}", train=False,
                                   note="machine shared with other jobs")
    assert result.train_steps_s is None and result.torch_train_steps_s is None
    assert result.infer_images_s > 0 and result.torch_infer_images_s > 0
    cells = [c.strip() for c in bench.format_row(result).strip("|").split("|")]
    header = [c.strip() for c in bench.TABLE_HEADER.splitlines()[0].strip("|").split("|")]
    row = dict(zip(header, cells, strict=True))
    assert row["train steps/s"] == row["torch train steps/s"] == row["train ratio"] == "n/a"
    assert row["infer ratio"].endswith("x")
    assert row["machine"].endswith(", machine shared with other jobs")
