import subprocess
import sys
import textwrap

import ml_collections
import pytest

from jaxir.cli import main
from jaxir.config import ConfigError, apply_overrides, load_config


def make_config():
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict({"name": "nafnet", "kwargs": {"width": 8}})
    c.train = ml_collections.ConfigDict({"num_steps": 10, "lr": 1e-3, "bf16": False, "tag": "x"})
    return c


def test_overrides_are_typed():
    c = apply_overrides(make_config(), ["--config.train.num_steps=5", "--config.train.lr=2", "--config.train.bf16=true",
                                        "--config.train.tag=abc", "--config.model.kwargs.width=16"])
    assert c.train.num_steps == 5 and c.train.lr == 2.0 and isinstance(c.train.lr, float)
    assert c.train.bf16 is True and c.train.tag == "abc" and c.model.kwargs.width == 16


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match="unknown config key 'train.nm_steps'.*train.num_steps"):
        apply_overrides(make_config(), ["--config.train.nm_steps=5"])


def test_load_config_with_argument(tmp_path):
    path = tmp_path / "exp.py"
    path.write_text(textwrap.dedent("""
        import ml_collections
        def get_config(arg=None):
            c = ml_collections.ConfigDict()
            c.size = {"s": 1, "l": 3}[arg or "s"]
            return c
    """))
    assert load_config(f"{path}:l").size == 3
    assert load_config(str(path)).size == 1
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "missing.py"))


def test_cli_reports_user_errors_without_traceback(tmp_path, capsys):
    assert main(["parity", str(tmp_path / "nope.npz")]) == 2
    err = capsys.readouterr().err
    assert "golden file not found" in err and "Traceback" not in err
    assert main(["restore", str(tmp_path / "missing.png"), str(tmp_path / "out.png"), "--weights",
                 str(tmp_path / "w.msgpack")]) == 2
    assert "not found" in capsys.readouterr().err


def test_cli_unreadable_image_named(tmp_path, capsys):
    import numpy as np
    from jaxir import registry
    from jaxir.io import save_weights
    import jax

    kwargs = {"width": 4, "enc_blk_nums": [1], "dec_blk_nums": [1]}
    model = registry.build_model("nafnet", **kwargs)
    variables = model.init(jax.random.key(0), np.zeros((1, 8, 8, 3), np.float32))
    save_weights(tmp_path / "w.msgpack", "nafnet", kwargs, jax.device_get(variables))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert main(["restore", str(bad), str(tmp_path / "o.png"), "--weights", str(tmp_path / "w.msgpack")]) == 2
    assert f"cannot read image {bad}" in capsys.readouterr().err
    gray = tmp_path / "ok.png"
    from PIL import Image
    Image.fromarray((np.random.default_rng(0).random((13, 21, 3)) * 255).astype("uint8")).save(gray)
    assert main(["restore", str(gray), str(tmp_path / "o.png"), "--weights", str(tmp_path / "w.msgpack"),
                 "--tile", "8", "--overlap", "4"]) == 0
    assert Image.open(tmp_path / "o.png").size == (21, 13)


def test_console_script_entry_point():
    out = subprocess.run([sys.executable, "-m", "jaxir.cli", "list"], capture_output=True, text=True, check=True)
    assert "nafnet" in out.stdout


def test_config_argument_errors_are_not_swallowed(tmp_path):
    path = tmp_path / "noarg.py"
    path.write_text("import ml_collections\ndef get_config():\n    return ml_collections.ConfigDict({'a': 1})\n")
    with pytest.raises(ConfigError, match="takes no argument"):
        load_config(f"{path}:x")
    broken = tmp_path / "broken.py"
    broken.write_text("def get_config(arg=None):\n    raise TypeError('bad crop')\n")
    with pytest.raises(TypeError, match="bad crop"):
        load_config(str(broken))


def test_every_convir_task_file_resolves_to_its_variant():
    from jaxir import registry

    for file in ("Motion_Deblurring/models/ConvIR.py", "Dehazing/ITS/models/ConvIR.py",
                 "Dehazing/OTS/models/ConvIR.py", "Image_desnowing/models/ConvIR.py"):
        assert registry.entry_for_official("c-yn/ConvIR", "ConvIR", file).name == "convir"
    assert registry.entry_for_official("c-yn/ConvIR", "ConvIR", "Image_deraining/models/ConvIR.py").name == "convir_derain"


def test_build_dataset_command(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    root = tmp_path / "RealDOF"
    for folder in ("source", "target"):
        (root / folder).mkdir(parents=True)
        for n in range(2):
            Image.fromarray(np.full((8, 8, 3), 10 * n, np.uint8)).save(root / folder / f"{n}.png")
    assert main(["build-dataset", "realdof", "--manual-dir", str(tmp_path), "--data-dir", str(tmp_path / "tfds")]) == 0
    assert "prepared" in capsys.readouterr().out
    from data_pipelines.builders import data_source

    assert len(data_source("realdof", "test", tmp_path / "tfds")) == 2
    assert main(["build-dataset", "realdof", "--manual-dir", str(tmp_path / "nowhere"),
                 "--data-dir", str(tmp_path / "tfds2")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["build-dataset", "list"]) == 0 and "gopro" in capsys.readouterr().out
