"""The 860M GenDeg U-Net's training step lowers for 8 simulated devices with bfloat16, remat and FSDP
(abstract shapes: nothing is materialised or executed)."""
import json

import jax
import pytest

from jaxir import registry
from jaxir.diffusion.latent import scale
from jaxir.train import sharding


@pytest.mark.slow  # ~40 s: traces the full 860M-parameter U-Net's forward and backward
def test_paper_unet_train_step_lowers_sharded_in_bfloat16(golden_dir):
    if jax.device_count() < 8:
        pytest.skip("needs 8 (simulated) devices")
    meta = json.loads((golden_dir / "gendeg_unet.json").read_text())
    official = next(iter(meta["paper_configs"].values()))["kwargs"]
    kwargs = registry.get_entry("ldm_unet").translate_kwargs(official)
    mesh = sharding.make_mesh(jax.devices()[:8])
    lowered, info = scale.lower_train_step(kwargs, mesh, batch=8, latent_hw=32)
    assert info["params"] == 859_532_484
    replicated = 3 * 4 * info["params"]  # float32 weights + two Adam moments on every device
    assert info["state_bytes_per_device"] < replicated / 6
    text = lowered.as_text()
    assert '{"data"}' in text and "bf16" in text
