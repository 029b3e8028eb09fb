"""`jaxir eval --benchmark allinone3` runs PromptIR end to end on a fixture tree of the official layouts."""
import json

import jax
import numpy as np
import pytest
from test_evaluation import _centre_crop, _load, _random_variables, _write_allinone

from jaxir import evaluation, registry
from jaxir.cli import main
from jaxir.io import load_weights, save_weights
from jaxir.metrics.conventions import evaluate_per_image

TINY_PROMPTIR = {"dim": 8, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 1, "heads": [1, 2, 2, 4],
                 "prompt_sizes": [8, 4, 2]}


def test_promptir_allinone3_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(evaluation.CACHE_ENV, str(tmp_path / "cache"))
    _write_allinone(tmp_path / "data", np.random.default_rng(3))
    model = registry.build_model("promptir", **TINY_PROMPTIR)
    weights = tmp_path / "promptir.msgpack"
    save_weights(weights, "promptir", TINY_PROMPTIR, _random_variables(model, (1, 32, 32, 3)))

    out = tmp_path / "out"
    code = main(["eval", "--config", "experiments/promptir_aio3.py", "--checkpoint", str(weights),
                 "--benchmark", "allinone3", "--data-dir", str(tmp_path / "data"), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    result = json.loads((out / "allinone3.json").read_text())
    rows = {row["name"]: row for row in result["sets"]}
    assert list(rows) == ["denoise_15", "denoise_25", "denoise_50", "derain", "dehaze"]
    assert result["model"]["name"] == "promptir"
    # The fixture holds a few pairs, so the row is marked not comparable with the paper.
    assert "| average (not comparable) |" in (out / "allinone3.md").read_text()

    # Derain scored from the centre-cropped files through the same weights.
    variables = load_weights(weights)[2]
    apply = jax.jit(lambda v, x: model.apply(v, x))
    scores = []
    for n in (1, 2):
        rain = _centre_crop(_load(tmp_path / "data" / "Rain100L" / f"rain-{n}.png"), 16)[None]
        clean = _centre_crop(_load(tmp_path / "data" / "Rain100L" / f"norain-{n}.png"), 16)[None]
        scores.append(float(evaluate_per_image(np.asarray(apply(variables, rain)), clean, "allinone3")["psnr"][0]))
    assert rows["derain"]["metrics"]["psnr"] == pytest.approx(np.mean(scores), rel=1e-5)
