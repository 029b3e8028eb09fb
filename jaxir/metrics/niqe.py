"""NIQE (Mittal, Soundararajan, Bovik, "Making a 'completely blind' image quality analyzer", 2013)
as BasicSR computes it (`basicsr/metrics/niqe.py`, `calculate_niqe`), with BasicSR's published
pristine-model parameters.

    from jaxir.metrics.niqe import niqe
    score = niqe(image)            # HWC RGB in [0, 1]; lower is better

Conventions of BasicSR's `calculate_niqe`: the image goes to MATLAB's Y (BT.601, 16..235 on
[0, 255]) or to OpenCV's grey, `crop_border` pixels are dropped on every side, values are
rounded to integer levels, then cropped to whole 96x96 blocks. Two scales (the image and its
MATLAB-bicubic half with antialiasing): MSCN coefficients with the 7x7 Gaussian window (scipy
'nearest' borders), per block an AGGD fit of the coefficients (shape, mean scale) and of the
four neighbour products (horizontal, vertical, two diagonals, circular within the block) with
shape, mean, left and right scales: 18 features per scale, 36 per block. NIQE is the Mahalanobis-
like distance between the pristine Gaussian (μ_p, Σ_p) and the blocks' (NaN-skipping mean,
covariance of the NaN-free rows): √((μ_p - μ)ᵀ pinv((Σ_p + Σ)/2) (μ_p - μ)).

The parameters (`niqe_pris_params.npz`: mu_pris_param, cov_pris_param, gaussian_window) are
BasicSR's; jaxir does not bundle them. They are read from the installed `basicsr` package
(the PyPI sdist ships the file; `pip install --no-deps basicsr==1.4.2`, as requirements-reference.txt,
without importing basicsr, whose import needs torchvision), or from a path given as `params=`
or in $JAXIR_NIQE_PARAMS.
"""
from __future__ import annotations

import importlib.util
import math
import os
import pathlib
import warnings

import cv2
import numpy as np
import scipy.ndimage
import scipy.special

PARAMS_ENV = "JAXIR_NIQE_PARAMS"
PARAMS_FILE = "niqe_pris_params.npz"
BLOCK = 96

_GAMMA_GRID = np.arange(0.2, 10.001, 0.001)
_R_GAMMA = (scipy.special.gamma(2 / _GAMMA_GRID) ** 2
            / (scipy.special.gamma(1 / _GAMMA_GRID) * scipy.special.gamma(3 / _GAMMA_GRID)))


class NIQEParamsError(FileNotFoundError):
    """BasicSR's NIQE parameters were not found."""


def params_path(path: str | os.PathLike | None = None) -> pathlib.Path:
    """Where the pristine parameters are: `path`, else $JAXIR_NIQE_PARAMS, else the installed basicsr."""
    explicit = path or os.environ.get(PARAMS_ENV)
    if explicit:
        found = pathlib.Path(explicit).expanduser()
        if not found.is_file():
            raise NIQEParamsError(f"NIQE parameters {found} do not exist (BasicSR's {PARAMS_FILE})")
        return found
    spec = importlib.util.find_spec("basicsr")  # locates the package without running its __init__
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            found = pathlib.Path(root) / "metrics" / PARAMS_FILE
            if found.is_file():
                return found
    raise NIQEParamsError(
        f"NIQE needs BasicSR's {PARAMS_FILE}: install it with `pip install --no-deps basicsr==1.4.2` "
        f"(jaxir's test extra), or pass its path (params=... / ${PARAMS_ENV})")


