"""Entropy models and GDN of learned image codecs, ported from CompressAI 1.2.8 (InterDigitalInc/CompressAI:
compressai/layers/gdn.py, compressai/ops/parametrizers.py, compressai/ops/bound_ops.py,
compressai/entropy_models/entropy_models.py). Parameters keep CompressAI's stored (reparametrised) form, so a
CompressAI state dict converts tensor for tensor (tests/test_codec.py proves each piece with random weights).

Quantisation (CompressAI `quantize`): in training, additive uniform noise
    ỹ = y + u,  u ~ U(-1/2, 1/2)
stands in for rounding; otherwise values are rounded around an offset μ (the Gaussian means, the bottleneck's
medians):  ŷ = round(y − μ) + μ. The integer symbols round(y − μ) are what the range coder writes.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# -- LowerBound: max(x, b) whose gradient still flows where it would push x up ------------------------------


@jax.custom_vjp
def lower_bound(x: jax.Array, bound: float) -> jax.Array:
    """max(x, bound); the gradient passes where x >= bound or where it points upward (CompressAI LowerBound)."""
    return jnp.maximum(x, jnp.asarray(bound, x.dtype))


def _lower_bound_fwd(x, bound):
    return lower_bound(x, bound), (x, bound)


def _lower_bound_bwd(residuals, g):
    x, bound = residuals
    passes = (x >= bound) | (g < 0)
    return jnp.where(passes, g, 0.0).astype(g.dtype), None


lower_bound.defvjp(_lower_bound_fwd, _lower_bound_bwd)

_REPARAM_OFFSET = 2.0 ** -18
_PEDESTAL = _REPARAM_OFFSET ** 2


def nonnegative(raw: jax.Array, minimum: float = 0.0) -> jax.Array:
    """CompressAI NonNegativeParametrizer: v = max(r, sqrt(minimum + p))^2 - p with pedestal p = 2^-36."""
    return lower_bound(raw, math.sqrt(minimum + _PEDESTAL)) ** 2 - _PEDESTAL


def nonnegative_init(value: jax.Array) -> jax.Array:
    """The stored r of a value v: sqrt(max(v + p, p))."""
    return jnp.sqrt(jnp.maximum(value + _PEDESTAL, _PEDESTAL))


class GDN(nn.Module):
    """Generalized divisive normalisation (Ballé, Laparra, Simoncelli 2016):

        y_i = x_i / sqrt(β_i + Σ_j γ_ij x_j²)      (GDN)
        y_i = x_i · sqrt(β_i + Σ_j γ_ij x_j²)      (IGDN, `inverse=True`)

    β and γ are stored reparametrised (`nonnegative`), β bounded below by `beta_min`; initial β = 1,
    γ = `gamma_init` · I. Parameters 'beta' (C,) and 'gamma' (C, C) as CompressAI stores them.
    """

    inverse: bool = False
    beta_min: float = 1e-6
    gamma_init: float = 0.1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        beta_raw = self.param("beta", lambda key, shape: nonnegative_init(jnp.ones(shape)), (c,))
        gamma_raw = self.param("gamma", lambda key, shape: nonnegative_init(self.gamma_init * jnp.eye(shape[0])),
                               (c, c))
        beta = nonnegative(beta_raw, self.beta_min)
        gamma = nonnegative(gamma_raw)
        x = x.astype(jnp.float32)
        norm = beta + jnp.einsum("...j,ij->...i", x * x, gamma, precision=jax.lax.Precision.HIGHEST)
        out = x * (jnp.sqrt(norm) if self.inverse else jax.lax.rsqrt(norm))
        return out.astype(self.dtype)


def uniform_noise(key: jax.Array, x: jax.Array) -> jax.Array:
    return x + jax.random.uniform(key, x.shape, jnp.float32, -0.5, 0.5).astype(x.dtype)


def quantize(x: jax.Array, offset: jax.Array | float = 0.0) -> jax.Array:
    """round(x − μ) + μ (CompressAI 'dequantize' mode; round half to even as torch.round)."""
    return jnp.round(x - offset) + offset


class EntropyBottleneck(nn.Module):
    """The non-parametric factorized density of Ballé, Minnen, Singh, Hwang, Johnston, "Variational image
    compression with a scale hyperprior" (ICLR 2018, appendix 6.1), one univariate density per channel.

    Its cumulative is a small per-channel network, with K = len(filters) + 1 layers:
        f_k(x) = g_k(H^(k) x + b^(k)),  g_k(x) = x + tanh(a^(k)) ⊙ tanh(x)  (k < K),  g_K = identity,
        c(x) = sigmoid(f_K ∘ … ∘ f_1(x)),  H^(k) = softplus(matrix_k) ≥ 0 keeps c monotone.
    The likelihood of a quantised (or noisy) value is the mass of its unit bin:
        p(ẑ) = c(ẑ + 1/2) − c(ẑ − 1/2), bounded below by `likelihood_bound`.
    'quantiles' (C, 1, 3) learn the tail points and median of each channel: the auxiliary loss
        L_aux = Σ |logits(q) − (−t, 0, t)|,  t = log(2/tail_mass − 1)
    (gradients reach only the quantiles) drives c(q_0) = tail_mass/2, c(q_1) = 1/2, c(q_2) = 1 − tail_mass/2;
    the range coder's support per channel is [q_0, q_2] around the median q_1.
    Parameters 'matrix{k}' (C, f_out, f_in), 'bias{k}' (C, f_out, 1), 'factor{k}' (C, f_out, 1), 'quantiles':
    CompressAI's `_matrix{k}`, `_bias{k}`, `_factor{k}`, `quantiles`.
    """

    channels: int
    filters: Sequence[int] = (3, 3, 3, 3)
    init_scale: float = 10.0
    tail_mass: float = 1e-9
    likelihood_bound: float = 1e-9

    def setup(self):
        filters = (1, *self.filters, 1)
        scale = self.init_scale ** (1.0 / (len(self.filters) + 1))
        c = self.channels
        matrices, biases, factors = [], [], []
        for k in range(len(self.filters) + 1):
            init = float(np.log(np.expm1(1.0 / scale / filters[k + 1])))
            matrices.append(self.param(f"matrix{k}", lambda key, shape, v=init: jnp.full(shape, v, jnp.float32),
                                       (c, filters[k + 1], filters[k])))
            biases.append(self.param(f"bias{k}", lambda key, shape: jax.random.uniform(key, shape, jnp.float32,
                                                                                       -0.5, 0.5),
                                     (c, filters[k + 1], 1)))
            if k < len(self.filters):
                factors.append(self.param(f"factor{k}", nn.initializers.zeros, (c, filters[k + 1], 1)))
        self.matrices, self.biases, self.factors = matrices, biases, factors
        self.quantiles = self.param(
            "quantiles", lambda key, shape: jnp.tile(jnp.asarray([-self.init_scale, 0.0, self.init_scale],
                                                                 jnp.float32), (shape[0], 1, 1)), (c, 1, 3))

    def logits_cumulative(self, x: jax.Array, stop_gradient: bool = False) -> jax.Array:
        """The cumulative's logits of x (C, 1, N) -> (C, 1, N)."""
        logits = x
        hp = jax.lax.Precision.HIGHEST
        for k, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            if stop_gradient:
                matrix, bias = jax.lax.stop_gradient(matrix), jax.lax.stop_gradient(bias)
            logits = jnp.matmul(jax.nn.softplus(matrix), logits, precision=hp) + bias
            if k < len(self.factors):
                factor = self.factors[k]
                if stop_gradient:
                    factor = jax.lax.stop_gradient(factor)
                logits = logits + jnp.tanh(factor) * jnp.tanh(logits)
        return logits

    def likelihood(self, x: jax.Array, stop_gradient: bool = False):
        """(p, lower logits, upper logits) of values x (C, 1, N), unbounded."""
        lower = self.logits_cumulative(x - 0.5, stop_gradient)
        upper = self.logits_cumulative(x + 0.5, stop_gradient)
        return jax.nn.sigmoid(upper) - jax.nn.sigmoid(lower), lower, upper

    def medians(self) -> jax.Array:
        return self.quantiles[:, 0, 1]

    def aux_loss(self) -> jax.Array:
        logits = self.logits_cumulative(self.quantiles, stop_gradient=True)
        t = math.log(2.0 / self.tail_mass - 1.0)
        return jnp.sum(jnp.abs(logits - jnp.asarray([-t, 0.0, t], jnp.float32)))

    def __call__(self, z: jax.Array, train: bool = False):
        """NHWC z -> (ẑ, p(ẑ)): noisy in training (a 'noise' RNG), rounded around the medians otherwise."""
        z = z.astype(jnp.float32)
        if train:
            z_hat = uniform_noise(self.make_rng("noise"), z)
        else:
            z_hat = quantize(z, jax.lax.stop_gradient(self.medians()))
        values = jnp.moveaxis(z_hat, -1, 0).reshape(self.channels, 1, -1)
        p, _, _ = self.likelihood(values)
        if self.likelihood_bound > 0:
            p = lower_bound(p, self.likelihood_bound)
        p = jnp.moveaxis(p.reshape(self.channels, *z.shape[:-1]), 0, -1)
        return z_hat, p


