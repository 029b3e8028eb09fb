"""Linear degradation operators A for zero-shot restoration, with adjoints, regularised
pseudo-inverses and closed-form data-consistency steps.

Every operator acts on NHWC batches and gives
  forward(x)          A x
  adjoint(y)          Aᵀ y
  pinv(y, eta)        (AᵀA + ηI)⁻¹ Aᵀ y = Aᵀ (AAᵀ + ηI)⁻¹ y  (η = 0: the Moore-Penrose pseudo-inverse,
                      CM4IR's `A_pinv_add_eta`)
  prox(y, z, alpha)   argmin_x ||y - A x||² + α ||x - z||²  = (AᵀA + αI)⁻¹ (Aᵀy + αz)
Blur and super-resolution are circular (periodic boundary), which makes AAᵀ diagonal
in the Fourier domain; the super-resolution solution is the fast closed form of
Zhao et al. (TIP 2016) that USRNet/DiffPIR's `utils_sisr.data_solution` and RDMD's
`utils_sisr.pre_calculate` implement (blur, then keep pixel (0, 0) of every sf×sf block).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxir.ops.fft import psf_to_otf

_EPS = 1e-8  # singular values below this count as zero in the η = 0 pseudo-inverse


def _fft(x):
    return jnp.fft.fft2(x, axes=(1, 2))


def _ifft(x):
    return jnp.real(jnp.fft.ifft2(x, axes=(1, 2))).astype(jnp.float32)


def _safe_inverse(values, eta):
    values = values + eta
    return jnp.where(jnp.abs(values) > _EPS, 1.0 / jnp.where(jnp.abs(values) > _EPS, values, 1.0), 0.0)


@dataclasses.dataclass(frozen=True)
class Blur:
    """Circular convolution with a known kernel (k, k), centre k // 2 (`jaxir.degradations.convolve`
    with boundary='periodic')."""

    kernel: np.ndarray

    def _otf(self, shape):
        return psf_to_otf(jnp.asarray(self.kernel), shape)[None, :, :, None]

    def forward(self, x):
        return _ifft(_fft(x) * self._otf(x.shape[1:3]))

    def adjoint(self, y):
        return _ifft(_fft(y) * jnp.conj(self._otf(y.shape[1:3])))

    def pinv(self, y, eta: float = 0.0):
        otf = self._otf(y.shape[1:3])
        return _ifft(_fft(y) * jnp.conj(otf) * _safe_inverse(jnp.abs(otf) ** 2, eta))

    def prox(self, y, z, alpha):
        otf = self._otf(y.shape[1:3])
        return _ifft((jnp.conj(otf) * _fft(y) + alpha * _fft(z)) / (jnp.abs(otf) ** 2 + alpha))

    def output_shape(self, shape):
        return tuple(shape)


@dataclasses.dataclass(frozen=True)
class SuperResolution:
    """x -> (k ⊛ x)[::sf, ::sf]: circular blur with `kernel` then sf-fold decimation (USRNet's model)."""

    scale: int
    kernel: np.ndarray

    def _otf(self, shape):
        return psf_to_otf(jnp.asarray(self.kernel), shape)[None, :, :, None]

    def forward(self, x):
        return _ifft(_fft(x) * self._otf(x.shape[1:3]))[:, ::self.scale, ::self.scale]

    def _upsample_zeros(self, y):
        n, h, w, c = y.shape
        s = self.scale
        return jnp.zeros((n, h * s, w * s, c), y.dtype).at[:, ::s, ::s].set(y)

    def adjoint(self, y):
        z = self._upsample_zeros(y)
        return _ifft(_fft(z) * jnp.conj(self._otf(z.shape[1:3])))

    def _block_mean(self, spectrum):
        """Mean over the sf×sf aliases of each low-resolution frequency (the Fourier form of S·Sᵀ-averaging)."""
        n, h, w, c = spectrum.shape
        s = self.scale
        return spectrum.reshape(n, s, h // s, s, w // s, c).mean(axis=(1, 3))

    def _tile(self, lowres):
        return jnp.tile(lowres, (1, self.scale, self.scale, 1))

    def pinv(self, y, eta: float = 0.0):
        """Aᵀ (AAᵀ + η)⁻¹ y; AAᵀ is diagonal in the low-resolution Fourier domain with entries mean |K|²."""
        otf = self._otf((y.shape[1] * self.scale, y.shape[2] * self.scale))
        aat = self._block_mean(jnp.abs(otf) ** 2)
        return self.adjoint(_ifft(_fft(y) * _safe_inverse(aat, eta)))

    def prox(self, y, z, alpha):
        """(AᵀA + αI)⁻¹ r with r = Aᵀy + αz by the Woodbury identity: (r - Aᵀ(AAᵀ + α)⁻¹ A r) / α."""
        otf = self._otf(z.shape[1:3])
        f_r = jnp.conj(otf) * _fft(self._upsample_zeros(y)) + alpha * _fft(z)
        a_r = self._block_mean(otf * f_r)  # Fourier of (A r), up to the 1/sf² of decimation folded in
        inv = self._block_mean(jnp.abs(otf) ** 2) + alpha
        return _ifft((f_r - jnp.conj(otf) * self._tile(a_r / inv)) / alpha)

    def output_shape(self, shape):
        n, h, w, c = shape
        return (n, h // self.scale, w // self.scale, c)


@dataclasses.dataclass(frozen=True)
class Inpainting:
    """x -> m ⊙ x with a binary mask m (H, W) or (H, W, C) (1 = observed); missing pixels read as 0."""

    mask: np.ndarray

    def _mask(self, x):
        m = jnp.asarray(self.mask, jnp.float32)
        return m[None, :, :, None] if m.ndim == 2 else m[None]

    def forward(self, x):
        return self._mask(x) * x

    adjoint = forward

    def pinv(self, y, eta: float = 0.0):
        return self._mask(y) * y / (1.0 + eta)

    def prox(self, y, z, alpha):
        m = self._mask(y)
        return (m * y + alpha * z) / (m + alpha)

    def output_shape(self, shape):
        return tuple(shape)


def bicubic_kernel(scale: int, a: float = -0.5) -> np.ndarray:
    """Separable (4·sf)² bicubic (Keys, a = -0.5) anti-aliasing kernel for ×sf downsampling,
    normalised to sum 1 (the kernel CM4IR builds for 'sr_bicubic')."""

    def keys(x):
        x = abs(x)
        if x <= 1:
            return (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1
        if x < 2:
            return a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a
        return 0.0

    taps = 4 * scale
    k = np.array([keys((i - np.floor(taps / 2) + 0.5) / scale) for i in range(taps)])
    k = k / k.sum()
    return np.outer(k, k).astype(np.float32)


def median_fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """CM4IR's inpainting initialisation: each missing pixel takes the per-channel median of the
    known pixels in a growing window (radius 2, 3, ...) until every pixel is filled.

    image (H, W, C), mask (H, W) with 1 = observed. Runs in numpy (once per image, before sampling).
    """
    filled = np.where(mask[..., None] > 0, image, np.nan).astype(np.float64)
    radius = 1
    h, w = mask.shape
    while np.isnan(filled[..., 0]).any():
        previous = filled.copy()
        radius += 1
        for r, c in zip(*np.nonzero(np.isnan(previous[..., 0]))):
            patch = previous[max(0, r - radius):min(h, r + radius + 1), max(0, c - radius):min(w, c + radius + 1)]
            patch = patch.reshape(-1, patch.shape[-1])
            if np.isnan(patch[:, 0]).all():
                continue
            filled[r, c] = _lower_nanmedian(patch)
    return filled.astype(np.float32)


def _lower_nanmedian(values: np.ndarray) -> np.ndarray:
    """torch.nanmedian: the lower of the two middle values for an even count (not their mean)."""
    out = []
    for column in values.T:
        known = np.sort(column[~np.isnan(column)])
        out.append(known[(len(known) - 1) // 2])
    return np.array(out)


def data_step_gradient(operator, x, y):
    """Aᵀ(Ax - y): the gradient of ½||y - Ax||², equal to RDMD's `grad_and_value` ∇||y - Ax|| · ||y - Ax||."""
    return operator.adjoint(operator.forward(x) - y)


jax.tree_util.register_static(Blur)
jax.tree_util.register_static(SuperResolution)
jax.tree_util.register_static(Inpainting)
