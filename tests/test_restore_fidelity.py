"""`jaxir restore` keeps what the model does not touch: bit depth, grey/colour layout, alpha, orientation.

Also: checkpoints opened read-only on purpose (restore/eval from a run) print no Orbax read-only warnings.
"""
from __future__ import annotations

import logging
import pathlib
import sys

import cv2
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image, ImageOps

import jaxir
from jaxir.cli import main
from jaxir.io import apply_orientation, read_pixels, save_weights
from data_pipelines.sources import decode_png16

TINY = {"width": 4, "enc_blk_nums": [1], "middle_blk_num": 1, "dec_blk_nums": [1]}


@pytest.fixture(scope="module")
def model() -> jaxir.Model:
    return jaxir.create_model("nafnet", seed=3, **TINY)


@pytest.fixture(scope="module")
def weights(model, tmp_path_factory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("weights") / "tiny.msgpack"
    save_weights(path, model.name, model.kwargs, model.variables)
    return path


def _float_restore(model, image: np.ndarray) -> np.ndarray:
    out = model.module.apply(model.variables, jnp.asarray(image[None], jnp.float32))
    return np.clip(np.asarray(out)[0], 0, 1)


def _restore(tmp_path, weights, name: str, out_name: str, capsys) -> tuple[pathlib.Path, str]:
    out = tmp_path / out_name
    assert main(["restore", str(tmp_path / name), str(out), "--weights", str(weights)]) == 0
    return out, capsys.readouterr().err


def test_sixteen_bit_grey_png_comes_back_sixteen_bit_grey(tmp_path, weights, model, capsys):
    grey = (np.random.default_rng(0).random((19, 23)) * 65535).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "grey16.png"), grey)
    out, _ = _restore(tmp_path, weights, "grey16.png", "out.png", capsys)
    restored = decode_png16(out.read_bytes())
    assert restored.shape == (19, 23, 1) and restored.dtype == np.uint16
    # Grey goes through the RGB model as three equal channels; the result is their mean, at 16 bits.
    rgb = np.repeat(grey[..., None] / 65535.0, 3, axis=-1)
    want = np.round(np.mean(_float_restore(model, rgb), axis=-1) * 65535)
    assert np.abs(restored[..., 0].astype(np.float64) - want).max() <= 1


def test_sixteen_bit_rgba_keeps_depth_and_alpha(tmp_path, weights, model, capsys):
    rng = np.random.default_rng(1)
    rgba = (rng.random((16, 20, 4)) * 65535).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "rgba16.png"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    out, _ = _restore(tmp_path, weights, "rgba16.png", "out.png", capsys)
    restored = decode_png16(out.read_bytes())
    assert restored.shape == (16, 20, 4) and restored.dtype == np.uint16
    np.testing.assert_array_equal(restored[..., 3], rgba[..., 3])
    want = np.round(_float_restore(model, rgba[..., :3] / 65535.0) * 65535)
    assert np.abs(restored[..., :3].astype(np.float64) - want).max() <= 1
    assert np.abs(restored[..., :3].astype(np.float64) - want).max() < 256  # not an 8-bit round trip


def test_eight_bit_grey_and_grey_alpha_and_rgba(tmp_path, weights, capsys):
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (15, 17), dtype=np.uint8), "L").save(tmp_path / "l.png")
    la = rng.integers(0, 256, (15, 17, 2), dtype=np.uint8)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    rgba = rng.integers(0, 256, (15, 17, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    for name, mode in (("l.png", "L"), ("la.png", "LA"), ("rgba.png", "RGBA")):
        out, err = _restore(tmp_path, weights, name, f"out_{name}", capsys)
        assert Image.open(out).mode == mode and "note" not in err
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out_la.png"))[..., 1], la[..., 1])
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out_rgba.png"))[..., 3], rgba[..., 3])


def test_what_the_output_format_cannot_keep_is_said(tmp_path, weights, capsys):
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (12, 14, 4), dtype=np.uint8), "RGBA").save(tmp_path / "a.png")
    out, err = _restore(tmp_path, weights, "a.png", "out.jpg", capsys)
    assert "alpha dropped" in err and Image.open(out).mode == "RGB"
    cv2.imwrite(str(tmp_path / "g16.png"), (rng.random((12, 14)) * 65535).astype(np.uint16))
    out, err = _restore(tmp_path, weights, "g16.png", "out16.jpg", capsys)
    assert "8 bits" in err and Image.open(out).mode == "L"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_on_read(tmp_path, orientation):
    stored = np.random.default_rng(orientation).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(tmp_path / "o.png", exif=exif.tobytes())
    pixels, _ = read_pixels(tmp_path / "o.png")
    upright = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
    np.testing.assert_array_equal(pixels, upright)
    assert (pixels.shape[:2] == (9, 6)) == (orientation >= 5)
    np.testing.assert_array_equal(apply_orientation(stored, orientation), upright)


def test_cli_restore_writes_an_exif_rotated_photo_upright(tmp_path, weights, capsys):
    stored = np.random.default_rng(4).integers(0, 256, (10, 16, 3), dtype=np.uint8)
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    image.save(tmp_path / "photo.jpg", exif=exif.tobytes(), quality=95)
    out, _ = _restore(tmp_path, weights, "photo.jpg", "photo_out.png", capsys)
    assert Image.open(out).size == (10, 16)  # width 10, height 16: upright


def test_read_only_checkpoints_open_without_orbax_warnings(tmp_path, caplog):
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    import train_helpers
    from jaxir.train.loop import load_inference_variables, train

    config = train_helpers.tiny_config(num_steps=2, with_eval=False)
    train(config, tmp_path)
    with caplog.at_level(logging.WARNING):
        variables = load_inference_variables(config, tmp_path)
    assert variables["params"]
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "read only" in m or "read_only" in m], messages