# -- Gaussian conditional --------------------------------------------------------------------------------

SCALE_BOUND = 0.11


def scale_table(minimum: float = 0.11, maximum: float = 256.0, levels: int = 64) -> np.ndarray:
    """CompressAI get_scale_table: `levels` scales spaced evenly in log between `minimum` and `maximum`."""
    return np.exp(np.linspace(math.log(minimum), math.log(maximum), levels)).astype(np.float32)


def standardized_cumulative(x: jax.Array) -> jax.Array:
    """Φ(x) = ½ erfc(−x/√2) (erfc keeps the tails precise)."""
    return 0.5 * jax.scipy.special.erfc(-x * (2.0 ** -0.5))


def gaussian_likelihood(y_hat: jax.Array, scales: jax.Array, means: jax.Array | None = None,
                        scale_bound: float = SCALE_BOUND, likelihood_bound: float = 1e-9) -> jax.Array:
    """p(ŷ | μ, σ) = Φ((½ − |ŷ − μ|)/σ) − Φ((−½ − |ŷ − μ|)/σ), σ ≥ `scale_bound`, p ≥ `likelihood_bound`
    (the Gaussian convolved with a unit box, evaluated at the quantised value; Ballé et al. 2018 eq. 11,
    Minnen et al. 2018 with means). Symmetric form in |ŷ − μ| as CompressAI for precision."""
    values = jnp.abs(y_hat - (0.0 if means is None else means))
    scales = lower_bound(scales, scale_bound)
    p = standardized_cumulative((0.5 - values) / scales) - standardized_cumulative((-0.5 - values) / scales)
    return lower_bound(p, likelihood_bound) if likelihood_bound > 0 else p


class GaussianConditional(nn.Module):
    """ŷ and p(ŷ) of y under N(μ, σ²) (σ, μ from the hyper-synthesis); noise in training, round(y − μ) + μ
    otherwise. The range coder quantises σ to `scale_table()` (`build_indexes`)."""

    scale_bound: float = SCALE_BOUND
    likelihood_bound: float = 1e-9

    def __call__(self, y, scales, means=None, train: bool = False):
        y = y.astype(jnp.float32)
        y_hat = uniform_noise(self.make_rng("noise"), y) if train else quantize(y, 0.0 if means is None else means)
        return y_hat, gaussian_likelihood(y_hat, scales, means, self.scale_bound, self.likelihood_bound)


def build_indexes(scales: np.ndarray, table: np.ndarray, scale_bound: float = SCALE_BOUND) -> np.ndarray:
    """Index of the smallest table scale >= σ (σ bounded below, the last entry for larger σ): CompressAI's
    `build_indexes`."""
    scales = np.maximum(np.asarray(scales, np.float32), np.float32(scale_bound))
    return np.minimum(np.searchsorted(table[:-1], scales, side="left"), len(table) - 1).astype(np.int32)
