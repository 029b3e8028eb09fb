"""Face-restoration evaluation of CelebA-Test-style folders with tiny random metric networks."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from jaxir import io as jio  # noqa: E402
from jaxir.cli import main  # noqa: E402
from jaxir.diffusion.latent import osdface_eval  # noqa: E402
from jaxir.metrics import dists as jd  # noqa: E402
from jaxir.metrics import identity  # noqa: E402
from jaxir.torch_reference import dists as td  # noqa: E402
from jaxir.torch_reference import iresnet as ti  # noqa: E402

ARC = dict(layers=(1, 1, 1, 1), widths=(8, 8, 16, 16), num_features=12, input_size=32)


@pytest.mark.slow  # ~1 min under load (jit of DISTS, IResNet, SSIM per size)
def test_folder_metrics(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(4):
        gt = rng.uniform(size=(32, 32, 3)).astype(np.float32)
        jio.write_image(tmp_path / "gt" / f"{i:02d}.png", gt)
        jio.write_image(tmp_path / "restored" / f"{i:02d}.png", np.clip(gt + 0.05 * rng.normal(size=gt.shape), 0, 1))
        jio.write_image(tmp_path / "same" / f"{i:02d}.png", gt)
    jio.write_image(tmp_path / "restored" / "extra.png", gt)  # no ground truth: skipped
    torch.manual_seed(0)
    torch.save(ti.IResNet(**ARC).eval().state_dict(), tmp_path / "arc.pth")
    torch.save(td.DISTS(widths=(4, 8, 8, 16, 16)).state_dict(), tmp_path / "dists.pth")
    arc = identity.load(tmp_path / "arc.pth", arch="tiny", **ARC)
    dists = jd.load(tmp_path / "dists.pth", widths=(4, 8, 8, 16, 16))
    feats = osdface_eval.network_features(*arc, 32)
    noisy = osdface_eval.evaluate_folders(tmp_path / "restored", tmp_path / "gt", lpips_net=None, dists=dists,
                                          identity_net=arc, fid_features=feats)
    same = osdface_eval.evaluate_folders(tmp_path / "same", tmp_path / "gt", lpips_net=None, dists=dists,
                                         identity_net=arc, fid_features=feats)
    assert noisy["images"] == 4 and same["images"] == 4
    assert 20 < noisy["psnr"] < 40 and noisy["ssim"] < same["ssim"]
    assert same["ssim"] == pytest.approx(1.0, abs=1e-6) and same["dists"] == pytest.approx(0.0, abs=1e-5)
    assert noisy["dists"] > 1e-4 and same["id_deg"] < 0.5 < noisy["id_deg"]
    assert abs(same["fid"]) < 1e-8 < noisy["fid"]  # tiny random features: small but positive
    assert 0 < noisy["id_cos_distance"] < 1


def test_eval_command(tmp_path, capsys):
    rng = np.random.default_rng(1)
    for i in range(2):
        gt = rng.uniform(size=(32, 32, 3)).astype(np.float32)
        jio.write_image(tmp_path / "gt" / f"{i}.png", gt)
        jio.write_image(tmp_path / "restored" / f"{i}.png", np.clip(gt + 0.05 * rng.normal(size=gt.shape), 0, 1))
    assert main(["osdface", "eval", "--restored", str(tmp_path / "restored"), "--gt", str(tmp_path / "gt")]) == 0
    printed = dict(zip(*[iter(capsys.readouterr().out.split())] * 2))
    assert set(printed) == {"psnr", "ssim", "lpips", "images"} and float(printed["images"]) == 2
    assert 0 < float(printed["lpips"]) < 1 and 20 < float(printed["psnr"]) < 40
