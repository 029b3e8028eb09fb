"""The model zoo manifest and `jaxir zoo list/convert` on checkpoints the tests write themselves."""
from __future__ import annotations

import json
import pathlib
import re

import numpy as np
import pytest

from jaxir import evaluation, registry, zoo
from jaxir.cli import main
from jaxir.io import load_weights
from jaxir.paper_configs import paper_configs

ENTRIES = zoo.load_manifest()
UNRELEASED = zoo.load_unreleased()


def test_manifest_entries_are_complete_and_point_at_official_pages():
    assert len(ENTRIES) >= 40
    configs = paper_configs()
    for e in ENTRIES.values():
        assert e.page.startswith("https://"), e.name
        assert e.task and e.dataset and e.params > 0, e.name
        assert not e.sha256 or re.fullmatch(r"[0-9a-f]{64}", e.sha256), e.name
        if e.config:
            assert e.config in configs, e.name
        else:
            assert e.model in registry.model_names(), e.name
        if e.benchmark:
            benchmark = evaluation.BENCHMARKS[e.benchmark]
            assert set(e.scores) <= {s.name for s in benchmark.sets}, e.name
            assert e.source or not e.scores, e.name
    # The headline checkpoints of each paper, by the names the papers' configs give.
    for name in ("nafnet-gopro-width32", "nafnet-sidd-width64", "restormer-dpdd-dual", "restormer-gopro",
                 "mimo-unet-plus-gopro", "convir-gopro-l", "xydeblur-gopro", "stripformer-gopro-finetune",
                 "p2ikt-dpdd"):
        assert name in ENTRIES


def _shipped_models() -> set[str]:
    # The architectures jaxir ships (other tests register tiny test-only models).
    return {n for n in registry.model_names()
            if getattr(registry.get_entry(n).builder, "__module__", "") in registry._MODEL_MODULES}


def test_every_registered_model_has_official_checkpoints_in_the_zoo():
    """Each shipped model has official checkpoints, or an [[unreleased]] entry saying why there are none."""
    covered = {e.resolve()[0] for e in ENTRIES.values()}
    shipped = _shipped_models()
    assert {"nafnet", "restormer", "p2ikt"} <= shipped
    missing = sorted(shipped - covered - set(UNRELEASED))
    assert not missing, (f"registered models with neither a [[checkpoint]] nor an [[unreleased]] entry in "
                         f"jaxir/zoo/manifest.toml: {missing}")


def test_unreleased_entries_are_registered_models_without_checkpoints_and_give_a_reason():
    assert {"dvsr", "dcpt_classifier"} <= set(UNRELEASED)
    covered = {e.resolve()[0] for e in ENTRIES.values()}
    shipped = _shipped_models()
    for u in UNRELEASED.values():
        assert u.model in shipped, u.model
        assert u.model not in covered, f"{u.model} has a [[checkpoint]]: drop its [[unreleased]] entry"
        assert len(u.reason) > 20 and (not u.page or u.page.startswith("https://")), u.model


def test_the_coverage_check_fails_for_a_model_with_neither(tmp_path):
    """A manifest without the [[unreleased]] list leaves dvsr uncovered: the coverage test would fail."""
    text = zoo.MANIFEST.read_text()
    without = tmp_path / "manifest.toml"
    without.write_text(text[: text.index("[[unreleased]]")])
    assert zoo.load_unreleased(without) == {}
    covered = {e.resolve()[0] for e in zoo.load_manifest(without).values()}
    assert "dvsr" in _shipped_models() - covered
    with pytest.raises(ValueError, match="give the reason"):
        zoo.Unreleased(model="dvsr", reason="")


def test_zoo_list_prints_every_entry(capsys):
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    for e in ENTRIES.values():
        assert e.name in out
    assert "NAFNet-GoPro-width32.pth" in out and "32.8705" in out
    tail = out[out.index("No official checkpoint:"):]
    for u in UNRELEASED.values():
        assert u.model in tail and u.reason in tail


@pytest.fixture(scope="module")
def official_p2ikt(tmp_path_factory) -> pathlib.Path:
    torch = pytest.importorskip("torch")
    from jaxir.torch_reference import build_reference

    entry = ENTRIES["p2ikt-dpdd"]
    name, kwargs = entry.resolve()
    torch.manual_seed(0)
    reference = build_reference(name, **kwargs)
    path = tmp_path_factory.mktemp("download") / entry.file
    torch.save({"model": reference.state_dict()}, path)  # as P2IKT's eval.py reads it
    return path


