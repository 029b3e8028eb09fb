"""The all-in-one codec: real bitstreams round-trip to the model's forward on rounded latents, the file size is
the reported bpp, the coded size follows the model's own rate estimate, and `jaxir compress`/`decompress`."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxir.codec.bitstream import Coder, Encoded, bits_per_pixel
from jaxir.models.allinone_codec import AllInOneCodec
from jaxir.train.step import pad_for_model

TINY = dict(N=8, M=12, stage_blocks=(1, 1, 1), num_heads=2, window=4, representation_size=4, representation_dim=4)


@functools.lru_cache(maxsize=1)
def tiny_codec():
    model = AllInOneCodec(**TINY)
    params = jax.jit(model.init)({"params": jax.random.key(0)}, jnp.zeros((1, 64, 64, 3)))["params"]
    # Move the bottleneck's medians off zero and widen y so the symbols are not all zero.
    eb = dict(params["entropy_bottleneck"])
    eb["quantiles"] = eb["quantiles"] + jnp.asarray([[[0.0, 0.3, 0.0]]])
    params = {**params, "entropy_bottleneck": eb}
    for layer, gain in (("g_a_6", 30.0), ("h_a_4", 20.0)):
        params[layer] = {**params[layer], "kernel": params[layer]["kernel"] * gain}
    return model, {"params": params}


def _photo(h=70, w=90):
    from data_pipelines.sources import BundledPhotos

    return np.asarray(BundledPhotos(split="train")[0]["target"], np.float32)[:h, :w] / 255.0


@pytest.mark.slow  # compiles the codec's forward beside its coder's three transforms
def test_round_trip_reproduces_forward_and_bpp_is_file_size(tmp_path):
    model, variables = tiny_codec()
    image = _photo()
    coder = Coder(model, variables, "allinone_codec")
    z_sym, _, y_sym, _, _ = coder.encode_latents(image)
    assert np.count_nonzero(y_sym) > 50 and np.count_nonzero(z_sym) > 3  # something to code
    data = coder.compress(image)
    path = tmp_path / "x.bin"
    path.write_bytes(data)
    decoded = coder.decompress(path.read_bytes())
    assert decoded.shape == image.shape
    np.testing.assert_array_equal(decoded, coder.reconstruct(image))  # bit-exact with the encoder side
    forward = model.apply(variables, pad_for_model(jnp.asarray(image)[None], 64, 64), method="forward")
    np.testing.assert_allclose(decoded, np.asarray(forward["x_hat"][0, :70, :90]), atol=1e-5)
    assert bits_per_pixel(data, 70, 90) == 8 * path.stat().st_size / (70 * 90)
    # The streams cost about what the model's likelihoods say (the coder uses the model's distributions).
    estimate = -sum(float(jnp.sum(jnp.log2(p))) for p in forward["likelihoods"].values())
    encoded = Encoded.from_bytes(data)
    coded = 8 * (len(encoded.z_string) + len(encoded.y_string))
    assert 0.8 * estimate <= coded <= 1.05 * estimate + 64 + 8 * 8  # 32-bit word padding per stream


def test_escape_symbols_round_trip():
    """Symbols far outside the tables' supports go through the escape path and come back exactly."""
    model, variables = tiny_codec()
    coder = Coder(model, variables, "allinone_codec")
    n, probs = coder._y_tables[1][0]
    symbols = np.array([0, 1, -1, n + 5, -(n + 300), 2000, 0, -1], np.int64)
    groups = [(n, probs, np.arange(len(symbols)))]
    data = coder._encode_groups(groups, symbols)
    np.testing.assert_array_equal(coder._decode_groups(groups, len(symbols), data), symbols)


def test_container_rejects_wrong_model():
    model, variables = tiny_codec()
    coder = Coder(model, variables, "allinone_codec")
    data = coder.compress(_photo(64, 64))
    with pytest.raises(ValueError, match="written by model"):
        Coder(model, variables, "other").decompress(data)
    with pytest.raises(ValueError, match="magic"):
        coder.decompress(b"nope" + data)


@pytest.mark.slow  # builds and compiles the codec twice more (two CLI processes' worth)
def test_cli_compress_decompress(tmp_path, capsys):
    from jaxir.cli import main
    from jaxir.io import save_weights, write_image

    model, variables = tiny_codec()
    weights = tmp_path / "codec.msgpack"
    save_weights(weights, "allinone_codec", dict(TINY, stage_blocks=[1, 1, 1]), variables)
    image = _photo(64, 72)
    write_image(tmp_path / "in.png", image)
    assert main(["compress", str(tmp_path / "in.png"), str(tmp_path / "out.bin"), "--weights", str(weights)]) == 0
    size = (tmp_path / "out.bin").stat().st_size
    printed = capsys.readouterr().out
    assert f"{8 * size / (64 * 72):.4f} bpp" in printed
    assert main(["decompress", str(tmp_path / "out.bin"), str(tmp_path / "rec.png"), "--weights", str(weights)]) == 0
    from jaxir.io import read_image

    restored = read_image(tmp_path / "rec.png")
    assert restored.shape == (64, 72, 3)
    expected = np.clip(Coder(model, variables, "allinone_codec").reconstruct(read_image(tmp_path / "in.png")), 0, 1)
    np.testing.assert_allclose(restored, np.round(expected * 255) / 255, atol=1.5 / 255)
