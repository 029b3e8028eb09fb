"""Safe checkpoint reading: torch zip archives without torch, safetensors, npz."""
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest

from jaxir.convert.torch_io import (
    CheckpointError,
    UnsafeCheckpointError,
    load_checkpoint,
    load_state_dict,
)


# ---------------------------------------------------------------------------------
# Hand-built torch archives, so these tests need no torch.


def write_torch_zip(path, data_pkl: bytes, records=None, byteorder="little", archive="archive"):
    """A zip laid out like torch.save's: <archive>/data.pkl, data/<key>, byteorder."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(f"{archive}/data.pkl", data_pkl)
        z.writestr(f"{archive}/byteorder", byteorder)
        for key, raw in (records or {}).items():
            z.writestr(f"{archive}/data/{key}", raw)
        z.writestr(f"{archive}/version", "3\n")
    return path


class PickleWriter:
    """Writes protocol-2 opcodes the way torch's pickler would, without torch."""

    def __init__(self):
        self.out = bytearray(pickle.PROTO + b"\x02")

    def global_(self, module, name):
        self.out += pickle.GLOBAL + f"{module}\n{name}\n".encode()

    def str_(self, text):
        raw = text.encode()
        self.out += pickle.BINUNICODE + struct.pack("<I", len(raw)) + raw

    def int_(self, value):
        self.out += pickle.BININT + struct.pack("<i", value)

    def tuple_(self, items):
        self.out += pickle.MARK
        for item in items:
            self.int_(item)
        self.out += pickle.TUPLE

    def tensor(self, storage_class, key, numel, offset, size, stride):
        self.global_("torch._utils", "_rebuild_tensor_v2")
        self.out += pickle.MARK
        self.out += pickle.MARK
        self.str_("storage")
        self.global_("torch", storage_class)
        self.str_(key)
        self.str_("cpu")
        self.int_(numel)
        self.out += pickle.TUPLE + pickle.BINPERSID
        self.int_(offset)
        self.tuple_(size)
        self.tuple_(stride)
        self.out += pickle.NEWFALSE
        self.global_("collections", "OrderedDict")
        self.out += pickle.EMPTY_TUPLE + pickle.REDUCE
        self.out += pickle.TUPLE + pickle.REDUCE

    def state_dict(self, tensors):
        """tensors: {name: args of `tensor`}."""
        self.out += pickle.EMPTY_DICT
        for name, args in tensors.items():
            self.str_(name)
            self.tensor(*args)
            self.out += pickle.SETITEM
        return self.finish()

    def finish(self):
        return bytes(self.out + pickle.STOP)


def test_strides_offsets_and_shared_storage_without_torch(tmp_path):
    base = np.arange(24, dtype=np.float32)
    tensors = {
        "full": ("FloatStorage", "0", 24, 0, (2, 3, 4), (12, 4, 1)),
        "transposed": ("FloatStorage", "0", 24, 0, (4, 6), (1, 4)),
        "offset_view": ("FloatStorage", "0", 24, 5, (2, 3), (6, 2)),
        "scalar": ("FloatStorage", "0", 24, 7, (), ()),
        "broadcast": ("FloatStorage", "0", 24, 1, (3, 2), (0, 1)),
        "halves": ("HalfStorage", "1", 4, 0, (2, 2), (1, 2)),
    }
    halves = np.array([1.5, -2.0, 0.25, 65504.0], dtype=np.float16)
    path = write_torch_zip(tmp_path / "views.pth", PickleWriter().state_dict(tensors),
                           {"0": base.tobytes(), "1": halves.tobytes()})
    sd = load_state_dict(path)
    np.testing.assert_array_equal(sd["full"], base.reshape(2, 3, 4))
    np.testing.assert_array_equal(sd["transposed"], base.reshape(6, 4).T)
    np.testing.assert_array_equal(sd["offset_view"], [[5, 7, 9], [11, 13, 15]])
    assert sd["scalar"].shape == () and sd["scalar"] == 7
    np.testing.assert_array_equal(sd["broadcast"], [[1, 2], [1, 2], [1, 2]])
    np.testing.assert_array_equal(sd["halves"], halves.reshape(2, 2).T)
    assert sd["halves"].dtype == np.float16
    # Views come back as independent, writable, contiguous arrays.
    assert all(a.flags.c_contiguous and a.flags.writeable for a in sd.values())
    sd["full"][0, 0, 0] = 100
    assert sd["transposed"][0, 0] == 0


