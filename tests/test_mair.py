"""MaIR: the nested S-shaped scan orders, the sequence shuffle attention, and the U-Net's scan forms."""
import jax
import numpy as np
import pytest

from jaxir import registry
from jaxir.models.mair import CONFIGS, channel_rearrange, channel_shuffle, scan_indices
from jaxir.parity import count_params


def test_scan_orders_match_the_official_sscan():
    # Expected orders printed by the official shift_scanf_util.py (mair_ids_generate / mair_shift_ids_generate)
    # for a 4x6 grid, scan_len 4: a leftover stripe 2 wide, read bottom to top.
    order, inverse = scan_indices(4, 6, 4)
    assert order[0].tolist() == [0, 1, 2, 3, 9, 8, 7, 6, 12, 13, 14, 15, 21, 20, 19, 18,
                                 22, 23, 17, 16, 10, 11, 5, 4]
    assert order[2].tolist() == [0, 6, 12, 18, 19, 13, 7, 1, 2, 8, 14, 20, 21, 15, 9, 3,
                                 4, 10, 16, 22, 23, 17, 11, 5]
    shifted, _ = scan_indices(4, 6, 4, shift=2)
    assert shifted[0].tolist() == [0, 1, 7, 6, 12, 13, 19, 18, 20, 21, 22, 23, 17, 16, 15, 14,
                                   8, 9, 10, 11, 5, 4, 3, 2]
    # Direction 1 is direction 0 on the image rotated 180 degrees.
    assert order[1].tolist() == (23 - order[0]).tolist()
    for k in range(4):
        assert (order[k][inverse[k]] == np.arange(24)).all()


@pytest.mark.parametrize("h,w,scan_len,shift", [(8, 8, 4, 0), (8, 8, 4, 2), (12, 10, 4, 0), (16, 8, 8, 4)])
def test_scan_orders_are_continuous_permutations(h, w, scan_len, shift):
    order, inverse = scan_indices(h, w, scan_len, shift)
    assert order.shape == (4, h * w)
    for k in range(4):
        assert sorted(order[k].tolist()) == list(range(h * w))
        np.testing.assert_array_equal(order[k][inverse[k]], np.arange(h * w))
        rows, cols = np.divmod(order[k], w)
        steps = np.abs(np.diff(rows)) + np.abs(np.diff(cols))
        # Consecutive tokens are neighbours except at stripe changes for leftover/shifted stripes' corners.
        assert np.mean(steps == 1) > 0.95


def test_scan_indices_are_cached_per_size():
    assert scan_indices(16, 16, 4) is scan_indices(16, 16, 4)
    assert not scan_indices(16, 16, 4)[0].flags.writeable


def test_channel_shuffle_round_trip():
    x = np.arange(2 * 12, dtype=np.float32).reshape(1, 1, 2, 12)
    shuffled = np.asarray(channel_shuffle(x, 4))
    # torch: reshape(C/G, G) then swap -> channel j*G + g goes to g*(C/G) + j.
    assert shuffled[0, 0, 0, :4].tolist() == [0, 4, 8, 1]
    np.testing.assert_array_equal(channel_rearrange(shuffled, 4), x)


SMALL = dict(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, ssm_ratio=1.0, scan_len=4)


def test_scan_forms_give_the_same_unet():
    x = jax.random.uniform(jax.random.key(1), (1, 24, 16, 3))
    model = registry.build_model("mair_unet", **SMALL)
    variables = jax.jit(model.init)(jax.random.key(0), x)
    ref = jax.jit(model.apply)(variables, x)
    assert ref.shape == x.shape
    for method in ("chunked",):  # the sequential form's agreement is tests/test_scan.py's
        other = registry.build_model("mair_unet", **SMALL, scan_method=method, scan_chunk=32)
        np.testing.assert_allclose(jax.jit(other.apply)(variables, x), ref, atol=1e-5, err_msg=method)


