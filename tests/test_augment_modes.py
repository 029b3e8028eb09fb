"""The training pipeline's augmentation modes: all 8 flips/rot90s, horizontal flips only (MIMO-UNet's loaders), none."""
import numpy as np
import pytest

from data_pipelines.pipelines import _AUG_KEY, augment_record, augmentation_mode, record_entropy


def orientations(mode, n=64):
    """Which transform of a 6x6 coordinate image each of n records gets (the crop is the whole image)."""
    image = (np.arange(36, dtype=np.uint8).reshape(6, 6, 1) * 7).repeat(3, axis=2)
    variants = {"identity": image, "hflip": image[:, ::-1], "vflip": image[::-1], "rot90": np.rot90(image)}
    seen = []
    for i in range(n):
        out = augment_record({"target": image, _AUG_KEY: record_entropy(0, 0, 0, i)[1:]}, 6, augment=mode)
        patch = np.rint(out["target"] * 255).astype(np.uint8)
        seen.append(next((k for k, v in variants.items() if (v == patch).all()), "other"))
    return seen


def test_hflip_mode_flips_horizontally_or_not_at_all():
    seen = orientations("hflip")
    assert set(seen) == {"identity", "hflip"}
    assert 16 < seen.count("hflip") < 48


def test_dihedral_and_none_modes():
    assert len(set(orientations(True)) - {"identity"}) >= 3
    assert set(orientations("none")) == {"identity"} and set(orientations(False)) == {"identity"}


def test_mode_names():
    assert [augmentation_mode(a) for a in (True, "true", "dihedral", "hflip", False, "False", None)] == \
        ["dihedral", "dihedral", "dihedral", "hflip", "none", "none", "none"]
    with pytest.raises(ValueError, match="augment must be"):
        augmentation_mode("vflip")


def test_configs_pass_the_mode_to_the_pipeline(monkeypatch):
    from data_pipelines import pipelines
    from jaxir.config import load_config
    from jaxir.train.data import make_train_iterator

    seen = []
    real = pipelines.augment_record
    monkeypatch.setattr(pipelines, "augment_record", lambda *a, **k: seen.append(k["augment"]) or real(*a, **k))
    data = load_config("experiments/mimo_unet_gopro.py").data
    data.train = {"source": "bundled", "kwargs": {"split": "train"}}
    data.crop_size, data.batch_size, data.workers = 32, 2, 0
    batch = next(make_train_iterator(data, seed=0))
    assert batch["target"].shape == (2, 32, 32, 3) and set(seen) == {"hflip"}
