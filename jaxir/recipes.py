"""Recipe fidelity: each experiments/ config held against its paper's official training values.

The values live as data in `experiments/recipes.toml` (format in its header):
one `[[recipe]]` block per config and set of variants, naming the official
repository and commit (`[sources]`), and one row per training value: what the
official file says (`official`, at `file` and `key`), the config key that holds
it in jaxir (`config`) and the value that key must have (`expect`, by default
the official one; a string `"= ..."` derives it, e.g. epochs times iterations
per epoch). A row with `deviation` is a deliberate difference, with its reason.

`check(spec)` loads one config variant and compares every row; `jaxir recipe
CONFIG[:variant]` prints the result; tests/test_recipes.py checks every config.
"""
from __future__ import annotations

import ast
import dataclasses
import math
import pathlib
import tomllib
from typing import Any, Iterable

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
TABLE = EXPERIMENTS / "recipes.toml"
NOT_CONFIGS = ("__init__", "base")

# Every official recipe block must state these (an item may be refined: 'schedule.eta_min' counts as 'schedule').
REQUIRED_ITEMS = ("iterations", "global_batch", "crop", "optimizer", "lr", "betas", "eps", "weight_decay",
                  "schedule", "warmup", "clip_norm", "ema", "loss", "augmentation", "seed")
# Config keys computed from what jaxir's code fixes rather than read from the config.
PSEUDO_KEYS = {"@optimizer": lambda config: "AdamW"}  # jaxir.train.optim always builds optax.adamw

_FUNCTIONS = {"ceil": math.ceil, "floor": math.floor, "sum": sum, "len": len, "min": min, "max": max,
              "range": range, "int": int, "round": round}
_ALLOWED_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name, ast.Load, ast.Call, ast.List,
                  ast.Tuple, ast.ListComp, ast.comprehension, ast.Compare, ast.Subscript, ast.Slice, ast.IfExp,
                  ast.Store, ast.operator, ast.unaryop, ast.cmpop, ast.BoolOp, ast.boolop)


class RecipeError(ValueError):
    """The recipe table is malformed, or names a config or variant that does not exist."""


def evaluate(expr: str, names: dict[str, Any]) -> Any:
    """An arithmetic formula over bound names (ceil, sum, list comprehensions; nothing else)."""
    tree = ast.parse(expr.strip(), mode="eval")
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise RecipeError(f"formula {expr!r}: {type(node).__name__} is not allowed")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS):
            raise RecipeError(f"formula {expr!r}: only {sorted(_FUNCTIONS)} may be called")
    # Names go in the globals: a comprehension's scope does not see eval's locals.
    return eval(compile(tree, "<recipe>", "eval"), {"__builtins__": {}, **_FUNCTIONS, **names})  # noqa: S307


def plain(value: Any) -> Any:
    """ConfigDicts, tuples and FieldReferences as plain dicts, lists and values."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if hasattr(value, "get") and callable(getattr(value, "get")) and not isinstance(value, dict):
        value = value.get()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def same(a: Any, b: Any) -> bool:
    """Equal as recipe values: numbers up to float rounding, bools only to bools, lists and dicts elementwise."""
    a, b = plain(a), plain(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0) or a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def lookup(config: Any, key: str | list[str]) -> Any:
    """The config value at a dotted key (or the list of values at several keys)."""
    if isinstance(key, list):
        return [lookup(config, k) for k in key]
    if key in PSEUDO_KEYS:
        return PSEUDO_KEYS[key](config)
    value = config
    for part in key.split("."):
        if hasattr(value, "keys") and part in value.keys():
            value = value[part]
        else:
            raise KeyError(key)
    return plain(value)


@dataclasses.dataclass
class RowResult:
    item: str
    official: Any
    source: str
    config_key: str | list[str] | None
    actual: Any
    expected: Any
    status: str  # 'ok', 'deviation', 'MISMATCH' (or 'info' for values that only feed derivations)
    deviation: str = ""
    note: str = ""
    formula: str = ""  # how the expected value is derived, when it is


@dataclasses.dataclass
class RecipeReport:
    spec: str
    repo: str = ""
    commit: str = ""
    file: str = ""
    reason: str = ""  # why a config has no official recipe
    rows: list[RowResult] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def mismatches(self) -> list[RowResult]:
        return [r for r in self.rows if r.status == "MISMATCH"]

    @property
    def deviations(self) -> list[RowResult]:
        return [r for r in self.rows if r.status == "deviation"]

    @property
    def ok(self) -> bool:
        return not self.problems and not self.mismatches

    def format(self) -> str:
        """One entry per row: the official value and where it is written, jaxir's value and its config key."""
        lines = [self.spec]
        if self.reason:
            lines.append(f"  no official recipe: {self.reason}")
        else:
            lines.append(f"  official code: {self.repo} at {self.commit}, {self.file}")
        for r in self.rows:
            lines.append(f"  {r.status:10s}{r.item}")
            official = _text(r.official) if r.official is not None else f"{r.formula} = {_text(r.expected)}"
            lines.append(f"      official  {official:30s}  {r.source}")
            if r.config_key is not None:
                lines.append(f"      jaxir     {_text(r.actual):30s}  {_key_text(r.config_key)}")
            if r.status == "MISMATCH":
                lines.append(f"      expected  {_text(r.expected)}")
            if r.deviation:
                lines.append(f"      deviation {r.deviation}")
            if r.note:
                lines.append(f"      note      {r.note}")
        for problem in self.problems:
            lines.append(f"  PROBLEM   {problem}")
        verdict = "OK" if self.ok else "FAIL"
        lines.append(f"  {verdict}: {len(self.rows)} rows, {len(self.deviations)} deviations, "
                     f"{len(self.mismatches)} mismatches, {len(self.problems)} problems")
        return "\n".join(lines)


