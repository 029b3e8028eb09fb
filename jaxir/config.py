"""Experiment configs: Python files with `get_config(arg)`, plus `--config.key=value` overrides."""
from __future__ import annotations

import ast
import importlib.util
import pathlib
import sys

import ml_collections


class ConfigError(ValueError):
    """A config file, argument or override the user gave is wrong."""


def config_path(path_str: str) -> pathlib.Path:
    """The config file `path_str` names: as given, relative to the project root, or inside experiments/."""
    root = pathlib.Path(__file__).resolve().parents[1]
    for candidate in (pathlib.Path(path_str), root / path_str, root / "experiments" / path_str):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"config file not found: {path_str}")


def load_module(path_str: str):
    """Import a config file as a module (its `get_config`, and `VARIANTS` where it has variants)."""
    path = config_path(path_str)
    module_name = f"_jaxir_config_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    module_spec.loader.exec_module(module)
    return module


def config_variants(path_str: str) -> list[str]:
    """The arguments a config's `get_config` accepts, default first ([''] for a config without variants)."""
    variants = getattr(load_module(path_str), "VARIANTS", None)
    return list(variants) if variants else [""]


def load_config(spec: str) -> ml_collections.ConfigDict:
    """Load `path/to/config.py[:arg]` and call its `get_config(arg)`."""
    path_str, _, arg = spec.partition(":")
    path = config_path(path_str)
    module = load_module(str(path))
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{path} defines no get_config()")
    import inspect

    takes_arg = bool(inspect.signature(module.get_config).parameters)
    if arg and not takes_arg:
        raise ConfigError(f"{path} takes no argument, got {arg!r}")
    return module.get_config(arg) if arg else module.get_config()


def _all_keys(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in config.items():
        full = f"{prefix}{key}"
        keys.append(full)
        if isinstance(value, ml_collections.ConfigDict):
            keys.extend(_all_keys(value, full + "."))
    return keys


def _parse_value(text: str, current):
    if isinstance(current, str):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text
    if isinstance(current, bool) and isinstance(value, str):
        lowered = value.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(current, (list, tuple)) and isinstance(value, (list, tuple)):
        return type(current)(value)
    return value


def apply_overrides(config: ml_collections.ConfigDict, overrides: list[str]) -> ml_collections.ConfigDict:
    """Apply `--config.a.b=value` (or `config.a.b=value`) overrides; unknown keys are an error."""
    valid = _all_keys(config)
    for item in overrides:
        text = item[2:] if item.startswith("--") else item
        if not text.startswith("config.") or "=" not in text:
            raise ConfigError(f"bad override {item!r}: expected --config.KEY=VALUE")
        key, _, raw = text[len("config."):].partition("=")
        if key not in valid:
            raise ConfigError(f"unknown config key {key!r}; valid keys: {', '.join(valid)}")
        parent = config
        *parents, leaf = key.split(".")
        for part in parents:
            parent = parent[part]
        current = parent[leaf]
        value = _parse_value(raw, current)
        try:
            with config.unlocked() if hasattr(config, "unlocked") else _null():
                parent[leaf] = value
        except (TypeError, ValueError) as err:
            raise ConfigError(f"cannot set {key}={raw!r}: {err}") from None
    return config


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
