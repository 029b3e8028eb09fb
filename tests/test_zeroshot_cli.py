"""`jaxir zeroshot rdmd|cm4ir`: the official task presets on image files with a tiny random prior."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
from PIL import Image

from jaxir import registry
from jaxir.cli import main
from jaxir.io import read_image, save_weights

TINY = dict(in_channels=3, model_channels=32, num_res_blocks=1, attention_resolutions=(2,), channel_mult=(1, 2),
            num_head_channels=16, use_scale_shift_norm=True, resblock_updown=True)


def _prior(path, name, out_channels):
    kwargs = dict(TINY, out_channels=out_channels)
    model = registry.build_model(name, **kwargs)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), jnp.zeros((1,)))
    save_weights(path, name, kwargs, variables)
    return path


def _photo(path, size=32, step=8):
    image = skimage.data.astronaut()[:size * step:step, 128:128 + size * step:step]
    Image.fromarray(image).save(path)
    return image.astype(np.float32) / 255


@pytest.mark.slow  # two compiles of a U-Net loop at 64x64 (minutes on the shared 2 cores)
def test_rdmd_deblurs_a_measured_photo_deterministically(tmp_path, capsys):
    from jaxir.diffusion.zeroshot import ZeroShotRestorer

    prior = _prior(tmp_path / "adm.msgpack", "adm_unet", 6)
    clean = _photo(tmp_path / "photo.png", size=64, step=4)  # the official 61x61 kernel fits
    assert main(["zeroshot", "rdmd", "--task", "deblur_gauss", "--prior", str(prior), "--input",
                 str(tmp_path / "photo.png"), "--degrade", "--iterations", "2", "--seed", "1", "--out",
                 str(tmp_path / "a")]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "photo_measured.png" in printed and "restored" in printed and "wrote 1 restoration(s)" in printed
    restored, measured = read_image(tmp_path / "a" / "photo.png"), read_image(tmp_path / "a" / "photo_measured.png")
    assert restored.shape == measured.shape == clean.shape
    assert np.abs(measured - clean).mean() > 0.02  # the 61x61 Gaussian (σ 3) and the noise did measure it
    assert np.abs(restored - measured).max() > 0.01  # and the restoration changed it

    # The same restorer (one compile): deterministic given the seed and image index, fresh noise per index.
    restorer = ZeroShotRestorer("rdmd", "deblur_gauss", prior, seed=1, iterations=2)
    measurement = restorer.measure(clean)
    np.testing.assert_allclose(np.clip(measurement, 0, 1), measured, atol=0.5 / 255 + 1e-6)  # as the CLI wrote it
    a, b, c = restorer(measurement, 0), restorer(measurement, 0), restorer(measurement, 1)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-4 and np.isfinite(a).all()
    np.testing.assert_allclose(a, restored, atol=0.5 / 255 + 1e-5)  # the CLI's output of the same run


@pytest.mark.slow  # two compiles of the 4-step loop
def test_cm4ir_super_resolves_and_inpaints(tmp_path, capsys):
    prior = _prior(tmp_path / "cm.msgpack", "cm_unet", 3)
    (tmp_path / "low").mkdir()
    low = _photo(tmp_path / "low" / "x.png", size=8, step=32)
    assert main(["zeroshot", "cm4ir", "--task", "sr4", "--prior", str(prior), "--input", str(tmp_path / "low"),
                 "--out", str(tmp_path / "sr")]) == 0, capsys.readouterr().err
    high = read_image(tmp_path / "sr" / "x.png")
    assert high.shape == (32, 32, 3) and low.shape == (8, 8, 3)
    # The noisy-measurement branch returns the last x̂_0, near the measurement after 4 back-projections.
    assert np.abs(high.reshape(8, 4, 8, 4, 3).mean(axis=(1, 3)) - low).mean() < 0.15

    clean = _photo(tmp_path / "photo.png")
    mask = (np.random.default_rng(0).random((32, 32)) > 0.5).astype(np.float32)
    np.save(tmp_path / "mask.npy", mask)
    assert main(["zeroshot", "cm4ir", "--task", "inpaint", "--mask", str(tmp_path / "mask.npy"), "--prior",
                 str(prior), "--input", str(tmp_path / "photo.png"), "--out", str(tmp_path / "inp"),
                 "--degrade"]) == 0, capsys.readouterr().err
    restored = read_image(tmp_path / "inp" / "photo.png")
    measured = read_image(tmp_path / "inp" / "photo_measured.png")
    assert restored.shape == clean.shape
    assert np.abs(measured[mask == 0] - 0.5).max() < 0.2  # missing pixels measured as 0 on [-1, 1] (+ noise)
    assert np.abs(restored[mask == 0] - 0.5).mean() > 0.05  # and filled in


def test_bad_requests_fail_with_one_line(tmp_path, capsys):
    adm = _prior(tmp_path / "adm.msgpack", "adm_unet", 6)
    _photo(tmp_path / "photo.png")
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "odd.png")
    base = ["--input", str(tmp_path / "photo.png"), "--out", str(tmp_path / "o")]
    cases = [
        (["rdmd", "--task", "inpaint", "--prior", str(adm)], "rdmd's official code has no inpaint task"),
        (["cm4ir", "--task", "deblur_motion", "--prior", str(adm)], "cm4ir's official code has no deblur_motion"),
        (["cm4ir", "--task", "sr4", "--prior", str(adm)], "holds a 'adm_unet' model; cm4ir needs"),
        (["rdmd", "--task", "sr4", "--prior", str(tmp_path / "none.msgpack")], "convert the official checkpoint"),
        (["cm4ir", "--task", "inpaint", "--prior", str(adm)], "inpaint needs --mask"),
        (["rdmd", "--task", "deblur_gauss", "--prior", str(adm), "--input", str(tmp_path / "odd.png")],
         "multiples of 32"),
    ]
    for args, message in cases:
        assert main(["zeroshot", *args, *base[:0 if "--input" in args else 2], *base[2:]]) == 2
        assert message in capsys.readouterr().err
