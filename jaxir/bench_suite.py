"""`jaxir bench --suite paper`: every paper configuration at its training crop and full test resolution.

For each experiments/ recipe in `PAPER_SUITE`, each size (the recipe's training crop, the
benchmark's full test frame) and each dtype (float32, bfloat16 compute), one row: compile
seconds, train steps/s, images/s, peak device memory, MFU, and the JAX/PyTorch ratios
against the reference run eagerly and under `torch.compile` (where torch runs on the same
device kind: CPU, or CUDA for a GPU; never on TPU).

MFU = FLOPs per train step (XLA's cost analysis of the compiled step, no remat, so every
counted FLOP is the model's) / step time / the device's peak FLOP/s. Peaks are the vendors' dense figures
(`PEAK_TFLOPS`); on a CPU the peak is *assumed* as cores x clock x FLOPs per cycle of
its widest FMA units and printed with the rows. Memory is the device's peak bytes where the
runtime reports them, else XLA's compiled footprint of the step (arguments + outputs + temporaries).
The same code runs on CPU, GPU and TPU; `tests/test_bench_suite.py` runs a reduced suite.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import re
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxir.parity import flatten_outputs


@dataclasses.dataclass(frozen=True)
class SuiteEntry:
    label: str
    config: str  # experiments/FILE.py[:arg]
    test_hw: tuple[int, int]  # full test frame of the paper's benchmark
    model_overrides: tuple[tuple[str, object], ...] = ()


GOPRO, DPDD, SIDD = (720, 1280), (1120, 1680), (256, 256)
PAPER_SUITE: tuple[SuiteEntry, ...] = (
    SuiteEntry("NAFNet-width32 GoPro", "experiments/nafnet_gopro.py:width32", GOPRO),
    SuiteEntry("NAFNet-width64 GoPro", "experiments/nafnet_gopro.py:width64", GOPRO),
    SuiteEntry("NAFNet-width32 SIDD", "experiments/nafnet_sidd.py:width32", SIDD),
    SuiteEntry("NAFNet-width64 SIDD", "experiments/nafnet_sidd.py:width64", SIDD),
    SuiteEntry("MIMO-UNet GoPro", "experiments/mimo_unet_gopro.py", GOPRO),
    SuiteEntry("MIMO-UNet+ GoPro", "experiments/mimo_unet_plus_gopro.py", GOPRO),
    SuiteEntry("ConvIR-S GoPro", "experiments/convir_gopro.py:s", GOPRO),
    SuiteEntry("ConvIR-B GoPro", "experiments/convir_gopro.py:b", GOPRO),
    SuiteEntry("ConvIR-L GoPro", "experiments/convir_gopro.py:l", GOPRO),
    SuiteEntry("ConvIR Rain13K", "experiments/convir_derain.py", (321, 481)),  # Rain100L/H frames
    SuiteEntry("ConvIR RESIDE ITS", "experiments/convir_dehaze_its.py", (460, 620)),  # SOTS indoor
    SuiteEntry("ConvIR RESIDE OTS", "experiments/convir_dehaze_ots.py", (413, 550)),  # SOTS outdoor
    SuiteEntry("ConvIR desnow", "experiments/convir_desnow.py", (480, 640)),  # CSD
    SuiteEntry("XYDeblur GoPro", "experiments/xydeblur_gopro.py", GOPRO),
    SuiteEntry("Restormer GoPro", "experiments/restormer_gopro.py", GOPRO),
    SuiteEntry("Restormer DPDD dual-pixel", "experiments/restormer_dpdd.py:dual", DPDD),
    SuiteEntry("Stripformer GoPro", "experiments/stripformer_gopro.py", GOPRO),
    SuiteEntry("P2IKT DPDD", "experiments/p2ikt_dpdd.py", DPDD),
    SuiteEntry("P2IKT LFDOF", "experiments/p2ikt_lfdof.py", (688, 1008)),
)

# Dense peak TFLOP/s by device kind (substring match, first wins): (float32, bfloat16).
PEAK_TFLOPS: tuple[tuple[str, float, float], ...] = (
    ("H200", 67.0, 989.0), ("H100", 67.0, 989.0), ("A100", 19.5, 312.0), ("L4", 30.3, 121.0),
    ("A10", 31.2, 125.0), ("V100", 15.7, 125.0), ("TPU v6", 918.0, 918.0), ("TPU v5p", 459.0, 459.0),
    ("TPU v5 lite", 197.0, 197.0), ("TPU v5e", 197.0, 197.0), ("TPU v4", 275.0, 275.0),
    ("TPU v3", 123.0, 123.0),
)

TABLE_HEADER = (
    "| date | model | input | dtype | params | compile s | train steps/s | images/s | peak MB | GFLOP/step "
    "| MFU | torch eager steps/s | torch.compile steps/s | ratio eager | ratio compile | machine |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)


def cpu_peak_flops() -> tuple[float, str]:
    """(assumed peak FLOP/s, how it was assumed) for this CPU: cores x clock x FP32 FLOPs/cycle."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    mhz, flags = 2000.0, ""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz") and mhz == 2000.0:
                mhz = float(line.split(":", 1)[1])
            elif line.startswith("flags") and not flags:
                flags = line
    except OSError:
        pass
    # Two FMA units per core: AVX-512 16 lanes, AVX2 8 lanes, each FMA 2 FLOPs.
    per_cycle = 64 if "avx512f" in flags else 32 if "fma" in flags else 8
    peak = cores * mhz * 1e6 * per_cycle
    how = f"assumed CPU peak {peak / 1e9:.0f} GFLOP/s = {cores} cores x {mhz / 1e3:.2f} GHz x {per_cycle} FLOP/cycle"
    return peak, how