def load_params(path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """{'mu_pris_param' (1, 36), 'cov_pris_param' (36, 36), 'gaussian_window' (7, 7)} as float64."""
    with np.load(params_path(path)) as data:
        missing = {"mu_pris_param", "cov_pris_param", "gaussian_window"} - set(data.files)
        if missing:
            raise NIQEParamsError(f"{path}: not BasicSR's NIQE parameters (missing {sorted(missing)})")
        return {key: np.asarray(data[key], np.float64) for key in data.files}


def to_luma(image: np.ndarray, convert_to: str = "y", dtype=np.float32) -> np.ndarray:
    """HWC RGB (or HW / HW1 grey) in [0, 1] -> HW on [0, 255], unrounded.

    The luma is stored in `dtype` on the [0, 1] scale before the ×255, as BasicSR's float32 path
    does, so that rounding to levels agrees with it at the .5 boundaries."""
    image = np.asarray(image, np.float32)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        return image.astype(dtype) * dtype(255.0)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"NIQE takes an HWC RGB or a grey image, got shape {image.shape}")
    if convert_to == "y":  # MATLAB rgb2ycbcr's luma
        unit = (image.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) + 16.0) / 255.0
    elif convert_to == "gray":  # OpenCV's own (BasicSR calls it; its float rounding decides .5 levels)
        unit = cv2.cvtColor(np.ascontiguousarray(image[..., ::-1]), cv2.COLOR_BGR2GRAY)  # its BGR path, as called
    else:
        raise ValueError(f"convert_to must be 'y' or 'gray', got {convert_to!r}")
    return unit.astype(dtype) * dtype(255.0)


def _cubic(x: np.ndarray) -> np.ndarray:
    a = np.abs(x)
    return np.where(a <= 1, 1.5 * a ** 3 - 2.5 * a ** 2 + 1,
                    np.where(a <= 2, -0.5 * a ** 3 + 2.5 * a ** 2 - 4 * a + 2, 0.0))


def _resize_matrix(in_length: int, scale: float) -> np.ndarray:
    """(out, in) matrix of MATLAB imresize's bicubic along one axis (antialiased when shrinking;
    out-of-range taps reflect symmetrically, edge pixel repeated)."""
    out_length = math.ceil(in_length * scale)
    width = 4.0 / scale if scale < 1 else 4.0
    centre = np.arange(1, out_length + 1) / scale + 0.5 * (1 - 1 / scale)  # 1-based input coordinates
    left = np.floor(centre - width / 2)
    taps = left[:, None] + np.arange(math.ceil(width) + 2)[None]
    distance = centre[:, None] - taps
    weights = scale * _cubic(distance * scale) if scale < 1 else _cubic(distance)
    weights /= weights.sum(axis=1, keepdims=True)
    index = taps.astype(np.int64) - 1
    period = 2 * in_length
    index = np.mod(index, period)
    index = np.where(index >= in_length, period - 1 - index, index)
    matrix = np.zeros((out_length, in_length))
    np.add.at(matrix, (np.repeat(np.arange(out_length), index.shape[1]), index.ravel()), weights.ravel())
    return matrix


