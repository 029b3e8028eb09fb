"""The mean-scale hyperprior codec (Minnen, Ballé, Toderici, "Joint Autoregressive and Hierarchical Priors for
Learned Image Compression", NeurIPS 2018, without the context model), as CompressAI 1.2.8's
`compressai.models.google.MeanScaleHyperprior(N, M)`:

    y = g_a(x)            4 × [5×5 conv stride 2], GDN between
    z = h_a(y)            3×3 conv, LeakyReLU, 5×5 conv s2, LeakyReLU, 5×5 conv s2
    ẑ, p(ẑ)               factorized entropy bottleneck (jaxir.codec.entropy.EntropyBottleneck)
    (σ, μ) = h_s(ẑ)       5×5 deconv s2, LeakyReLU, 5×5 deconv s2 (to 3M/2), LeakyReLU, 3×3 conv to 2M
    ŷ, p(ŷ | ẑ)           Gaussian conditional N(μ, σ²) convolved with U(-½, ½)
    x̂ = g_s(ŷ)            4 × [5×5 transposed conv stride 2], IGDN between

Rate R = −log₂ p(ŷ | ẑ) − log₂ p(ẑ) bits; the rate–distortion objective is λ·255²·MSE + R/(#pixels) (CompressAI
RateDistortionLoss). Submodule names follow CompressAI's state dict (g_a.0 -> g_a_0), so
`params_from_compressai` converts one by rule. Subclasses replace `synthesise` (the all-in-one codec restores
while decoding). The loop's train step sows the rate ('rate_bits') and the bottleneck's auxiliary loss
('entropy_aux') into the 'aux' collection for the loss terms 'rate' and 'aux' (jaxir.losses).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxir.codec.entropy import GDN, EntropyBottleneck, GaussianConditional
from jaxir.models.blocks import Conv2d, ConvTranspose2d, iohw_to_hwio, oihw_to_hwio

AUX_COLLECTION = "aux"  # the collection jaxir.losses reads sown training outputs from (models sit below it)
RATE_BITS = "rate_bits"
ENTROPY_AUX = "entropy_aux"
DOWNSAMPLING = 64  # g_a halves 4 times, h_a twice more: inputs are padded to a multiple of 64


def conv(features: int, kernel: int = 5, stride: int = 2, name: str | None = None, dtype: Any = jnp.float32):
    return Conv2d(features, kernel, stride=stride, padding=kernel // 2, dtype=dtype, name=name)


def deconv(features: int, kernel: int = 5, stride: int = 2, name: str | None = None, dtype: Any = jnp.float32):
    return ConvTranspose2d(features, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1,
                           dtype=dtype, name=name)


def leaky_relu(x):
    return jax.nn.leaky_relu(x, 0.01)


def bits(likelihoods: jax.Array) -> jax.Array:
    """−Σ log₂ p."""
    return -jnp.sum(jnp.log(likelihoods)) / jnp.log(2.0)


class MeanScaleHyperprior(nn.Module):
    """The codec (module docstring). `__call__(x, train)` returns x̂ (the loop's restoration output); `forward`
    returns x̂ and the likelihoods as CompressAI's forward does."""

    N: int = 128
    M: int = 192
    out_channels: int = 3
    dtype: Any = jnp.float32

    # Layers that are torch ConvTranspose2d (their weights are stored in, out, kh, kw).
    _transposed = ("g_s_0", "g_s_2", "g_s_4", "g_s_6", "h_s_0", "h_s_2")

    @property
    def inp_channels(self) -> int:
        return 3

    def setup(self):
        n, m, dt = self.N, self.M, self.dtype
        self.g_a_0, self.g_a_1 = conv(n, dtype=dt), GDN(dtype=dt)
        self.g_a_2, self.g_a_3 = conv(n, dtype=dt), GDN(dtype=dt)
        self.g_a_4, self.g_a_5 = conv(n, dtype=dt), GDN(dtype=dt)
        self.g_a_6 = conv(m, dtype=dt)
        self.h_a_0, self.h_a_2, self.h_a_4 = conv(n, 3, 1, dtype=dt), conv(n, dtype=dt), conv(n, dtype=dt)
        self.h_s_0, self.h_s_2 = deconv(m, dtype=dt), deconv(m * 3 // 2, dtype=dt)
        self.h_s_4 = conv(m * 2, 3, 1, dtype=dt)
        self.entropy_bottleneck = EntropyBottleneck(n)
        self.gaussian_conditional = GaussianConditional()
        self.setup_synthesis()

    def setup_synthesis(self):
        n, dt = self.N, self.dtype
        self.g_s_0, self.g_s_1 = deconv(n, dtype=dt), GDN(inverse=True, dtype=dt)
        self.g_s_2, self.g_s_3 = deconv(n, dtype=dt), GDN(inverse=True, dtype=dt)
        self.g_s_4, self.g_s_5 = deconv(n, dtype=dt), GDN(inverse=True, dtype=dt)
        self.g_s_6 = deconv(self.out_channels, dtype=dt)

    # The four transforms; the bitstream coder calls them one by one (jaxir.codec.bitstream).
    def analyse(self, x):
        x = self.g_a_1(self.g_a_0(x))
        x = self.g_a_3(self.g_a_2(x))
        x = self.g_a_5(self.g_a_4(x))
        return self.g_a_6(x).astype(jnp.float32)

    def hyper_analyse(self, y):
        y = leaky_relu(self.h_a_0(y))
        return self.h_a_4(leaky_relu(self.h_a_2(y))).astype(jnp.float32)

    def hyper_synthesise(self, z_hat):
        """ẑ -> (σ, μ)."""
        p = leaky_relu(self.h_s_0(z_hat))
        p = self.h_s_4(leaky_relu(self.h_s_2(p))).astype(jnp.float32)
        scales, means = jnp.split(p, 2, axis=-1)
        return scales, means

    def synthesise(self, y_hat):
        x = self.g_s_1(self.g_s_0(y_hat))
        x = self.g_s_3(self.g_s_2(x))
        x = self.g_s_5(self.g_s_4(x))
        return self.g_s_6(x)

    def encode(self, x):
        """x -> (y, z), the encoder side of the bitstream coder."""
        y = self.analyse(x)
        return y, self.hyper_analyse(y)

    def forward(self, x, train: bool = False):
        y, z = self.encode(x)
        z_hat, z_likelihoods = self.entropy_bottleneck(z, train=train)
        scales, means = self.hyper_synthesise(z_hat)
        y_hat, y_likelihoods = self.gaussian_conditional(y, scales, means, train=train)
        x_hat = self.synthesise(y_hat.astype(self.dtype))
        return {"x_hat": x_hat, "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    def __call__(self, x, train: bool = False):
        out = self.forward(x, train=train)
        # Rate and the bottleneck's auxiliary loss for the loss terms 'rate' and 'aux' (jaxir.losses).
        self.sow(AUX_COLLECTION, RATE_BITS, bits(out["likelihoods"]["y"]) + bits(out["likelihoods"]["z"]))
        self.sow(AUX_COLLECTION, ENTROPY_AUX, self.entropy_bottleneck.aux_loss())
        return out["x_hat"]

    # What the range coder reads of the bottleneck.
    def bottleneck_medians(self):
        return self.entropy_bottleneck.medians()

    def bottleneck_quantiles(self):
        return self.entropy_bottleneck.quantiles

    def bottleneck_likelihood(self, values):
        """Unbounded p and the logits of the bin edges at values (C, 1, N), no gradient."""
        return self.entropy_bottleneck.likelihood(values, stop_gradient=True)


_BOTTLENECK_RENAMES = {"matrices": "matrix", "biases": "bias", "factors": "factor"}
# Buffers CompressAI keeps for its own range coder (CDF tables, scale table, the aux target) and its bound and
# reparametrisation constants: jaxir derives them from the parameters or holds them as constants.
_BUFFERS = ("_offset", "_quantized_cdf", "_cdf_length", "target", "scale_table", "scale_bound", "bound", "pedestal")


def params_from_compressai(state_dict: dict, module: nn.Module, example: jax.Array) -> dict:
    """A CompressAI state dict (numpy arrays) -> this module's params, by name; every parameter must be given."""
    shapes = jax.eval_shape(lambda: module.init({"params": jax.random.key(0)}, example))["params"]
    params: dict = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        if parts[-1] in _BUFFERS:
            continue
        array = np.asarray(value, np.float32)
        if parts[0] == "entropy_bottleneck":
            # 'matrices.0' -> 'matrix0'; 'quantiles' stays
            path = ("entropy_bottleneck", _BOTTLENECK_RENAMES.get(parts[1], parts[1]) + "".join(parts[2:]))
        else:
            layer, leaf = "_".join(parts[:2]), parts[-1]
            if leaf == "weight":
                array = iohw_to_hwio(array) if layer in module._transposed else oihw_to_hwio(array)
                leaf = "kernel"
            path = (layer, leaf)
        target = shapes
        for p in path:
            if p not in target:
                raise ValueError(f"{key}: no parameter {'/'.join(path)} in {type(module).__name__}")
            target = target[p]
        if tuple(target.shape) != array.shape:
            raise ValueError(f"{key}: shape {array.shape} does not fit {'/'.join(path)} {target.shape}")
        params.setdefault(path[0], {})[path[1]] = jnp.asarray(array)
    expected = {tuple(k.key for k in kp) for kp, _ in jax.tree_util.tree_flatten_with_path(shapes)[0]}
    missing = expected - {(a, b) for a, leaves in params.items() for b in leaves}
    if missing:
        raise ValueError(f"parameters the state dict does not give: {sorted(missing)}")
    return params