def device_peak_flops(dtype: str) -> tuple[float | None, str]:
    device = jax.devices()[0]
    if device.platform == "cpu":
        return cpu_peak_flops()
    for kind, f32, bf16 in PEAK_TFLOPS:
        if kind.lower() in device.device_kind.lower():
            peak = (bf16 if dtype == "bfloat16" else f32) * 1e12
            return peak, f"{device.device_kind} peak {peak / 1e12:.0f} TFLOP/s ({dtype}, dense)"
    return None, f"no peak known for {device.device_kind}: MFU not computed"


@dataclasses.dataclass
class SuiteRow:
    label: str
    hw: tuple[int, int]
    batch: int
    dtype: str
    params: int
    compile_s: float
    train_steps_s: float
    peak_mb: float
    flops_per_step: float
    mfu: float | None
    torch_eager_steps_s: float | None = None
    torch_compiled_steps_s: float | None = None

    @property
    def images_s(self) -> float:
        return self.train_steps_s * self.batch


def _memory_mb(compiled) -> float:
    stats = jax.devices()[0].memory_stats() if hasattr(jax.devices()[0], "memory_stats") else None
    if stats and "peak_bytes_in_use" in stats:
        return stats["peak_bytes_in_use"] / 2**20
    analysis = compiled.memory_analysis()
    return (analysis.argument_size_in_bytes + analysis.output_size_in_bytes + analysis.temp_size_in_bytes) / 2**20


def measure_train_step(model, variables, x: jax.Array, steps: int):
    """(compile s, steps/s, FLOPs per step, peak MB) of jit(AdamW + L1 on the last output)."""
    tx = optax.adamw(1e-4)
    others = {k: v for k, v in variables.items() if k != "params"}
    target = jnp.clip(x[..., :3], 0, 1).astype(jnp.float32)

    def step(params, opt_state, batch):
        def loss_fn(p):
            out = flatten_outputs(model.apply({"params": p, **others}, batch, train=False))[-1]
            return jnp.mean(jnp.abs(out.astype(jnp.float32) - target))

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    params, opt_state = variables["params"], tx.init(variables["params"])
    start = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, opt_state, x).compile()
    compile_s = time.perf_counter() - start
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", float("nan"))) if cost else float("nan")
    params, opt_state, loss = compiled(params, opt_state, x)  # warm-up
    jax.block_until_ready(loss)
    start = time.perf_counter()
    for _ in range(steps):
        params, opt_state, loss = compiled(params, opt_state, x)
    jax.block_until_ready(loss)
    rate = steps / (time.perf_counter() - start)
    return compile_s, rate, flops, _memory_mb(compiled)


def _torch_device():
    platform = jax.devices()[0].platform
    if platform == "cpu":
        return "cpu"
    if platform == "gpu":
        import torch

        return "cuda" if torch.cuda.is_available() else None
    return None