def test_big_endian_archive(tmp_path):
    values = np.array([1.0, -2.5, 3.25, 1e-8], dtype=np.float32)
    data = PickleWriter().state_dict({"w": ("FloatStorage", "0", 4, 0, (2, 2), (2, 1))})
    path = write_torch_zip(tmp_path / "be.pth", data, {"0": values.astype(">f4").tobytes()}, byteorder="big")
    np.testing.assert_array_equal(load_state_dict(path)["w"], values.reshape(2, 2))


def test_tensor_outside_its_storage_is_refused(tmp_path):
    data = PickleWriter().state_dict({"w": ("FloatStorage", "0", 4, 2, (2, 2), (2, 1))})
    path = write_torch_zip(tmp_path / "oob.pth", data, {"0": np.zeros(4, np.float32).tobytes()})
    with pytest.raises(CheckpointError, match="oob.pth.*does not fit storage"):
        load_state_dict(path)


# ---------------------------------------------------------------------------------
# Malicious pickles.


class SystemCall:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class Eval:
    def __init__(self, source):
        self.source = source

    def __reduce__(self):
        return (eval, (self.source,))


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("attack", ["system", "eval", "nested"])
def test_malicious_pickle_is_refused_and_not_run(tmp_path, protocol, attack):
    marker = tmp_path / "pwned"
    if attack == "system":
        payload, refused = SystemCall(f"touch {marker}"), f"{os.system.__module__}.system"
    elif attack == "eval":
        payload, refused = Eval(f"open({str(marker)!r}, 'w').close()"), "builtins.eval"
    else:  # hidden inside an otherwise ordinary checkpoint dict
        payload, refused = {"params": {"conv.weight": SystemCall(f"touch {marker}")}, "epoch": 3}, "system"
    path = write_torch_zip(tmp_path / "evil.pth", pickle.dumps(payload, protocol=protocol))
    with pytest.raises(UnsafeCheckpointError, match=refused) as info:
        load_state_dict(path)
    assert str(path) in str(info.value)
    assert info.value.global_name.endswith("system") or info.value.global_name == "builtins.eval"
    assert not marker.exists()


def test_build_on_an_allowed_global_is_refused(tmp_path):
    # BUILD would otherwise set attributes on the object standing in for OrderedDict.
    writer = PickleWriter()
    writer.global_("collections", "OrderedDict")
    writer.out += pickle.EMPTY_DICT + pickle.BUILD
    path = write_torch_zip(tmp_path / "build.pth", writer.finish())
    with pytest.raises(UnsafeCheckpointError, match="set state"):
        load_checkpoint(path)


def test_extension_opcodes_are_refused(tmp_path):
    path = write_torch_zip(tmp_path / "ext.pth", pickle.PROTO + b"\x02" + pickle.EXT1 + b"\x01" + pickle.STOP)
    with pytest.raises(UnsafeCheckpointError, match="EXT1"):
        load_checkpoint(path)


def test_python2_builtin_names_map_to_the_allow_list(tmp_path):
    # torch's protocol-2 pickles spell `set` as `__builtin__.set`; eval stays refused.
    safe = write_torch_zip(tmp_path / "set.pth", pickle.dumps({"tags": {1, 2}}, protocol=2))
    assert load_checkpoint(safe) == {"tags": {1, 2}}
    writer = PickleWriter()
    writer.global_("__builtin__", "eval")
    writer.str_("1")
    writer.out += pickle.TUPLE1 + pickle.REDUCE
    with pytest.raises(UnsafeCheckpointError, match="builtins.eval"):
        load_checkpoint(write_torch_zip(tmp_path / "py2eval.pth", writer.finish()))


