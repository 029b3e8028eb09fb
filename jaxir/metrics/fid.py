"""FID and KID over Inception features, as pytorch-fid and torch-fidelity compute them.

FID (pytorch-fid `calculate_frechet_distance`): ||μ_1 - μ_2||² + Tr(Σ_1 + Σ_2 - 2 (Σ_1 Σ_2)^½),
with scipy's sqrtm, ε·I added to both covariances if the product is singular, and the
real part taken. KID (torch-fidelity `kid`): the unbiased MMD² with the polynomial
kernel k(x, y) = (xᵀy / d + 1)³, averaged over `subsets` random subsets of
`subset_size` features from each side; returns (mean, std).
Features come from `jaxir.metrics.inception` (pytorch-fid's FID Inception, pool3, 2048-d).
"""
from __future__ import annotations

from typing import Iterable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError("the two feature sets have different dimensions")
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"imaginary component {np.max(np.abs(covmean.imag))} in the covariance square root")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    return frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))


def kid(features_a: np.ndarray, features_b: np.ndarray, subsets: int = 100, subset_size: int = 1000,
        degree: int = 3, coef0: float = 1.0, seed: int = 0) -> tuple[float, float]:
    """(mean, std) of the unbiased polynomial-kernel MMD² over random subsets (torch-fidelity defaults)."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError("KID needs at least two features on each side")
    rng = np.random.RandomState(seed)
    gamma = 1.0 / a.shape[1]
    kernel = lambda x, y: (gamma * x @ y.T + coef0) ** degree
    values = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
        mmd = ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
               - 2 * kxy.sum() / (m * m))
        values.append(mmd)
    return float(np.mean(values)), float(np.std(values))


def feature_extractor(model, variables):
    """NHWC [0, 1] batch -> (N, 2048) features, one jitted function to call image after image."""
    apply = jax.jit(lambda v, x: model.apply(v, x))
    return lambda batch: np.asarray(apply(variables, jnp.asarray(batch, jnp.float32)))


def inception_features(model, variables, images: Iterable[np.ndarray], batch_size: int = 16) -> np.ndarray:
    """2048-d pool features of HWC [0, 1] images (any size: the network resizes to 299)."""
    extract = feature_extractor(model, variables)
    feats, batch = [], []

    def flush():
        if batch:
            feats.append(extract(np.stack(batch)))
            batch.clear()

    shape = None
    for image in images:
        if shape is not None and image.shape != shape:
            flush()  # one compiled shape per batch
        shape = image.shape
        batch.append(np.asarray(image, np.float32))
        if len(batch) == batch_size:
            flush()
    flush()
    return np.concatenate(feats, axis=0)
