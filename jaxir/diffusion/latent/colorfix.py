"""Colour correction of a restored image towards its low-quality input, as OSDFace's
`utils/wavelet_color_fix.py` (from StableSR / sd-webui-stablesr `colorfix.py`), on NHWC arrays in [0, 1].

Wavelet fix: five levels of a dilated 3x3 [1 2 1]^T [1 2 1] / 16 blur (dilation and replicate padding
2^i) split each image into high frequencies (the sum of the level differences) and the final low
frequency; the result is the restored image's high frequencies plus the input's low frequency, clipped
to [0, 1]. AdaIN fix: the restored image's per-channel mean/std (unbiased variance + 1e-5) replaced by
the input's.
"""
from __future__ import annotations

import jax.numpy as jnp

_TAPS = (0.25, 0.5, 0.25)


def wavelet_blur(x, radius: int):
    padded = jnp.pad(x, ((0, 0), (radius, radius), (radius, radius), (0, 0)), mode="edge")
    h, w = x.shape[1], x.shape[2]
    out = jnp.zeros_like(x)
    for i, a in enumerate(_TAPS):
        for j, b in enumerate(_TAPS):
            out = out + (a * b) * padded[:, i * radius:i * radius + h, j * radius:j * radius + w]
    return out


def wavelet_decomposition(x, levels: int = 5):
    high = jnp.zeros_like(x)
    for i in range(levels):
        low = wavelet_blur(x, 2 ** i)
        high = high + (x - low)
        x = low
    return high, x


def wavelet_color_fix(restored, reference):
    high, _ = wavelet_decomposition(restored)
    _, low = wavelet_decomposition(reference)
    return jnp.clip(high + low, 0.0, 1.0)


def adain_color_fix(restored, reference, eps: float = 1e-5):
    def stats(x):
        return jnp.mean(x, axis=(1, 2), keepdims=True), jnp.sqrt(jnp.var(x, axis=(1, 2), ddof=1, keepdims=True) + eps)

    mean_c, std_c = stats(restored)
    mean_s, std_s = stats(reference)
    return jnp.clip((restored - mean_c) / std_c * std_s + mean_s, 0.0, 1.0)