def test_zoo_convert_checks_converts_and_verifies_the_parameter_count(official_p2ikt, tmp_path, capsys):
    out = tmp_path / "p2ikt.msgpack"
    assert main(["zoo", "convert", "p2ikt-dpdd", str(official_p2ikt), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "3,318,735 parameters" in printed and "jaxir eval --benchmark dpdd" in printed
    name, kwargs, variables = load_weights(out)
    assert name == "p2ikt" and kwargs == ENTRIES["p2ikt-dpdd"].resolve()[1]
    import jax
    assert sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(variables["params"])) == 3_318_735


def test_truncated_or_wrong_files_are_refused_and_nothing_is_written(official_p2ikt, tmp_path, capsys):
    truncated = tmp_path / "P2IKT_SWA.pkl"
    data = official_p2ikt.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.msgpack"
    assert main(["zoo", "convert", "p2ikt-dpdd", str(truncated), str(out)]) == 2
    err = capsys.readouterr().err
    assert "not a readable checkpoint for p2ikt-dpdd" in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob("*.partial"))

    # The right file under the wrong name: a P2IKT checkpoint is not XYDeblur.
    assert main(["zoo", "convert", "xydeblur-gopro", str(official_p2ikt), str(out)]) == 2
    assert "does not fit xydeblur-gopro" in capsys.readouterr().err
    assert not out.exists()

    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    assert main(["zoo", "convert", "p2ikt-dpdd", str(empty), str(out)]) == 2
    assert "is empty" in capsys.readouterr().err
    assert main(["zoo", "convert", "no-such-model", str(empty), str(out)]) == 2
    assert "no zoo checkpoint 'no-such-model'" in capsys.readouterr().err


def test_published_size_and_checksum_are_checked(official_p2ikt):
    import dataclasses

    entry = ENTRIES["p2ikt-dpdd"]
    good = dataclasses.replace(entry, sha256=zoo.sha256_of(official_p2ikt), size=official_p2ikt.stat().st_size)
    zoo.check_file(good, official_p2ikt)
    with pytest.raises(zoo.ZooError, match="has sha256"):
        zoo.check_file(dataclasses.replace(good, sha256="0" * 64), official_p2ikt)
    with pytest.raises(zoo.ZooError, match="truncated or a different file"):
        zoo.check_file(dataclasses.replace(good, size=good.size + 1), official_p2ikt)


def test_a_parameter_count_mismatch_is_refused(official_p2ikt, tmp_path):
    import dataclasses

    wrong = dataclasses.replace(ENTRIES["p2ikt-dpdd"], params=3_318_736)
    with pytest.raises(zoo.ZooError, match="3,318,735 parameters; the official p2ikt-dpdd has 3,318,736"):
        zoo.convert(wrong, official_p2ikt, tmp_path / "w.msgpack")
    assert not (tmp_path / "w.msgpack").exists()


@pytest.mark.slow
def test_manifest_parameter_counts_are_the_built_models():
    """Every entry's architecture, traced abstractly, has the official parameter count."""
    import jaxir

    seen: dict[str, int] = {}
    for e in ENTRIES.values():
        name, kwargs = e.resolve()
        key = json.dumps([name, kwargs], sort_keys=True)
        if key not in seen:
            seen[key] = jaxir.count_params(name, **kwargs)
        assert seen[key] == e.params, (e.name, seen[key], e.params)


def test_a_lightning_checkpoint_converts_from_its_wrapped_network(official_p2ikt, tmp_path):
    """PromptIR, MoCE-IR and VLU-Net release Lightning files: {'state_dict': {'net.<key>': ..., <other modules>}}."""
    import dataclasses

    torch = pytest.importorskip("torch")
    plain = torch.load(official_p2ikt, map_location="cpu")["model"]
    wrapped = {f"net.{k}": v for k, v in plain.items()}
    wrapped["clip.proj.weight"] = torch.zeros(4, 4)  # a frozen helper module the Lightning model also holds
    lightning = tmp_path / "last.ckpt"
    torch.save({"epoch": 3, "global_step": 10, "state_dict": wrapped}, lightning)
    assert sum(1 for e in ENTRIES.values() if e.prefix == "net.") >= 3
    entry = dataclasses.replace(ENTRIES["p2ikt-dpdd"], key="state_dict", prefix="net.")
    count, out = zoo.convert(entry, lightning, tmp_path / "p2ikt.msgpack")
    assert count == 3_318_735 and out.exists()
    with pytest.raises(zoo.ZooError, match="has no weights under 'model.'"):
        zoo.convert(dataclasses.replace(entry, prefix="model."), lightning, tmp_path / "no.msgpack")
    assert not (tmp_path / "no.msgpack").exists()