def test_paper_config_counts():
    x = jax.ShapeDtypeStruct((1, 64, 64, 3), np.float32)
    assert count_params(registry.build_model("mair_unet", **CONFIGS["motion_deblur"]), x) == 26_293_296
    # Dehazing / deraining (train_MaIR_ITS.yml): counted by instantiating the official MaIRUNet.
    assert count_params(registry.build_model("mair_unet", **CONFIGS["dehaze"]), x) == 3_404_376


# --- MaIR (SR / colour denoising) and the PyTorch reference ---------------------------------

from jaxir.models.mair import MAIR_CONFIGS  # noqa: E402

TINY = dict(in_chans=3, embed_dim=8, depths=(2,), d_state=4, ssm_ratio=1.5, mlp_ratio=1.5, scan_len=4)


@pytest.mark.slow
def test_mair_unet_reference_reproduces_the_golden_file(golden_dir):
    """The PyTorch reference (its own scan orders, sequential scan) on the official golden weights: ~40 s."""
    torch = pytest.importorskip("torch")
    from jaxir.models.mair import _mair_unet_kwargs
    from jaxir.parity import golden_state_dict, load_golden
    from jaxir.torch_reference import build_reference

    meta, arrays = load_golden(golden_dir / "mair.npz")
    ref = build_reference("mair_unet", **_mair_unet_kwargs(meta["kwargs"])).eval()
    ref.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in golden_state_dict(arrays).items()},
                        strict=True)
    assert sum(p.numel() for p in ref.parameters()) == meta["param_count"]
    with torch.no_grad():
        out = ref(torch.from_numpy(arrays["input"])).numpy()
    np.testing.assert_allclose(out, arrays["output_0"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("h,w,scan_len,shift", [(4, 6, 4, 2), (7, 9, 4, 2), (5, 13, 8, 4), (32, 24, 8, 0)])
def test_reference_scan_orders_equal_jaxir(h, w, scan_len, shift):
    """The reference derives the orders from their definition; jaxir follows the official in-place construction."""
    pytest.importorskip("torch")
    from jaxir.torch_reference.mair import scan_orders

    order, inverse = scan_orders(h, w, scan_len, shift)
    want_order, want_inverse = scan_indices(h, w, scan_len, shift)
    np.testing.assert_array_equal(order.numpy(), want_order)
    np.testing.assert_array_equal(inverse.numpy(), want_inverse)


@pytest.mark.parametrize("extra,size", [
    (dict(upscale=2, upsampler="pixelshuffle"), (12, 16)),
    (dict(upscale=3, upsampler="pixelshuffledirect"), (16, 12)),
    (dict(upscale=1, upsampler=""), (12, 12)),
])
def test_mair_matches_the_pytorch_reference(extra, size):
    torch = pytest.importorskip("torch")
    import jax.numpy as jnp

    from jaxir.convert.state_dict import convert_state_dict
    from jaxir.parity import nhwc_to_nchw
    from jaxir.torch_reference import build_reference

    kwargs = dict(TINY, **extra)
    torch.manual_seed(0)
    ref = build_reference("mair", **kwargs).eval()
    with torch.no_grad():
        for t in ref.state_dict().values():
            if t.is_floating_point():
                t += 0.05 * torch.randn_like(t)
    x = np.random.default_rng(0).random((1, 3, *size)).astype(np.float32)
    model = registry.build_model("mair", **kwargs)
    variables = convert_state_dict({k: v.numpy() for k, v in ref.state_dict().items()}, model,
                                   jax.ShapeDtypeStruct((1, *size, 3), jnp.float32),
                                   hooks=registry.get_entry("mair").convert_hooks)
    got = nhwc_to_nchw(np.asarray(jax.jit(model.apply)(variables, x.transpose(0, 2, 3, 1))))
    with torch.no_grad():
        want = ref(torch.from_numpy(x)).numpy()
    assert got.shape == (1, 3, size[0] * extra["upscale"], size[1] * extra["upscale"])
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_mair_scan_forms_agree():
    x = jax.random.uniform(jax.random.key(1), (1, 16, 12, 3))
    model = registry.build_model("mair", **TINY, upscale=1, upsampler="")
    variables = jax.jit(model.init)(jax.random.key(0), x)
    ref = jax.jit(model.apply)(variables, x)
    chunked = registry.build_model("mair", **TINY, upscale=1, upsampler="", scan_method="chunked", scan_chunk=40)
    np.testing.assert_allclose(jax.jit(chunked.apply)(variables, x), ref, atol=1e-5)


def test_mair_translates_the_official_kwargs():
    official = dict(upscale=1, in_chans=3, img_range=1.0, d_state=16, depths=[6] * 6, embed_dim=180, ssm_ratio=1.3,
                    mlp_ratio=2.0, upsampler=None, resi_connection="1conv", img_size=128, dynamic_ids=False,
                    batch_size=1, scan_len=4)
    entry = registry.entry_for_official("XLearning-SCU/2025-CVPR-MaIR", "MaIR", "basicsr/archs/mair_arch.py")
    assert entry.name == "mair"
    assert entry.translate_kwargs(official) == dict(MAIR_CONFIGS["color_dn"][0], depths=[6] * 6)
    with pytest.raises(ValueError, match="resi_connection"):
        entry.translate_kwargs(dict(official, resi_connection="3conv"))


FAST_COUNTS = {"light_sr_t_x2", "light_sr_s_x3"}  # the rest (same code path, bigger traces) run with the slow tests


@pytest.mark.parametrize("config", [c if c in FAST_COUNTS else pytest.param(c, marks=pytest.mark.slow)
                                    for c in sorted(MAIR_CONFIGS)])
def test_mair_paper_config_counts(config):
    # Counts from instantiating the official MaIR (basicsr/archs/mair_arch.py) with each options/train file's
    # network_g.
    kwargs, count = MAIR_CONFIGS[config]
    x = jax.ShapeDtypeStruct((1, 32, 32, 3), np.float32)
    assert count_params(registry.build_model("mair", **kwargs), x) == count


def test_reference_counts_equal_the_paper_configs():
    torch = pytest.importorskip("torch")
    from jaxir.torch_reference import build_reference

    for name, (kwargs, count) in MAIR_CONFIGS.items():
        with torch.device("meta"):
            ref = build_reference("mair", **kwargs)
        assert sum(p.numel() for p in ref.parameters()) == count, name
    with torch.device("meta"):
        for name in ("motion_deblur", "dehaze"):
            ref = build_reference("mair_unet", **CONFIGS[name])
            assert sum(p.numel() for p in ref.parameters()) == {"motion_deblur": 26_293_296,
                                                                 "dehaze": 3_404_376}[name], name


@pytest.mark.slow
def test_bench_rows_per_scan_form_against_the_reference(tmp_path):
    """`jaxir bench --scan-methods`: one row per JAX form, same weights, the PyTorch reference's figures in each."""
    pytest.importorskip("torch")
    import json

    from jaxir.cli import main

    kwargs = dict(TINY, upscale=2, upsampler="pixelshuffledirect")
    record = tmp_path / "bench.md"
    assert main(["bench", "--model", "mair", "--model-kwargs", json.dumps(kwargs), "--size", "16", "--steps", "1",
                 "--torch", "--no-train", "--scan-methods", "chunked,associative", "--note", "test",
                 "--record", str(record)]) == 0
    rows = [line.split("|")[1:-1] for line in record.read_text().splitlines() if "(jax " in line]
    assert [r[1].strip() for r in rows] == ["mair (jax chunked scan)", "mair (jax associative scan)"]
    for r in rows:
        assert r[6].strip() == "n/a" and float(r[7]) > 0  # inference only
        assert float(r[10]) > 0 and r[10] == rows[0][10]  # the reference, timed once