def imresize(image: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB `imresize(image, scale)` (bicubic, antialiasing) of a 2-D array, unrounded."""
    image = np.asarray(image, np.float64)
    return _resize_matrix(image.shape[0], scale) @ image @ _resize_matrix(image.shape[1], scale).T


def _aggd(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Moment-matched AGGD (shape α, left scale β_l, right scale β_r) per row of (blocks, pixels).
    α is the grid value (0.2..10, step 0.001) whose ratio is nearest, as BasicSR's search."""
    square = samples ** 2
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a block without negative values: NaN, as BasicSR
        # Row by row over the selected values: numpy's pairwise float32 sums then match BasicSR's.
        left = np.sqrt(np.array([np.mean(q[x < 0]) for q, x in zip(square, samples)], samples.dtype))
        right = np.sqrt(np.array([np.mean(q[x > 0]) for q, x in zip(square, samples)], samples.dtype))
        ratio = left / right
        rhat = np.mean(np.abs(samples), 1) ** 2 / np.mean(square, 1)
        rnorm = rhat * (ratio ** 3 + 1) * (ratio + 1) / (ratio ** 2 + 1) ** 2
    # A NaN ratio makes every distance NaN; argmin then picks the first, as numpy's argmin does.
    alpha = _GAMMA_GRID[np.argmin((_R_GAMMA[None] - rnorm[:, None]) ** 2, axis=1)]
    factor = np.sqrt(scipy.special.gamma(1 / alpha) / scipy.special.gamma(3 / alpha))
    return alpha, left * factor, right * factor


def _block_features(mscn: np.ndarray, size: int) -> np.ndarray:
    """(blocks, 18) features of the size x size blocks of an MSCN map."""
    h, w = mscn.shape[0] // size, mscn.shape[1] // size
    blocks = mscn[:h * size, :w * size].reshape(h, size, w, size).transpose(0, 2, 1, 3).reshape(-1, size, size)
    flat = blocks.reshape(len(blocks), -1)
    alpha, beta_l, beta_r = _aggd(flat)
    features = [alpha, (beta_l + beta_r) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        product = (blocks * np.roll(blocks, shift, axis=(1, 2))).reshape(len(blocks), -1)
        alpha, beta_l, beta_r = _aggd(product)
        mean = (beta_r - beta_l) * scipy.special.gamma(2 / alpha) / scipy.special.gamma(1 / alpha)
        features += [alpha, mean, beta_l, beta_r]
    return np.stack(features, axis=1)


def niqe_of_luma(luma: np.ndarray, params: dict[str, np.ndarray], dtype=np.float32) -> float:
    """NIQE of an HW array on [0, 255] (already rounded and border-cropped).

    dtype: what the MSCN maps and their block statistics are stored in. BasicSR's are float32
    (scipy's convolve keeps the input dtype); the local variance E[x²] - μ² cancels on the
    [0, 255] scale, so float64 gives scores up to a few 1e-2 away from BasicSR's."""
    h, w = (s // BLOCK * BLOCK for s in luma.shape)
    if h == 0 or w == 0:
        raise ValueError(f"NIQE needs at least one {BLOCK}x{BLOCK} block, got an image of {luma.shape}")
    image = np.asarray(luma, dtype)[:h, :w]
    window = params["gaussian_window"]
    features = []
    for scale in (1, 2):
        mu = scipy.ndimage.convolve(image, window, mode="nearest")
        sigma = np.sqrt(np.abs(scipy.ndimage.convolve(image ** 2, window, mode="nearest") - mu ** 2))
        features.append(_block_features((image - mu) / (sigma + 1), BLOCK // scale))
        if scale == 1:
            image = imresize(image / dtype(255.0), 0.5).astype(dtype) * dtype(255.0)
    features = np.concatenate(features, axis=1)
    mu_blocks = np.nanmean(features, axis=0)
    complete = features[~np.isnan(features).any(axis=1)]
    if len(complete) < 2:  # BasicSR's np.cov would give NaN
        raise ValueError(f"NIQE needs at least two {BLOCK}x{BLOCK} blocks with finite features; an image of "
                         f"{luma.shape[0]}x{luma.shape[1]} has {len(features)}")
    cov_blocks = np.cov(complete, rowvar=False)
    diff = params["mu_pris_param"].reshape(-1) - mu_blocks
    quality = diff @ np.linalg.pinv((params["cov_pris_param"] + cov_blocks) / 2) @ diff
    return float(np.sqrt(quality))


def niqe(image: np.ndarray, crop_border: int = 0, convert_to: str = "y", params=None, dtype=np.float32) -> float:
    """NIQE of one image (HWC RGB or grey, [0, 1]), BasicSR's `calculate_niqe` conventions.

    params: a `load_params` dict, a path to `niqe_pris_params.npz`, or None (installed basicsr or
    $JAXIR_NIQE_PARAMS). dtype: float32 as BasicSR (see `niqe_of_luma`), or float64.
    """
    if not isinstance(params, dict):
        params = load_params(params)
    luma = to_luma(image, convert_to, dtype)
    if crop_border:
        luma = luma[crop_border:-crop_border, crop_border:-crop_border]
    return niqe_of_luma(np.round(luma), params, dtype)
