"""Real bitstreams of a hyperprior codec: range coding with `constriction` and the .bin container.

Encoding an image x (HWC, [0, 1]; reflect-padded to a multiple of 64 at the bottom/right):
  1. y = g_a(x), z = h_a(y).
  2. Hyper-latent: symbols s_z = round(z − m_c) around each channel's median m_c. Channel c is coded with the
     factorized model's pmf over the offsets k ∈ [−a_c, b_c] (a_c = ⌈m_c − q_0⌉, b_c = ⌈q_2 − m_c⌉ from the
     learned quantiles, as CompressAI's EntropyBottleneck.update) plus one escape bucket holding the tails'
     mass c(m_c − a_c − ½) + 1 − c(m_c + b_c + ½).
  3. ẑ = s_z + m; (σ, μ) = h_s(ẑ). Latent: symbols s_y = round(y − μ), each coded with the zero-mean Gaussian
     pmf p(k) = Φ((k + ½)/σ_i) − Φ((k − ½)/σ_i) over k ∈ [−n_i, n_i], σ_i the scale-table entry picked by
     `build_indexes(σ)`, n_i = ⌈σ_i · Φ⁻¹(1 − tail/2)⌉, plus an escape bucket of the remaining mass.
  4. A symbol outside its support is coded as the escape bucket, then its value with a uniform model over
     [−2^15, 2^15) (CompressAI's bypass coding, simplified).
The decoder repeats steps 2–3 from the stream: ẑ, then (σ, μ) = h_s(ẑ) with the same jitted function, the
symbols s_y, ŷ = s_y + μ and x̂ = g_s(ŷ). Decoding therefore reproduces the encoder's ŷ bit for bit, and x̂ is
the model's forward on rounded latents (tests/test_codec.py).

Container (little-endian): b'JXIRC1', u16 name length + model name (utf-8), u16 height, u16 width (of the image
before padding), u16×3 shape of ẑ (h, w, c), u16×3 shape of ŷ, then u32 length + the hyper-latent stream and
u32 length + the latent stream (constriction's 32-bit words). The weights are not in the file: decompression
needs the same model and weights.
"""
from __future__ import annotations

import dataclasses
import math
import struct
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.special

from jaxir.codec.entropy import build_indexes, scale_table

MAGIC = b"JXIRC1"
_ESCAPE_RANGE = 1 << 16  # escaped values lie in [-2^15, 2^15)
TAIL_MASS = 1e-9


def _constriction():
    import constriction

    return constriction


@dataclasses.dataclass
class Encoded:
    name: str
    height: int
    width: int
    z_shape: tuple[int, int, int]
    y_shape: tuple[int, int, int]
    z_string: bytes
    y_string: bytes

    def to_bytes(self) -> bytes:
        name = self.name.encode()
        head = MAGIC + struct.pack("<H", len(name)) + name
        head += struct.pack("<HH3H3H", self.height, self.width, *self.z_shape, *self.y_shape)
        return head + struct.pack("<I", len(self.z_string)) + self.z_string + \
            struct.pack("<I", len(self.y_string)) + self.y_string

    @classmethod
    def from_bytes(cls, data: bytes) -> "Encoded":
        if not data.startswith(MAGIC):
            raise ValueError("not a jaxir codec file (bad magic)")
        at = len(MAGIC)
        (n,) = struct.unpack_from("<H", data, at)
        at += 2
        name = data[at:at + n].decode()
        at += n
        fields = struct.unpack_from("<HH3H3H", data, at)
        at += struct.calcsize("<HH3H3H")
        strings = []
        for _ in range(2):
            (length,) = struct.unpack_from("<I", data, at)
            at += 4
            strings.append(data[at:at + length])
            at += length
        if at != len(data):
            raise ValueError(f"codec file has {len(data) - at} trailing bytes")
        return cls(name, fields[0], fields[1], tuple(fields[2:5]), tuple(fields[5:8]), *strings)