def torch_train_rate(name: str, kwargs: dict, x_nhwc: np.ndarray, state_dict: dict, steps: int, dtype: str,
                     device: str, compile_model: bool) -> float:
    """Steps/s of the PyTorch reference's train step (same weights, AdamW + L1), eager or torch.compile'd."""
    import contextlib

    import torch

    from jaxir.torch_reference import build_reference

    model = build_reference(name, **kwargs)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict.items()}, strict=True)
    model = model.to(device).eval()  # eval: same function as the JAX side (train=False)
    forward = torch.compile(model) if compile_model else model
    x = torch.from_numpy(np.ascontiguousarray(np.transpose(x_nhwc, (0, 3, 1, 2)))).to(device)
    target = x[:, :3].clamp(0, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = (torch.autocast(device_type=device, dtype=torch.bfloat16) if dtype == "bfloat16"
                else contextlib.nullcontext())

    def step():
        opt.zero_grad()
        with autocast:
            out = forward(x)
            out = out[-1] if isinstance(out, (list, tuple)) else out
            loss = (out.float() - target).abs().mean()
        loss.backward()
        opt.step()

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return steps / (time.perf_counter() - start)


def _sizes(config, entry: SuiteEntry, which: Sequence[str]) -> list[tuple[str, tuple[int, int]]]:
    crop = config.data.get("crop_size", 256)
    progressive = config.data.get("progressive", None)
    if progressive:  # the largest patch of a progressive schedule is its memory peak
        crop = max(progressive["patch_sizes"])
    crop_hw = (crop, crop) if isinstance(crop, int) else tuple(crop)
    table = {"train": crop_hw, "test": tuple(entry.test_hw)}
    unknown = set(which) - set(table)
    if unknown:
        raise ValueError(f"suite sizes must be among {sorted(table)}, got {sorted(unknown)}")
    return [(w, table[w]) for w in which]


def run_entry(entry: SuiteEntry, *, sizes: Sequence[str], dtypes: Sequence[str], batch: int, steps: int,
              with_torch: bool, torch_compile: bool, size_override: dict | None = None) -> list[SuiteRow]:
    from jaxir import registry
    from jaxir.bench import random_official_state_dict
    from jaxir.config import load_config
    from jaxir.convert.state_dict import convert_state_dict
    from jaxir.parity import input_channels
    from jaxir.torch_reference import REFERENCES

    config = load_config(entry.config)
    name = config.model.name
    kwargs = dict(config.model.get("kwargs", {}))
    kwargs.update(dict(entry.model_overrides))
    reg = registry.get_entry(name)
    device = _torch_device() if with_torch and name in REFERENCES else None
    rows = []
    for which, hw in _sizes(config, entry, sizes):
        hw = (size_override or {}).get(which, hw)
        padded = tuple(max(s, reg.min_size) + (-max(s, reg.min_size)) % reg.pad_multiple for s in hw)
        for dtype in dtypes:
            compute = jnp.bfloat16 if dtype == "bfloat16" else jnp.float32
            model = registry.build_model(name, **kwargs, dtype=compute)
            x = np.random.default_rng(0).random((batch, *padded, input_channels(model)), dtype=np.float32)
            if device:
                state_dict = random_official_state_dict(name, kwargs)
                variables = convert_state_dict(state_dict, model, jax.ShapeDtypeStruct(x.shape, jnp.float32),
                                               hooks=reg.convert_hooks)
            else:
                variables = jax.jit(model.init)(jax.random.key(0), jnp.asarray(x))
            params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(variables["params"]))
            compile_s, rate, flops, peak_mb = measure_train_step(model, variables, jnp.asarray(x), steps)
            peak, _ = device_peak_flops(dtype)
            mfu = flops * rate / peak if peak and math.isfinite(flops) else None
            row = SuiteRow(entry.label, padded, batch, dtype, params, compile_s, rate, peak_mb, flops, mfu)
            if device:
                row.torch_eager_steps_s = torch_train_rate(name, kwargs, x, state_dict, steps, dtype, device, False)
                if torch_compile:
                    row.torch_compiled_steps_s = torch_train_rate(name, kwargs, x, state_dict, steps, dtype,
                                                                  device, True)
            rows.append(row)
    return rows


