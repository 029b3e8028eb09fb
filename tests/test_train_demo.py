"""The demo's quality bar, run as a user runs it: `jaxir demo` in a fresh process with default XLA flags.

Held-out restorations must beat the degraded inputs by >= 4 dB PSNR (and in SSIM);
the sample grid must be written; evaluating the finished workdir reproduces the scores.
"""
import os
import re
import subprocess
import sys

import pytest

from jaxir.config import load_config
from jaxir.train.loop import SAMPLES_FILE, evaluate


def _final_metrics(output: str) -> dict[str, float]:
    line = [l for l in output.splitlines() if l.startswith("final metrics:")][-1]
    return {k: float(v) for k, v in re.findall(r"(\w+)=([-\d.einf]+)", line)}


@pytest.mark.slow
def test_demo_restores_held_out_photos(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    run = subprocess.run([sys.executable, "-m", "jaxir.cli", "demo", "--workdir", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    final = _final_metrics(run.stdout)
    config = load_config("experiments/nafnet_demo.py")
    assert final["step"] == config.train.num_steps and final["rejected_steps"] == 0
    assert final["psnr"] - final["input_psnr"] >= 4.0, final
    assert final["ssim"] > final["input_ssim"]
    assert (tmp_path / SAMPLES_FILE).is_file()
    again = evaluate(config, tmp_path)
    assert again["psnr"] == pytest.approx(final["psnr"], abs=1e-3)