# ---------------------------------------------------------------------------------
# Real torch.save output.


def _reference(tensor):
    import torch

    tensor = tensor.detach()
    return tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()


@pytest.fixture
def torch_state_dict():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 2, 1))
    net(torch.randn(2, 3, 8, 8))  # training-mode pass: non-trivial running stats and num_batches_tracked
    sd = dict(net.state_dict())
    sd["transposed"] = net[0].weight.detach().transpose(0, 1)
    sd["shared_view"] = net[0].weight.detach()[1:3, :, 1]
    sd["half"] = torch.randn(3, 5).half()
    sd["bf16"] = torch.randn(4, 3, dtype=torch.bfloat16)
    sd["steps"] = torch.arange(6, dtype=torch.int64).reshape(2, 3)
    sd["param"] = torch.nn.Parameter(torch.randn(2, 2))
    sd["mask"] = torch.tensor([True, False])
    assert not sd["transposed"].is_contiguous() and sd["shared_view"].storage_offset() > 0
    return sd


def _assert_same(loaded, sd):
    assert list(loaded) == list(sd)
    for name, tensor in sd.items():
        want = _reference(tensor)
        assert loaded[name].dtype == want.dtype, name
        np.testing.assert_array_equal(loaded[name], want, err_msg=name)
    assert loaded["bf16"].dtype == np.float32 and loaded["half"].dtype == np.float16
    assert loaded["1.num_batches_tracked"].dtype == np.int64 and loaded["1.num_batches_tracked"] == 1


def test_torch_saved_wrappers(tmp_path, torch_state_dict):
    import torch

    sd = torch_state_dict
    data_parallel = {f"module.{k}": v for k, v in sd.items()}
    cases = {
        "plain.pth": sd,
        "basicsr.pth": {"params": sd},
        "data_parallel.pt": data_parallel,
        "wrapped_dp.ckpt": {"state_dict": data_parallel, "epoch": 7},
        "model.pkl": {"model": sd, "lr": 1e-4},
        "nested.pth": {"net": {"generator": sd}, "step": np.int64(1000), "best_psnr": np.float64(32.5)},
    }
    for name, checkpoint in cases.items():
        torch.save(checkpoint, tmp_path / name)
        _assert_same(load_state_dict(tmp_path / name), sd)
    meta = load_checkpoint(tmp_path / "nested.pth")
    assert meta["step"] == 1000 and meta["best_psnr"] == 32.5


