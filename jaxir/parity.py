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
import re
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


def count_params(model, *example_inputs, **example_kwargs) -> int:
    """Trainable parameters (the `params` collection), traced abstractly: no memory for big configs."""
    shapes = jax.eval_shape(lambda x, k: model.init(jax.random.key(0), *x, **k), example_inputs, example_kwargs)
    return int(sum(np.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(shapes.get("params", {}))))


def golden_inputs(meta: dict, arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
    names = ["input"] + sorted((k for k in arrays if k.startswith("input_")), key=lambda k: int(k.split("_")[1]))
    # Float inputs run in float32; integer inputs (timesteps, labels) keep their dtype.
    return [nchw_to_nhwc(arrays[name]).astype(np.float32 if arrays[name].dtype.kind == "f" else np.int32)
            for name in names]


def golden_state_dict(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k[len("sd/"):]: v for k, v in arrays.items() if k.startswith("sd/")}


def group_inputs(meta: dict, flat: Sequence[Any]) -> tuple[list, dict]:
    """The flat golden inputs arranged as the sidecar's `forward` passed them: (args, kwargs).

    `model(input, [input_1, input_2])` gives args [input, (input_1, input_2)] (a list
    argument becomes a tuple); `model(input, context=input_1)` gives kwargs {'context': ...}.
    Without a parsable `forward` every input is positional.
    """
    names = ["input"] + [f"input_{i}" for i in range(1, len(flat))]
    by_name = dict(zip(names, flat))
    match = re.fullmatch(r"\s*model\((.*)\)\s*", meta.get("forward", "").split(";")[0].strip())
    if not match:
        return list(flat), {}
    args, kwargs, used = [], {}, set()
    for part in _split_top_level(match.group(1)):
        key, _, value = part.rpartition("=") if re.match(r"^\w+\s*=", part) else ("", "", part)
        value = value.strip()
        if value.startswith("[") or value.startswith("("):
            members = [v.strip() for v in _split_top_level(value[1:-1])]
            if not all(v in by_name for v in members):
                return list(flat), {}
            item = tuple(by_name[v] for v in members)
            used.update(members)
        elif value in by_name:
            item = by_name[value]
            used.add(value)
        else:
            return list(flat), {}  # a forward we cannot read: fall back to positional inputs
        if key:
            kwargs[key.strip()] = item
        else:
            args.append(item)
    # Inputs a configuration adds beyond the golden call (a paper config's class labels) follow positionally.
    args += [by_name[n] for n in names if n not in used]
    return args, kwargs


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "[("
        depth -= char in "])"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _abstract(tree):
    # Integer inputs (timesteps, class labels) keep their dtype.
    return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype
                                                                 if np.issubdtype(np.asarray(x).dtype, np.integer)
                                                                 else jnp.float32), tree)


def load_official_variables(meta: dict, state_dict: dict[str, np.ndarray], example_inputs: Sequence[np.ndarray]):
    """(entry, model, variables) for an official class + kwargs + state dict."""
    entry, model = registry.build_official(meta["repo"], meta["class"], meta.get("kwargs", {}), meta.get("file"))
    args, kwargs = group_inputs(meta, [_abstract(x) for x in example_inputs])
    variables = convert_state_dict(state_dict, model, *args, hooks=entry.convert_hooks, **kwargs)
    return entry, model, variables


def check_parity(path: str | pathlib.Path, atol: float = ATOL, rtol: float = RTOL) -> ParityReport:
    meta, arrays = load_golden(path)
    inputs = golden_inputs(meta, arrays)
    entry, model, variables = load_official_variables(meta, golden_state_dict(arrays), inputs)
    args, kwargs = group_inputs(meta, inputs)
    outputs = flatten_outputs(jax.jit(lambda v, a, k: model.apply(v, *a, train=False, **k))(variables, args, kwargs))
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

    param_count = count_params(model, *args, **kwargs)
    paper_counts = {}
    for name, config in meta.get("paper_configs", {}).items():
        paper_entry, paper_model = registry.build_official(meta["repo"], meta["class"], config["kwargs"],
                                                           meta.get("file"))
        p_args, p_kwargs = group_inputs(meta, _example_inputs_for(paper_entry, paper_model, inputs))
        paper_counts[name] = (count_params(paper_model, *p_args, **p_kwargs), int(config["param_count"]))
    return ParityReport(meta["model_id"], entry.name, reports, param_count, int(meta["param_count"]), paper_counts)


_CHANNEL_ATTRIBUTES = ("img_channel", "inp_channels", "in_channels", "in_chans")


def input_channels(model) -> int:
    """The input channel count a model's config declares (the official attribute names), else 3."""
    for attribute in _CHANNEL_ATTRIBUTES:
        value = getattr(model, attribute, None)
        if isinstance(value, int):
            return value
    return 3


def example_inputs(entry, model, batch: int = 1, height: int = 64, width: int | None = None) -> list:
    """Abstract inputs for tracing `model`: the entry's own (image, timesteps, ...) or one NHWC image."""
    width = height if width is None else width
    if entry.example_inputs is not None:
        return list(entry.example_inputs(model, batch, height, width))
    return [jax.ShapeDtypeStruct((batch, height, width, input_channels(model)), jnp.float32)]


def _example_inputs_for(entry, model, inputs: Sequence[np.ndarray]) -> list:
    """Abstract inputs shaped like the golden ones, with the first input's channels set by the model's config.

    A model taking timesteps or labels declares `example_inputs`; one whose further
    inputs depend on its config (encoder features of a configured width) declares
    `example_input_shapes` in its registry entry.
    """
    if entry.example_inputs is not None:
        n, h, w = inputs[0].shape[:3]
        return example_inputs(entry, model, n, h, w)
    shapes = [tuple(x.shape) for x in inputs]
    shapes[0] = (*shapes[0][:-1], input_channels(model))
    if entry.example_input_shapes is not None:
        shapes = [tuple(s) for s in entry.example_input_shapes(model, shapes)]
    dtypes = [x.dtype for x in inputs]
    return [jax.ShapeDtypeStruct(s, dtypes[i] if i < len(dtypes) else jnp.float32) for i, s in enumerate(shapes)]