def _key_text(key) -> str:
    return ", ".join(key) if isinstance(key, list) else key


def _text(value: Any) -> str:
    return value if isinstance(value, str) else repr(plain(value))


# ----------------------------------------------------------------------------
# The table.


def load_table(path: pathlib.Path | str = TABLE) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


def config_files(directory: pathlib.Path = EXPERIMENTS) -> list[str]:
    return sorted(p.name for p in directory.glob("*.py") if p.stem not in NOT_CONFIGS)


def all_specs(directory: pathlib.Path = EXPERIMENTS) -> list[str]:
    """'file.py:variant' (or 'file.py') for every experiments/ config and every variant it declares."""
    from jaxir.config import config_variants

    specs = []
    for name in config_files(directory):
        specs.extend(name if v == "" else f"{name}:{v}" for v in config_variants(str(directory / name)))
    return specs


def split_spec(spec: str) -> tuple[str, str]:
    """('file.py', variant) from 'experiments/file.py:variant', 'file.py' or 'file'."""
    path, _, variant = spec.partition(":")
    name = pathlib.Path(path).name
    return (name if name.endswith(".py") else name + ".py"), variant


def _block_variants(block: dict) -> list[str]:
    return list(block.get("variants", [""]))


def find_block(table: dict, name: str, variant: str) -> dict | None:
    matches = [b for b in table.get("recipe", []) if b.get("config") == name and variant in _block_variants(b)]
    if len(matches) > 1:
        raise RecipeError(f"{name}:{variant} has {len(matches)} [[recipe]] blocks in {TABLE.name}; keep one")
    return matches[0] if matches else None


def missing_rows_message(spec: str) -> str:
    return (f"{spec} has no rows in experiments/{TABLE.name}: add a [[recipe]] block with config = "
            f"{split_spec(spec)[0]!r} and variants naming {split_spec(spec)[1]!r} (README, 'Recipe fidelity')")


def _rows_for(table: dict, block: dict, variant: str) -> list[dict]:
    rows: list[dict] = []
    for name in block.get("templates", []):
        if name not in table.get("template", {}):
            raise RecipeError(f"{block['config']}: unknown template {name!r}")
        rows.extend(dict(r) for r in table["template"][name].get("rows", []))
    rows.extend(dict(r) for r in block.get("rows", []))
    # A later row of the same item (the block's, or a variant's own) replaces an earlier one in place.
    chosen: dict[str, dict] = {}
    for row in rows:
        if variant in row.get("variants", [variant]):
            chosen[row["item"]] = row
    ordered = []
    for row in rows:
        if row["item"] in chosen and chosen[row["item"]] not in ordered:
            ordered.append(chosen[row["item"]])
    return ordered


def _source_text(row: dict, block: dict) -> str:
    fmt = block.get("fmt", {})
    if "cite" in row:
        return f"[cite] {row['cite']}"
    file = row.get("file", block.get("file", "")).format(**fmt)
    key = row.get("key", "")
    return f"{file}: {key}" if key else file


