"""The demo config's quality bar: held-out restorations beat the degraded inputs by >= 4 dB (minutes on CPU)."""
import pytest

from jaxir.config import load_config
from jaxir.train.loop import SAMPLES_FILE, evaluate, train


@pytest.mark.slow
def test_demo_restores_held_out_photos(tmp_path):
    config = load_config("experiments/nafnet_demo.py")
    final = train(config, tmp_path)
    assert final["step"] == config.train.num_steps and final["rejected_steps"] == 0
    assert final["psnr"] - final["input_psnr"] >= 4.0, final
    assert final["ssim"] > final["input_ssim"]
    assert (tmp_path / SAMPLES_FILE).is_file()
    # Evaluating the finished workdir (EMA weights of the last checkpoint) reproduces the final scores.
    again = evaluate(config, tmp_path)
    assert again["psnr"] == pytest.approx(final["psnr"], abs=1e-3)
