"""The model zoo: official pretrained checkpoints of the ported papers, as data (`manifest.toml`).

    jaxir zoo list                          # every checkpoint, its page and published scores
    jaxir zoo convert NAME FILE [OUT]       # check a downloaded file, convert it, verify the parameter count

Downloads are manual (the official pages link Google Drive / Baidu). `convert`
checks the file against what the authors publish (size, sha256 where known),
converts it with the entry's model and kwargs, counts the parameters against the
official count and only then writes the jaxir weights; any failure writes nothing.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import tomllib
from typing import Any, Mapping

MANIFEST = pathlib.Path(__file__).with_name("manifest.toml")


class ZooError(ValueError):
    """A downloaded file that is not the checkpoint the manifest describes."""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    name: str
    task: str
    dataset: str
    page: str
    params: int
    download: str = ""
    file: str = ""
    sha256: str = ""
    size: int = 0
    key: str = ""
    prefix: str = ""
    config: str = ""
    model: str = ""
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    benchmark: str = ""
    scores: Mapping[str, Mapping[str, float]] = dataclasses.field(default_factory=dict)
    source: str = ""
    note: str = ""

    def __post_init__(self):
        if bool(self.config) == bool(self.model):
            raise ValueError(f"zoo entry {self.name!r}: give either config or model (+ kwargs)")
        if self.sha256 and len(self.sha256) != 64:
            raise ValueError(f"zoo entry {self.name!r}: sha256 must be 64 hex digits")

    def resolve(self) -> tuple[str, dict[str, Any]]:
        """(registered model, kwargs)."""
        from jaxir.api import resolve

        return resolve(self.config) if self.config else resolve(self.model, **dict(self.kwargs))

    @property
    def eval_command(self) -> str:
        if not self.benchmark:
            return ""
        config = f" --config {self._config_spec()}" if self.config else ""
        return (f"jaxir eval --benchmark {self.benchmark}{config} --checkpoint {self.name}.msgpack "
                f"--data-dir DATA --paper")

    def _config_spec(self) -> str:
        from jaxir.paper_configs import get_paper_config

        return get_paper_config(self.config).spec


@dataclasses.dataclass(frozen=True)
class Unreleased:
    """A registered model whose authors publish no pretrained checkpoint, and why."""
    model: str
    reason: str
    page: str = ""

    def __post_init__(self):
        if not self.reason:
            raise ValueError(f"[[unreleased]] {self.model!r}: give the reason")


def load_unreleased(path: str | os.PathLike | None = None) -> dict[str, Unreleased]:
    """model -> Unreleased: the models with no official checkpoint, in manifest order."""
    with open(path or MANIFEST, "rb") as file:
        data = tomllib.load(file)
    entries: dict[str, Unreleased] = {}
    for raw in data.get("unreleased", []):
        entry = Unreleased(**raw)
        if entry.model in entries:
            raise ValueError(f"[[unreleased]] {entry.model!r} appears twice")
        entries[entry.model] = entry
    return entries


def load_manifest(path: str | os.PathLike | None = None) -> dict[str, Checkpoint]:
    """name -> Checkpoint, in manifest order."""
    with open(path or MANIFEST, "rb") as file:
        data = tomllib.load(file)
    entries: dict[str, Checkpoint] = {}
    for raw in data.get("checkpoint", []):
        entry = Checkpoint(**raw)
        if entry.name in entries:
            raise ValueError(f"zoo entry {entry.name!r} appears twice")
        entries[entry.name] = entry
    return entries


def get(name: str, manifest: Mapping[str, Checkpoint] | None = None) -> Checkpoint:
    entries = load_manifest() if manifest is None else manifest
    if name not in entries:
        raise KeyError(f"no zoo checkpoint {name!r}; known: {', '.join(entries)}")
    return entries[name]


def _format_scores(entry: Checkpoint) -> str:
    parts = []
    for set_name, metrics in entry.scores.items():
        values = " ".join(f"{m.upper()} {v:g}" for m, v in metrics.items())
        parts.append(f"{set_name}: {values}")
    return "; ".join(parts) or "–"


def format_table(entries: Mapping[str, Checkpoint] | None = None,
                 unreleased: Mapping[str, Unreleased] | None = None) -> str:
    if entries is None:
        entries = load_manifest()
        unreleased = load_unreleased() if unreleased is None else unreleased
    lines = []
    for e in entries.values():
        lines.append(f"{e.name}  [{e.task}, {e.dataset}]  {e.params:,} params")
        lines.append(f"    file: {e.file or '(not named by the authors)'}  sha256: {e.sha256 or 'not published'}")
        lines.append(f"    page: {e.page}")
        lines.append(f"    published: {_format_scores(e)}" + (f"  ({e.benchmark})" if e.benchmark else ""))
        if e.note:
            lines.append(f"    note: {e.note}")
    if unreleased:
        lines.append("")
        lines.append("No official checkpoint:")
        for u in unreleased.values():
            lines.append(f"{u.model}  {u.reason}" + (f"  ({u.page})" if u.page else ""))
    return "\n".join(lines)


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_file(entry: Checkpoint, path: str | os.PathLike) -> None:
    """Size and checksum against what the authors publish; raises ZooError."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise ZooError(f"{path} is empty (an interrupted download?)")
    if entry.size and size != entry.size:
        raise ZooError(f"{path} has {size:,} bytes; the official {entry.file or entry.name} has {entry.size:,} "
                       f"(truncated or a different file)")
    if entry.sha256:
        digest = sha256_of(path)
        if digest != entry.sha256.lower():
            raise ZooError(f"{path} has sha256 {digest}; the official {entry.file or entry.name} has "
                           f"{entry.sha256} (corrupt or a different file)")


def convert(entry: Checkpoint, path: str | os.PathLike, out: str | os.PathLike) -> tuple[int, pathlib.Path]:
    """Checks, converts and verifies `path`; writes jaxir weights to `out`. Returns (parameters, out)."""
    import jax
    import numpy as np

    from jaxir import registry
    from jaxir.api import example_inputs
    from jaxir.convert.state_dict import convert_state_dict
    from jaxir.convert.torch_io import load_state_dict
    from jaxir.io import save_weights

    check_file(entry, path)
    name, kwargs = entry.resolve()
    module = registry.build_model(name, **kwargs)
    try:
        state_dict = load_state_dict(path, key=entry.key or None)
    except Exception as err:  # the reader raises several types for damaged archives
        raise ZooError(f"{path} is not a readable checkpoint for {entry.name} (truncated or corrupt?): {err}") \
            from None
    if entry.prefix:  # e.g. a Lightning module's wrapped network, beside its other submodules
        state_dict = {k[len(entry.prefix):]: v for k, v in state_dict.items() if k.startswith(entry.prefix)}
        if not state_dict:
            raise ZooError(f"{path} has no weights under {entry.prefix!r}: not the checkpoint {entry.name} names")
    try:
        variables = convert_state_dict(state_dict, module, *example_inputs(module, name),
                                       hooks=registry.get_entry(name).convert_hooks)
    except ValueError as err:
        raise ZooError(f"{path} does not fit {entry.name} ({name} {kwargs}): {err}") from None
    count = int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(variables.get("params", {}))))
    if count != entry.params:
        raise ZooError(f"{path} converts to {count:,} parameters; the official {entry.name} has {entry.params:,}")
    out = pathlib.Path(out)
    partial = out.with_name(out.name + ".partial")
    try:
        save_weights(partial, name, kwargs, variables)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return count, out
