"""Parity against the official PyTorch code, from a golden file.

A golden file (`<model_id>.npz` + `<model_id>.json`, made by running the official
code; see shared/golden/README.md) holds random official weights, an input and
the official outputs. `check_parity` builds the jaxir model from the recorded
class and kwargs, converts the state dict, runs float32 and compares every output.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxir import registry
from jaxir.convert.state_dict import convert_state_dict

ATOL = 1e-4
RTOL = 1e-4


@dataclasses.dataclass
class OutputReport:
    index: int
    shape: tuple
    max_abs: float
    max_rel: float
    ok: bool


@dataclasses.dataclass
class ParityReport:
    model_id: str
    model_name: str
    outputs: list[OutputReport]
    param_count: int
    expected_param_count: int
    paper_counts: dict[str, tuple[int, int]]  # name -> (jaxir, official)

    @property
    def ok(self) -> bool:
        return (
            all(o.ok for o in self.outputs)
            and self.param_count == self.expected_param_count
            and all(a == b for a, b in self.paper_counts.values())
        )

    def format(self) -> str:
        lines = [f"{self.model_id}: jaxir model {self.model_name!r}"]
        for o in self.outputs:
            status = "ok" if o.ok else "MISMATCH"
            lines.append(
                f"  output_{o.index} {o.shape}: max abs err {o.max_abs:.3e}, max rel err {o.max_rel:.3e}  {status}"
            )
        status = "ok" if self.param_count == self.expected_param_count else "MISMATCH"
        lines.append(f"  parameters: {self.param_count:,} (official {self.expected_param_count:,})  {status}")
        for name, (mine, theirs) in self.paper_counts.items():
            status = "ok" if mine == theirs else "MISMATCH"
            lines.append(f"  paper config {name}: {mine:,} (official {theirs:,})  {status}")
        lines.append("PASS" if self.ok else "FAIL")
        return "\n".join(lines)


def load_golden(path: str | pathlib.Path) -> tuple[dict, dict[str, np.ndarray]]:
    path = pathlib.Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(".npz")
    sidecar = path.with_suffix(".json")
    for p in (path, sidecar):
        if not p.is_file():
            raise FileNotFoundError(f"golden file not found: {p}")
    meta = json.loads(sidecar.read_text())
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return meta, arrays


def nchw_to_nhwc(x: np.ndarray) -> np.ndarray:
    return np.transpose(x, (0, 2, 3, 1)) if x.ndim == 4 else x


def nhwc_to_nchw(x: np.ndarray) -> np.ndarray:
    return np.transpose(x, (0, 3, 1, 2)) if x.ndim == 4 else x


def flatten_outputs(outputs: Any) -> list:
    """Lists/tuples of outputs flattened depth-first, as the golden files store them."""
    if isinstance(outputs, (list, tuple)):
        return [leaf for item in outputs for leaf in flatten_outputs(item)]
    return [outputs]


def restored_output(model, outputs):
    """The full-resolution restoration among a model's outputs: the last (coarse to fine), unless the
    model's class names another with `RESTORED_OUTPUT` (e.g. (restored, auxiliary) in official order)."""
    return flatten_outputs(outputs)[getattr(model, "RESTORED_OUTPUT", -1)]


def count_params(model, *example_inputs) -> int:
    """Trainable parameters (the `params` collection), traced abstractly: no memory for big configs."""
    shapes = jax.eval_shape(lambda *x: model.init(jax.random.key(0), *x), *example_inputs)
    return int(sum(np.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(shapes.get("params", {}))))


def golden_inputs(meta: dict, arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
    names = ["input"] + sorted((k for k in arrays if k.startswith("input_")), key=lambda k: int(k.split("_")[1]))
    return [nchw_to_nhwc(arrays[name]).astype(np.float32) for name in names]


def golden_state_dict(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k[len("sd/"):]: v for k, v in arrays.items() if k.startswith("sd/")}


def load_official_variables(meta: dict, state_dict: dict[str, np.ndarray], example_inputs: Sequence[np.ndarray]):
    """(entry, model, variables) for an official class + kwargs + state dict."""
    entry, model = registry.build_official(meta["repo"], meta["class"], meta.get("kwargs", {}), meta.get("file"))
    abstract = [jax.ShapeDtypeStruct(x.shape, jnp.float32) for x in example_inputs]
    variables = convert_state_dict(state_dict, model, *abstract, hooks=entry.convert_hooks)
    return entry, model, variables


def check_parity(path: str | pathlib.Path, atol: float = ATOL, rtol: float = RTOL) -> ParityReport:
    meta, arrays = load_golden(path)
    inputs = golden_inputs(meta, arrays)
    entry, model, variables = load_official_variables(meta, golden_state_dict(arrays), inputs)
    outputs = flatten_outputs(jax.jit(lambda v, *x: model.apply(v, *x, train=False))(variables, *inputs))
    expected_names = sorted((k for k in arrays if k.startswith("output_")), key=lambda k: int(k.split("_")[1]))
    if len(outputs) != len(expected_names):
        raise ValueError(f"{meta['model_id']}: jaxir model gives {len(outputs)} outputs, official {len(expected_names)}")

    reports = []
    for index, name in enumerate(expected_names):
        want = arrays[name].astype(np.float64)
        got = nhwc_to_nchw(np.asarray(outputs[index], np.float64))
        if got.shape != want.shape:
            reports.append(OutputReport(index, want.shape, float("inf"), float("inf"), False))
            continue
        err = np.abs(got - want)
        significant = np.abs(want) > atol
        max_rel = float(np.max(err[significant] / np.abs(want[significant]))) if significant.any() else 0.0
        ok = bool(np.all(err <= atol + rtol * np.abs(want)))
        reports.append(OutputReport(index, want.shape, float(err.max()), max_rel, ok))

    param_count = count_params(model, *inputs)
    paper_counts = {}
    for name, config in meta.get("paper_configs", {}).items():
        _, paper_model = registry.build_official(meta["repo"], meta["class"], config["kwargs"], meta.get("file"))
        abstract = _example_inputs_for(paper_model, inputs)
        paper_counts[name] = (count_params(paper_model, *abstract), int(config["param_count"]))
    return ParityReport(meta["model_id"], entry.name, reports, param_count, int(meta["param_count"]), paper_counts)


_CHANNEL_ATTRIBUTES = ("img_channel", "inp_channels", "in_channels", "in_chans")


def input_channels(model) -> int:
    """The input channel count a model's config declares (the official attribute names), else 3."""
    for attribute in _CHANNEL_ATTRIBUTES:
        value = getattr(model, attribute, None)
        if isinstance(value, int):
            return value
    return 3


def _example_inputs_for(model, inputs: Sequence[np.ndarray]) -> list:
    """Abstract inputs shaped like the golden ones, with the first input's channels set by the model's config."""
    shapes = [list(x.shape) for x in inputs]
    shapes[0][-1] = input_channels(model)
    return [jax.ShapeDtypeStruct(tuple(s), jnp.float32) for s in shapes]
