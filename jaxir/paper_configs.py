"""Paper configuration names, derived from the experiment recipes.

Every `experiments/<file>.py` with `get_config(arg)` yields one name per argument
it accepts: `<file>-<arg>` with underscores as hyphens (`nafnet_gopro.py:width32`
-> `nafnet-gopro-width32`, `restormer_dpdd.py:dual` -> `restormer-dpdd-dual`). The
arguments are the file's `VARIANTS` (the keys, when it is a dict); a file with
neither is one name without an argument. A new recipe file is a new name; no
code changes here.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.util
import pathlib
from typing import Any

EXPERIMENTS_DIR = pathlib.Path(__file__).resolve().parents[1] / "experiments"


@dataclasses.dataclass(frozen=True)
class PaperConfig:
    name: str
    file: pathlib.Path
    arg: str | None

    @property
    def spec(self) -> str:
        """The `--config` value for the CLI."""
        path = f"experiments/{self.file.name}" if self.file.parent == EXPERIMENTS_DIR else str(self.file)
        return f"{path}:{self.arg}" if self.arg else path

    def load(self):
        """The experiment's ConfigDict."""
        from jaxir.config import load_config

        return load_config(f"{self.file}:{self.arg}" if self.arg else str(self.file))

    def model(self) -> tuple[str, dict[str, Any]]:
        """(registered model name, its kwargs)."""
        config = self.load()
        kwargs = config.model.get("kwargs", {})
        kwargs = kwargs.to_dict() if hasattr(kwargs, "to_dict") else dict(kwargs)
        return config.model.name, kwargs


def normalize(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _arguments(module) -> tuple[str | None, ...]:
    args = getattr(module, "VARIANTS", None)
    return tuple(args) if args else (None,)


def _load_module(path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(f"_jaxir_paper_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def paper_configs(directory: str | pathlib.Path | None = None) -> dict[str, PaperConfig]:
    """name -> PaperConfig for every experiment recipe (in `directory`, default experiments/) and argument."""
    return dict(_scan(pathlib.Path(directory or EXPERIMENTS_DIR).resolve()))


@functools.cache
def _scan(directory: pathlib.Path) -> tuple[tuple[str, PaperConfig], ...]:
    configs: dict[str, PaperConfig] = {}
    for path in sorted(directory.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        module = _load_module(path)
        if not callable(getattr(module, "get_config", None)):
            continue
        for arg in _arguments(module):
            name = normalize(path.stem + (f"-{arg}" if arg else ""))
            configs[name] = PaperConfig(name, path, arg)
    return tuple(configs.items())


def get_paper_config(name: str) -> PaperConfig:
    configs = paper_configs()
    key = normalize(name)
    if key not in configs:
        raise KeyError(f"unknown paper config {name!r}; known: {', '.join(configs)}")
    return configs[key]
