"""FID/KID: the FID Inception port against a PyTorch equivalent of pytorch-fid's network (random weights,
converted from a .pth), and the Fréchet distance and KID against closed forms."""
import numpy as np
import pytest

from jaxir.metrics import fid as fidlib


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 4.0, 1.0])
    # |μ1-μ2|² + Σ (σ1 - σ2)² for commuting (diagonal) covariances
    want = 1 + 0 + 4 + (1 - 2) ** 2 + 0 + (3 - 1) ** 2
    assert fidlib.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-9)
    assert fidlib.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-6)


def test_fid_and_kid_separate_distributions():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    shifted = rng.normal(size=(400, 8)) + 0.5
    assert fidlib.fid(a, b) < 0.2 < 8 * 0.25 * 0.8 < fidlib.fid(a, shifted)
    same, _ = fidlib.kid(a, b, subsets=20, subset_size=200)
    apart, _ = fidlib.kid(a, shifted, subsets=20, subset_size=200)
    assert abs(same) < 0.1 * apart and apart > 0.05


def test_kid_is_the_unbiased_mmd():
    """One subset holding everything: the U-statistic written out."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 3)) + 1
    k = lambda u, v: (u @ v / 3 + 1) ** 3
    m = 5
    want = (sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
            + sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
            - 2 * sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m ** 2)
    mean, std = fidlib.kid(x, y, subsets=1, subset_size=5)
    assert mean == pytest.approx(want, rel=1e-9) and std == 0.0


def _healthy_reference(torch, images):
    """Random weights with healthy activations: BatchNorm running statistics set from one batch."""
    from jaxir.torch_reference import build_reference

    reference = build_reference("fid_inception")
    for module in reference.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 1.0
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
            torch.nn.init.uniform_(module.bias, -0.1, 0.1)
    reference.train()
    with torch.no_grad():
        reference(images)
    return reference.eval()


def test_fid_inception_matches_pytorch_with_converted_random_weights(tmp_path):
    torch = pytest.importorskip("torch")
    from jaxir.metrics.inception import load_fid_inception

    torch.manual_seed(0)
    images = torch.rand(2, 3, 80, 96)
    reference = _healthy_reference(torch, images)
    with torch.no_grad():
        want = reference(images).numpy()
    torch.save(reference.state_dict(), tmp_path / "pt_inception.pth")

    model, variables = load_fid_inception(str(tmp_path / "pt_inception.pth"))
    got = fidlib.inception_features(model, variables, list(images.permute(0, 2, 3, 1).numpy()), batch_size=2)
    assert got.shape == (2, 2048) and want.std() > 1e-2
    np.testing.assert_allclose(got, want, atol=1e-4 * max(1.0, float(np.abs(want).max())), rtol=1e-3)


@pytest.mark.slow  # another Inception compile (minutes on the 2-core CPU)
def test_fid_command_on_two_folders(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from PIL import Image

    from jaxir.cli import main

    torch.manual_seed(1)
    torch.save(_healthy_reference(torch, torch.rand(4, 3, 40, 40)).state_dict(), tmp_path / "inception.pth")
    rng = np.random.default_rng(0)
    for folder, offset in (("a", 0), ("b", 120)):
        (tmp_path / folder).mkdir()
        for i in range(3):
            pixels = np.clip(rng.integers(0, 130, (40, 40, 3)) + offset, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / folder / f"{i}.png")
    assert main(["fid", str(tmp_path / "a"), str(tmp_path / "b"), "--inception", str(tmp_path / "inception.pth"),
                 "--kid-subsets", "2", "--kid-subset-size", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("FID ") and "KID" in out and "(3 vs 3 images)" in out
    assert float(out.split()[1]) > 0
