import os
import pathlib

import pytest

# Simulated devices must be requested before jax initialises its backends. The tests' models are tiny,
# so XLA's CPU compile time dominates: skip LLVM's optimisation passes (halves it; numerics unchanged
# within float32 rounding).
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0")

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
GOLDEN_DIR = PROJECT_ROOT.parent / "shared" / "golden"


@pytest.fixture(scope="session")
def golden_dir():
    if not GOLDEN_DIR.is_dir():
        pytest.skip(f"golden parity files not found at {GOLDEN_DIR}")
    return GOLDEN_DIR