def format_row(row: SuiteRow) -> str:
    import datetime

    from jaxir.bench import machine_description

    def opt(v, fmt):
        return format(v, fmt) if v is not None else "n/a"

    def ratio(theirs):
        return f"{row.train_steps_s / theirs:.2f}x" if theirs else "n/a"

    mfu = "n/a" if row.mfu is None else f"{100 * row.mfu:.2f}%"

    return (f"| {datetime.date.today().isoformat()} | {row.label} | {row.batch}x{row.hw[0]}x{row.hw[1]} "
            f"| {row.dtype} | {row.params:,} | {row.compile_s:.1f} | {row.train_steps_s:.3f} | {row.images_s:.3f} "
            f"| {row.peak_mb:.0f} | {row.flops_per_step / 1e9:.1f} | {mfu} "
            f"| {opt(row.torch_eager_steps_s, '.3f')} | {opt(row.torch_compiled_steps_s, '.3f')} "
            f"| {ratio(row.torch_eager_steps_s)} | {ratio(row.torch_compiled_steps_s)} | {machine_description()} |")


def summary(rows: Sequence[SuiteRow]) -> str:
    """Geometric means of the ratios and the MFU range, one line each."""
    def geo(values):
        values = [v for v in values if v]
        return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None

    lines = [f"{len(rows)} rows; " + device_peak_flops(rows[0].dtype if rows else "float32")[1]]
    for dtype in sorted({r.dtype for r in rows}):
        sel = [r for r in rows if r.dtype == dtype]
        eager = geo([r.train_steps_s / r.torch_eager_steps_s for r in sel if r.torch_eager_steps_s])
        comp = geo([r.train_steps_s / r.torch_compiled_steps_s for r in sel if r.torch_compiled_steps_s])
        mfus = [r.mfu for r in sel if r.mfu is not None]
        lines.append(f"{dtype}: JAX/torch eager {'n/a' if eager is None else f'{eager:.2f}x'} (geo. mean), "
                     f"JAX/torch.compile {'n/a' if comp is None else f'{comp:.2f}x'}, MFU "
                     + (f"{100 * min(mfus):.2f}-{100 * max(mfus):.2f}%" if mfus else "n/a"))
    return "\n".join(lines)


def run_suite(entries: Sequence[SuiteEntry], *, sizes=("train", "test"), dtypes=("float32", "bfloat16"),
              batch: int = 1, steps: int = 3, with_torch: bool = True, torch_compile: bool = True,
              record: str | None = None, out: str | None = None, size_override: dict | None = None,
              echo=print) -> list[SuiteRow]:
    """Run `entries`; print (and optionally record) each row as it finishes, then the summary."""
    rows: list[SuiteRow] = []
    echo(TABLE_HEADER.rstrip("\n"))
    for entry in entries:
        for row in run_entry(entry, sizes=sizes, dtypes=dtypes, batch=batch, steps=steps, with_torch=with_torch,
                             torch_compile=torch_compile, size_override=size_override):
            rows.append(row)
            line = format_row(row)
            echo(line)
            if record:
                _record_suite_row(record, line)
            if out:
                with open(out, "a") as f:
                    f.write(json.dumps({**dataclasses.asdict(row), "images_s": row.images_s}) + "\n")
    echo(summary(rows))
    return rows


def _record_suite_row(path: str, line: str) -> None:
    path = pathlib.Path(path)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    heading = "## Paper suite\n"
    if heading not in text:
        text = text.rstrip("\n") + f"\n\n{heading}\n" + TABLE_HEADER
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    end = len(text) if end == -1 else end + 1
    block = text[start:end].rstrip("\n") + "\n" + line + "\n"
    path.write_text(text[:start] + block + ("\n" if end < len(text) else "") + text[end:])


def select(pattern: str | None) -> list[SuiteEntry]:
    if not pattern:
        return list(PAPER_SUITE)
    chosen = [e for e in PAPER_SUITE if re.search(pattern, e.label, re.IGNORECASE)]
    if not chosen:
        raise ValueError(f"--suite-filter {pattern!r} matches none of: {', '.join(e.label for e in PAPER_SUITE)}")
    return chosen


def run_cli(args) -> list[SuiteRow]:
    """`jaxir bench --suite paper [--suite-filter RE] [--suite-sizes train,test] [--dtypes ...]`."""
    if args.suite != "paper":
        raise ValueError(f"unknown suite {args.suite!r}; known: paper")
    with_torch = bool(args.torch)
    if with_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("torch is not installed: measuring JAX only")
            with_torch = False
    return run_suite(select(args.suite_filter), sizes=tuple(args.suite_sizes.split(",")),
                     dtypes=tuple(args.dtypes.split(",")), batch=args.batch, steps=args.steps,
                     with_torch=with_torch, torch_compile=args.torch_compile, record=args.record or None,
                     out=args.out or None)