def check(spec: str, overrides: Iterable[str] = (), table: dict | None = None) -> RecipeReport:
    """Compare one config variant (`file.py[:variant]`, overrides applied) with its rows of the table."""
    from jaxir.config import apply_overrides, config_variants, load_config

    table = load_table() if table is None else table
    name, variant = split_spec(spec)
    variants = config_variants(name)
    variant = variant or variants[0]
    spec = name if variant == "" else f"{name}:{variant}"
    if variant not in variants:
        raise RecipeError(f"{name} has no variant {variant!r}; it declares {variants}")
    report = RecipeReport(spec)
    block = find_block(table, name, variant)
    if block is None:
        report.problems.append(missing_rows_message(spec))
        return report
    if "reason" in block:
        report.reason = block["reason"]
        return report
    source = table.get("sources", {}).get(block.get("source", ""))
    if source is None:
        raise RecipeError(f"{spec}: source {block.get('source')!r} is not in [sources]")
    report.repo, report.commit, report.file = source["repo"], source["commit"], block.get("file", "")
    config = apply_overrides(load_config(f"{name}:{variant}" if variant else name), list(overrides))

    names: dict[str, Any] = {}
    pending = _rows_for(table, block, variant)
    results: dict[int, RowResult] = {}
    order = {id(r): i for i, r in enumerate(pending)}
    while pending:
        deferred = []
        for row in pending:
            try:
                results[order[id(row)]] = _check_row(row, block, config, names)
            except NameError:
                deferred.append(row)
        if len(deferred) == len(pending):
            for row in deferred:
                report.problems.append(f"row {row['item']!r}: its formula {row.get('expect')!r} uses a name "
                                       f"no row binds")
            break
        pending = deferred
    report.rows = sorted((results[i] for i in sorted(results)), key=_display_rank)

    for row in report.rows:
        if row.config_key is None and row.status != "info" and not row.deviation:
            report.problems.append(f"row {row.item!r} has no config key, no deviation and binds nothing")
    stated = {r.item.split(".")[0] for r in report.rows}
    for item in REQUIRED_ITEMS:
        if item not in stated:
            report.problems.append(f"no row for {item!r} (every official recipe states {', '.join(REQUIRED_ITEMS)})")
    return report


DISPLAY_ORDER = ("train_pairs", "epochs", "gpus", "global_batch", "steps_per_epoch", "iterations", "crop",
                 "optimizer", "lr", "betas", "eps", "weight_decay", "schedule", "warmup", "clip_norm", "ema", "loss",
                 "augmentation", "seed", "model", "data", "train_data")


def _display_rank(row: RowResult) -> int:
    prefix = row.item.split(".")[0]
    return DISPLAY_ORDER.index(prefix) if prefix in DISPLAY_ORDER else len(DISPLAY_ORDER)


def _check_row(row: dict, block: dict, config: Any, names: dict[str, Any]) -> RowResult:
    official = row.get("official")
    expect = row.get("expect", official)
    formula = ""
    if isinstance(expect, str) and expect.startswith("="):
        formula = expect[1:].strip()
        expect = evaluate(formula, {**names, "official": official})
    if "bind" in row:
        names[row["bind"]] = expect
    key = row.get("config")
    deviation = row.get("deviation", "")
    result = RowResult(item=row["item"], official=official, source=_source_text(row, block), config_key=key,
                       actual=None, expected=expect, status="info", deviation=deviation, note=row.get("note", ""),
                       formula=formula)
    if official is None and "expect" not in row:
        raise RecipeError(f"row {row['item']!r} has neither an official value nor a derivation")
    if key is None:
        result.status = "deviation" if deviation else "info"
        return result
    try:
        result.actual = lookup(config, key)
    except KeyError:
        result.actual = "<missing>"
        result.status = "MISMATCH"
        return result
    if not same(result.actual, expect):
        result.status = "MISMATCH"
    else:
        result.status = "deviation" if deviation else "ok"
    return result


def check_table(table: dict | None = None, directory: pathlib.Path = EXPERIMENTS) -> list[str]:
    """Table-level problems: blocks naming configs or variants that do not exist, commits that disagree."""
    from jaxir.config import config_variants

    table = load_table() if table is None else table
    problems = []
    names = set(config_files(directory))
    for block in table.get("recipe", []):
        name = block.get("config", "")
        if name not in names:
            problems.append(f"[[recipe]] block for {name!r}: no such config in experiments/")
            continue
        declared = config_variants(str(directory / name))
        for variant in _block_variants(block):
            if variant not in declared:
                problems.append(f"[[recipe]] block for {name}: variant {variant!r} is not in its VARIANTS {declared}")
        if "reason" not in block and block.get("source") not in table.get("sources", {}):
            problems.append(f"[[recipe]] block for {name}: source {block.get('source')!r} is not in [sources]")
    return problems
