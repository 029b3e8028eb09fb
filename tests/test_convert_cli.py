"""`jaxir convert` end to end: an official-layout .pth -> jaxir weights -> `jaxir restore` equals PyTorch."""
import os
import pickle
import zipfile

import numpy as np
import pytest
from PIL import Image

from jaxir.cli import main

KWARGS = {"width": 8, "enc_blk_nums": [1, 1], "middle_blk_num": 1, "dec_blk_nums": [1, 1]}


def test_pth_from_torch_converts_and_restores_like_torch(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    import json

    from jaxir.torch_reference import build_reference

    torch.manual_seed(0)
    reference = build_reference("nafnet", **KWARGS).eval()
    with torch.no_grad():  # non-zero beta/gamma so every block matters
        for name, p in reference.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.add_(0.1 * torch.randn_like(p))
    # BasicSR checkpoints wrap the state dict as {'params': ...}; DataParallel adds 'module.'.
    torch.save({"params": {f"module.{k}": v for k, v in reference.state_dict().items()}}, tmp_path / "net.pth")

    weights = tmp_path / "net.msgpack"
    assert main(["convert", str(tmp_path / "net.pth"), str(weights), "--model", "nafnet",
                 "--model-kwargs", json.dumps(KWARGS)]) == 0
    assert "converted" in capsys.readouterr().out

    rng = np.random.default_rng(0)
    image = (rng.random((30, 22, 3)) * 255).astype(np.uint8)  # not a multiple of 4: padding exercised
    Image.fromarray(image).save(tmp_path / "in.png")
    assert main(["restore", str(tmp_path / "in.png"), str(tmp_path / "out.png"), "--weights", str(weights)]) == 0
    restored = np.asarray(Image.open(tmp_path / "out.png"), np.float32)

    with torch.no_grad():
        x = torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        want = reference(x)[0].permute(1, 2, 0).clamp(0, 1).numpy()
    # Both saved as 8-bit PNGs: at most one grey level apart.
    assert np.abs(restored - np.round(want * 255)).max() <= 1


class _Shell:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_malicious_checkpoint_is_refused_by_the_cli(tmp_path, capsys):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"params": _Shell(f"touch {marker}")}, protocol=2))
        archive.writestr("archive/byteorder", "little")
    assert main(["convert", str(path), str(tmp_path / "out.msgpack"), "--model", "nafnet",
                 "--model-kwargs", '{"width": 8}']) == 2
    err = capsys.readouterr().err
    assert "system" in err and "Traceback" not in err
    assert not marker.exists() and not (tmp_path / "out.msgpack").exists()
