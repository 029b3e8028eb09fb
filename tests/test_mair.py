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