class Coder:
    """Range coding of one hyperprior model (module + variables); `compress(image)` -> bytes,
    `decompress(bytes)` -> image. The model provides `encode`, `hyper_synthesise`, `synthesise`,
    `bottleneck_quantiles` and `bottleneck_likelihood` (jaxir.codec.hyperprior.MeanScaleHyperprior)."""

    def __init__(self, model: Any, variables: dict, name: str, multiple: int = 64):
        self.model, self.variables, self.name, self.multiple = model, variables, name, multiple
        self._encode = jax.jit(lambda v, x: model.apply(v, x, method="encode"))
        self._hyper = jax.jit(lambda v, z: model.apply(v, z, method="hyper_synthesise"))
        self._synth = jax.jit(lambda v, y: model.apply(v, y, method="synthesise"))
        self._z_tables = self._bottleneck_tables()
        self._y_tables = self._gaussian_tables()

    # -- probability tables --------------------------------------------------------------------------
    def _bottleneck_tables(self):
        quantiles = np.asarray(self.model.apply(self.variables, method="bottleneck_quantiles"), np.float32)
        medians = quantiles[:, 0, 1]
        minima = np.maximum(np.ceil(medians - quantiles[:, 0, 0]), 0).astype(np.int64)
        maxima = np.maximum(np.ceil(quantiles[:, 0, 2] - medians), 0).astype(np.int64)
        length = int((minima + maxima + 1).max())
        samples = medians[:, None] - minima[:, None] + np.arange(length)[None, :]
        pmf, lower, upper = self.model.apply(self.variables, jnp.asarray(samples[:, None, :], jnp.float32),
                                             method="bottleneck_likelihood")
        pmf, lower, upper = (np.asarray(a, np.float64)[:, 0, :] for a in (pmf, lower, upper))
        tables = []
        for c in range(len(medians)):
            n = int(minima[c] + maxima[c] + 1)
            tail = scipy.special.expit(lower[c, 0]) + scipy.special.expit(-upper[c, n - 1])
            tables.append((int(minima[c]), np.append(np.maximum(pmf[c, :n], 0.0), tail)))
        return medians, tables

    def _gaussian_tables(self):
        table = scale_table()
        multiplier = -scipy.special.ndtri(TAIL_MASS / 2)
        tables = []
        for scale in table.astype(np.float64):
            n = int(math.ceil(scale * multiplier))
            k = np.arange(-n, n + 1, dtype=np.float64)
            pmf = scipy.special.ndtr((k + 0.5) / scale) - scipy.special.ndtr((k - 0.5) / scale)
            tables.append((n, np.append(pmf, max(1.0 - pmf.sum(), 0.0))))
        return table, tables

    # -- symbol coding with escapes --------------------------------------------------------------------
    @staticmethod
    def _encode_groups(groups, symbols):
        """groups: [(offset, probabilities, flat positions)]; symbols: flat int array."""
        c = _constriction()
        encoder = c.stream.queue.RangeEncoder()
        escaped = []
        for offset, probs, positions in groups:
            if not len(positions):
                continue
            values = symbols[positions] + offset
            escape = len(probs) - 1
            outside = (values < 0) | (values >= escape)
            escaped.append(symbols[positions][outside])
            values = np.where(outside, escape, values).astype(np.int32)
            encoder.encode(values, c.stream.model.Categorical(probs, perfect=False))
        escaped = np.concatenate(escaped) if escaped else np.zeros(0, np.int64)
        if len(escaped):
            if escaped.min() < -_ESCAPE_RANGE // 2 or escaped.max() >= _ESCAPE_RANGE // 2:
                raise ValueError("a latent symbol exceeds the coder's range ±2^15")
            encoder.encode((escaped + _ESCAPE_RANGE // 2).astype(np.int32), c.stream.model.Uniform(_ESCAPE_RANGE))
        return encoder.get_compressed().astype("<u4").tobytes()

    @staticmethod
    def _decode_groups(groups, size, data):
        c = _constriction()
        decoder = c.stream.queue.RangeDecoder(np.frombuffer(data, "<u4").astype(np.uint32))
        symbols = np.zeros(size, np.int64)
        pending = []
        for offset, probs, positions in groups:
            if not len(positions):
                continue
            values = decoder.decode(c.stream.model.Categorical(probs, perfect=False), len(positions)).astype(np.int64)
            escape = len(probs) - 1
            symbols[positions] = values - offset
            pending.append(positions[values == escape])
        pending = np.concatenate(pending) if pending else np.zeros(0, np.int64)
        if len(pending):
            symbols[pending] = decoder.decode(c.stream.model.Uniform(_ESCAPE_RANGE), len(pending)).astype(
                np.int64) - _ESCAPE_RANGE // 2
        return symbols

    def _z_groups(self, shape):
        h, w, ch = shape
        positions = np.arange(h * w * ch).reshape(h, w, ch)
        return [(offset, probs, positions[..., c].ravel()) for c, (offset, probs) in enumerate(self._z_tables[1])]

    def _y_groups(self, indexes):
        flat = indexes.ravel()
        table_groups = self._y_tables[1]
        return [(n, probs, np.flatnonzero(flat == i)) for i, (n, probs) in enumerate(table_groups)]

    # -- public --------------------------------------------------------------------------------------
    def _pad(self, image: np.ndarray) -> jax.Array:
        from jaxir.train.step import pad_for_model

        return pad_for_model(jnp.asarray(image, jnp.float32)[None], self.multiple, self.multiple)

    def encode_latents(self, image: np.ndarray):
        """(symbols of z, ẑ, symbols of y, ŷ, scale indexes) of an HWC image, the encoder side."""
        y, z = self._encode(self.variables, self._pad(image))
        medians = self._z_tables[0]
        z_sym = np.round(np.asarray(z[0]) - medians).astype(np.int64)
        z_hat = jnp.asarray((z_sym + medians)[None], jnp.float32)
        scales, means = self._hyper(self.variables, z_hat)
        y_sym = np.round(np.asarray(y[0] - means[0])).astype(np.int64)
        y_hat = jnp.asarray(y_sym[None], jnp.float32) + means
        return z_sym, z_hat, y_sym, y_hat, build_indexes(np.asarray(scales[0]), self._y_tables[0])

    def compress(self, image: np.ndarray) -> bytes:
        h, w = image.shape[:2]
        if max(h, w) >= 1 << 16:
            raise ValueError(f"image {h}x{w} is too large for the container (sides < 65536)")
        z_sym, _, y_sym, _, indexes = self.encode_latents(image)
        z_string = self._encode_groups(self._z_groups(z_sym.shape), z_sym.ravel())
        y_string = self._encode_groups(self._y_groups(indexes), y_sym.ravel())
        return Encoded(self.name, h, w, tuple(z_sym.shape), tuple(y_sym.shape), z_string, y_string).to_bytes()

    def decompress(self, data: bytes) -> np.ndarray:
        """bytes -> the decoded HWC float image (unclipped model output, cropped to the original size)."""
        encoded = Encoded.from_bytes(data)
        if encoded.name != self.name:
            raise ValueError(f"the file was written by model {encoded.name!r}, not {self.name!r}")
        z_sym = self._decode_groups(self._z_groups(encoded.z_shape), int(np.prod(encoded.z_shape)),
                                    encoded.z_string).reshape(encoded.z_shape)
        z_hat = jnp.asarray((z_sym + self._z_tables[0])[None], jnp.float32)
        scales, means = self._hyper(self.variables, z_hat)
        indexes = build_indexes(np.asarray(scales[0]), self._y_tables[0])
        if indexes.shape != tuple(encoded.y_shape):
            raise ValueError(f"latent shape {indexes.shape} from the hyper-latent does not match the header's "
                             f"{encoded.y_shape}")
        y_sym = self._decode_groups(self._y_groups(indexes), indexes.size, encoded.y_string).reshape(indexes.shape)
        y_hat = jnp.asarray(y_sym[None], jnp.float32) + means
        x_hat = self._synth(self.variables, y_hat)
        return np.asarray(x_hat[0], np.float32)[:encoded.height, :encoded.width]

    def reconstruct(self, image: np.ndarray) -> np.ndarray:
        """The encoder-side x̂ (what `decompress(compress(image))` returns), without entropy coding."""
        _, _, _, y_hat, _ = self.encode_latents(image)
        h, w = image.shape[:2]
        return np.asarray(self._synth(self.variables, y_hat)[0], np.float32)[:h, :w]


def bits_per_pixel(data: bytes, height: int, width: int) -> float:
    return 8.0 * len(data) / (height * width)