def test_torch_saved_with_optimizer_and_ema(tmp_path, torch_state_dict):
    import torch

    net = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(net.parameters())
    net(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    # Optimizer state holds dicts of tensors keyed by parameter index: never mistaken for weights.
    torch.save({"model": net.state_dict(), "optimizer": optimizer.state_dict()}, tmp_path / "train.pth")
    loaded = load_state_dict(tmp_path / "train.pth")
    assert sorted(loaded) == ["bias", "weight"]
    np.testing.assert_array_equal(loaded["weight"], net.weight.detach().numpy())

    ema = {k: v + 1 if v.is_floating_point() else v for k, v in torch_state_dict.items()}
    torch.save({"params": torch_state_dict, "params_ema": ema}, tmp_path / "ema.pth")
    with pytest.raises(CheckpointError, match="'params', 'params_ema'.*key="):
        load_state_dict(tmp_path / "ema.pth")
    _assert_same(load_state_dict(tmp_path / "ema.pth", key="params_ema"), ema)
    with pytest.raises(CheckpointError, match="no entry 'weights'.*'params'"):
        load_state_dict(tmp_path / "ema.pth", key="weights")


def test_torch_whole_module_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save(torch.nn.Conv2d(1, 1, 1), tmp_path / "module.pth")
    with pytest.raises(UnsafeCheckpointError, match="torch.nn.modules.conv.Conv2d.*state_dict"):
        load_state_dict(tmp_path / "module.pth")


# ---------------------------------------------------------------------------------
# Flat formats.


def test_safetensors_round_trip(tmp_path):
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    arrays = {
        "module.conv.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "module.conv.bias": rng.standard_normal(4).astype(np.float16),
        "module.bn.num_batches_tracked": np.array(12, dtype=np.int64),
    }
    save_file(arrays, str(tmp_path / "w.safetensors"))
    loaded = load_state_dict(tmp_path / "w.safetensors")
    assert sorted(loaded) == ["bn.num_batches_tracked", "conv.bias", "conv.weight"]
    for name, array in arrays.items():
        got = loaded[name[len("module."):]]
        assert got.dtype == array.dtype
        np.testing.assert_array_equal(got, array)
    assert sorted(load_state_dict(tmp_path / "w.safetensors", key="module")) == sorted(loaded)


def test_safetensors_bfloat16_from_torch(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    weight = torch.randn(5, 3, dtype=torch.bfloat16)
    save_file({"w": weight}, str(tmp_path / "bf16.safetensors"))
    loaded = load_state_dict(tmp_path / "bf16.safetensors")["w"]
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, weight.float().numpy())


def test_npz_with_prefix(tmp_path):
    weight = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.savez(tmp_path / "golden.npz", input=np.zeros((1, 3, 4, 4)), output_0=np.ones(2),
             **{"sd/conv.weight": weight, "sd/conv.bias": np.zeros(2, np.float32), "aux/kernel": weight})
    auto = load_state_dict(tmp_path / "golden.npz")
    assert sorted(auto) == ["conv.bias", "conv.weight"]
    np.testing.assert_array_equal(auto["conv.weight"], weight)
    assert sorted(load_state_dict(tmp_path / "golden.npz", key="sd/")) == sorted(auto)

    np.savez(tmp_path / "two.npz", **{"net/a": weight, "ema/a": weight})
    with pytest.raises(CheckpointError, match="ema/, net/.*key="):
        load_state_dict(tmp_path / "two.npz")
    with pytest.raises(CheckpointError, match="no entries under prefix 'model'"):
        load_state_dict(tmp_path / "two.npz", key="model")


def test_golden_files_match_parity_reader(golden_dir):
    from jaxir.parity import golden_state_dict

    path = sorted(golden_dir.glob("*.npz"))[0]
    with np.load(path) as archive:
        expected = golden_state_dict({k: archive[k] for k in archive.files})
    loaded = load_state_dict(path)
    assert list(loaded) == list(expected)
    for name, array in expected.items():
        np.testing.assert_array_equal(loaded[name], array)


# ---------------------------------------------------------------------------------
# Files that are not readable checkpoints.


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_state_dict(tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="not a file"):
        load_state_dict(tmp_path)


@pytest.mark.parametrize("name, content, message", [
    ("garbage.pth", b"definitely not a checkpoint" * 10, "not a recognised checkpoint"),
    ("legacy.pth", b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02M\xe9\x03.", "legacy .*re-save"),
    ("plain.pkl", pickle.dumps({"a": 1}, protocol=2), "plain pickle"),
    ("truncated.pth", b"PK\x03\x04" + b"\x00" * 30, "damaged or truncated zip"),
    ("bad.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage", "unreadable safetensors"),
    ("bad.npz", b"not a zip", "not a readable .npz"),
])
def test_unreadable_files_give_clear_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as info:
        load_state_dict(path)
    assert str(path) in str(info.value)


def test_zip_without_torch_layout(tmp_path):
    with zipfile.ZipFile(tmp_path / "other.pth", "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(CheckpointError, match="other.pth: not a PyTorch checkpoint"):
        load_state_dict(tmp_path / "other.pth")


def test_torch_legacy_format_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.ones(2)}, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="old.pth: a legacy .*torch.save"):
        load_state_dict(tmp_path / "old.pth")


def test_no_state_dict_found(tmp_path):
    path = write_torch_zip(tmp_path / "meta.pth", pickle.dumps({"epoch": 3, "lr": 0.1}, protocol=2))
    with pytest.raises(CheckpointError, match="found no dict of tensors.*'epoch': int"):
        load_state_dict(path)
