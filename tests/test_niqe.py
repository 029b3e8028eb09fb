"""NIQE against BasicSR's own `calculate_niqe` (basicsr 1.4.2, installed with --no-deps).

`import basicsr` runs its package __init__, which imports torchvision (not installed here, and
basicsr 1.4.2 needs a torchvision module removed in 0.17), so the reference modules are loaded
from the installed package's files under throwaway stand-in parent packages.

BasicSR computes in float32 (MSCN maps, its torch bicubic resize); the AGGD fits amplify float32
rounding, so an image of few blocks can move by ~1e-3 (a 320x320 crop of skimage's rocket, 9
blocks: 1.1e-3); whole photos agree to 6e-4 or better.
"""
import importlib
import importlib.util
import pathlib
import sys
import types

import numpy as np
import pytest
import skimage.data

from jaxir.metrics import niqe as niqe_lib

_BASICSR = importlib.util.find_spec("basicsr")
needs_basicsr = pytest.mark.skipif(
    _BASICSR is None, reason="BasicSR's NIQE parameters: `pip install --no-deps basicsr==1.4.2` (as CI does)")


@pytest.fixture(scope="module")
def basicsr_niqe():
    root = pathlib.Path(_BASICSR.submodule_search_locations[0])
    saved = {k: v for k, v in sys.modules.items() if k == "basicsr" or k.startswith("basicsr.")}
    try:
        for name, folder in (("basicsr", root), ("basicsr.utils", root / "utils"),
                             ("basicsr.metrics", root / "metrics")):
            package = types.ModuleType(name)
            package.__path__ = [str(folder)]
            sys.modules[name] = package
        # metric_util does `from basicsr.utils import bgr2ycbcr`: the only name it needs from utils.
        sys.modules["basicsr.utils"].bgr2ycbcr = importlib.import_module("basicsr.utils.color_util").bgr2ycbcr
        module = importlib.import_module("basicsr.metrics.niqe")
    finally:
        for key in [k for k in sys.modules if k == "basicsr" or k.startswith("basicsr.")]:
            del sys.modules[key]
        sys.modules.update(saved)
    return module


def _photo(name, size=None):
    image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return image[:size, :size] if size else image


@needs_basicsr
@pytest.mark.parametrize("name,crop_border,convert_to", [
    ("chelsea", 0, "y"), ("coffee", 4, "y"), ("astronaut", 2, "y"), ("camera", 0, "gray"), ("rocket", 0, "gray"),
])
def test_niqe_matches_basicsr(basicsr_niqe, name, crop_border, convert_to):
    image = _photo(name)
    ours = niqe_lib.niqe(image.astype(np.float32) / 255, crop_border=crop_border, convert_to=convert_to)
    # BasicSR takes BGR on [0, 255].
    theirs = basicsr_niqe.calculate_niqe(image[..., ::-1].astype(np.float32), crop_border, convert_to=convert_to)
    assert np.isfinite(ours) and ours > 0
    assert abs(ours - theirs) < 1e-3, (ours, theirs)


@needs_basicsr
def test_imresize_matches_basicsr_matlab_bicubic(basicsr_niqe):
    image = np.random.default_rng(0).uniform(size=(37, 52))
    ours = niqe_lib.imresize(image, 0.5)
    theirs = basicsr_niqe.imresize(image, scale=0.5, antialiasing=True)
    assert ours.shape == theirs.shape == (19, 26)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_imresize_keeps_constants_and_halves_sizes():
    out = niqe_lib.imresize(np.full((21, 40), 0.3), 0.5)
    assert out.shape == (11, 20)
    np.testing.assert_allclose(out, 0.3, atol=1e-12)


@needs_basicsr
def test_niqe_rises_with_blur_and_noise():
    clean = _photo("chelsea").astype(np.float32) / 255
    import scipy.ndimage

    blurred = scipy.ndimage.gaussian_filter(clean, (3, 3, 0))
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 0.1, clean.shape), 0, 1)
    score = niqe_lib.niqe(clean)
    assert niqe_lib.niqe(blurred) > score + 1 and niqe_lib.niqe(noisy) > score + 1


def test_params_from_a_path_and_clear_errors(tmp_path, monkeypatch):
    window = np.outer(*[np.exp(-0.5 * (np.arange(-3, 4) / 7 * 6) ** 2)] * 2)
    path = tmp_path / "params.npz"
    rng = np.random.default_rng(0)
    spread = rng.normal(size=(36, 36))
    np.savez(path, mu_pris_param=rng.normal(size=(1, 36)), cov_pris_param=spread @ spread.T,
             gaussian_window=window / window.sum())
    image = _photo("chelsea", 200).astype(np.float32) / 255
    from_path = niqe_lib.niqe(image, params=str(path))
    monkeypatch.setenv(niqe_lib.PARAMS_ENV, str(path))
    assert niqe_lib.niqe(image) == from_path and np.isfinite(from_path)
    monkeypatch.setenv(niqe_lib.PARAMS_ENV, str(tmp_path / "missing.npz"))
    with pytest.raises(niqe_lib.NIQEParamsError, match="missing.npz"):
        niqe_lib.niqe(image)
    monkeypatch.delenv(niqe_lib.PARAMS_ENV)
    monkeypatch.setattr(niqe_lib.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(niqe_lib.NIQEParamsError, match="pip install --no-deps basicsr"):
        niqe_lib.load_params()
    with pytest.raises(ValueError, match="96x96"):
        niqe_lib.niqe(image[:90], params=str(path))
    with pytest.raises(ValueError, match="two 96x96 blocks"):
        niqe_lib.niqe(image[:100, :100], params=str(path))
