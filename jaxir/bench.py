"""`jaxir bench`: compile time, train steps/s, inference images/s and peak memory of a model.

Where torch is installed, the PyTorch reference of the same model (jaxir.torch_reference,
proven equivalent to the official code) runs in the same process with the same
weights, converted by jaxir's own converter, and the JAX/PyTorch ratios are reported.
Figures are written as a row of BENCHMARKS.md together with the machine they ran on.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import platform
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxir import registry
from jaxir.parity import restored_output


@dataclasses.dataclass
class BenchResult:
    label: str
    size: int
    batch: int
    dtype: str
    params: int
    compile_s: float
    train_steps_s: float | None  # None: inference only (`--no-train`)
    infer_images_s: float
    peak_mem_mb: float
    torch_train_steps_s: float | None = None
    torch_infer_images_s: float | None = None
    note: str = ""  # appended to the machine cell (e.g. "shared with other jobs")

    def ratios(self) -> tuple[str, str]:
        def ratio(a, b):
            return f"{a / b:.2f}x" if a and b else "n/a"

        return (ratio(self.train_steps_s, self.torch_train_steps_s),
                ratio(self.infer_images_s, self.torch_infer_images_s))


def machine_description() -> str:
    device = jax.devices()[0]
    if device.platform == "cpu":
        cores = os.cpu_count()
        cpu = platform.processor() or platform.machine()
        try:
            for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        return f"CPU: {cpu}, {cores} cores"
    return f"{device.platform.upper()}: {device.device_kind} x{jax.device_count()}"


def peak_memory_mb() -> float:
    """Accelerator peak bytes where the runtime reports them, else the process's peak RSS."""
    stats = jax.devices()[0].memory_stats() if hasattr(jax.devices()[0], "memory_stats") else None
    if stats and "peak_bytes_in_use" in stats:
        return stats["peak_bytes_in_use"] / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _timed(fn, repeats: int) -> float:
    """Seconds per call, after one warm-up call that is not counted."""
    jax.block_until_ready(fn())
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / repeats


def bench_jax(model, variables, x, steps: int, train: bool = True):
    """(compile seconds, train steps/s or None without `train`, inference images/s) with AdamW + L1 on the
    restored output."""
    tx = optax.adamw(1e-4)
    params = variables["params"]
    others = {k: v for k, v in variables.items() if k != "params"}
    opt_state = tx.init(params)
    target = jnp.clip(x[..., :3], 0, 1)

    def loss_fn(p, batch_x):
        out = restored_output(model, model.apply({"params": p, **others}, batch_x, train=False))
        return jnp.mean(jnp.abs(out.astype(jnp.float32) - target))

    @jax.jit
    def train_step(p, s, batch_x):
        loss, grads = jax.value_and_grad(loss_fn)(p, batch_x)
        updates, s = tx.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    infer = jax.jit(lambda v, batch_x: restored_output(model, model.apply(v, batch_x, train=False)))

    start = time.perf_counter()
    compiled_train = train_step.lower(params, opt_state, x).compile() if train else None
    compiled_infer = infer.lower(variables, x).compile()
    compile_s = time.perf_counter() - start

    state = {"p": params, "s": opt_state}

    def one_train_step():
        state["p"], state["s"], loss = compiled_train(state["p"], state["s"], x)
        return loss

    train_rate = 1.0 / _timed(one_train_step, steps) if train else None
    infer_s = _timed(lambda: compiled_infer(variables, x), steps)
    return compile_s, train_rate, x.shape[0] / infer_s


def bench_torch(name: str, kwargs: dict, x_nhwc: np.ndarray, state_dict: dict, steps: int,
                output_index: int = -1, train: bool = True):
    """(train steps/s or None without `train`, inference images/s); the loss is on output `output_index`,
    the one the JAX side trains (`restored_output`)."""
    import torch

    from jaxir.torch_reference import build_reference

    model = build_reference(name, **kwargs)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict.items()}, strict=True)
    x = torch.from_numpy(np.ascontiguousarray(np.transpose(x_nhwc, (0, 3, 1, 2))))
    target = x[:, :3].clamp(0, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def restored(out):
        return out[output_index] if isinstance(out, (list, tuple)) else out

    def train_step():
        opt.zero_grad()
        loss = (restored(model(x)) - target).abs().mean()
        loss.backward()
        opt.step()

    # Eval mode in the train step too (BatchNorm statistics, no dropout), as the JAX side runs train=False:
    # both sides then compute the same function.
    model.eval()
    train_rate = None
    if train:
        train_step()
        start = time.perf_counter()
        for _ in range(steps):
            train_step()
        train_rate = steps / (time.perf_counter() - start)
    with torch.no_grad():
        model(x)
        start = time.perf_counter()
        for _ in range(steps):
            model(x)
        infer_rate = steps * x.shape[0] / (time.perf_counter() - start)
    return train_rate, infer_rate


def random_official_state_dict(name: str, kwargs: dict, seed: int = 0) -> dict:
    """The PyTorch reference's own random init, as numpy: the weights both sides use."""
    import torch

    from jaxir.torch_reference import build_reference

    torch.manual_seed(seed)
    return {k: v.detach().numpy().copy() for k, v in build_reference(name, **kwargs).state_dict().items()}


def run_model_bench(name: str, kwargs: dict, size: int, batch: int, steps: int, dtype: str,
                    with_torch: bool, label: str | None = None, train: bool = True, note: str = "") -> BenchResult:
    from jaxir.convert.state_dict import convert_state_dict
    from jaxir.parity import input_channels

    compute_dtype = jnp.bfloat16 if dtype == "bfloat16" else jnp.float32
    entry = registry.get_entry(name)
    model = registry.build_model(name, **kwargs, dtype=compute_dtype)
    channels = input_channels(model)
    rng = np.random.default_rng(0)
    x = rng.random((batch, size, size, channels), dtype=np.float32)
    if with_torch:
        state_dict = random_official_state_dict(name, kwargs)
        variables = convert_state_dict(state_dict, model, jax.ShapeDtypeStruct(x.shape, jnp.float32),
                                       hooks=entry.convert_hooks)
    else:
        variables = model.init(jax.random.key(0), jnp.asarray(x))
    params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(variables["params"]))
    compile_s, train_rate, infer_rate = bench_jax(model, variables, jnp.asarray(x), steps, train)
    result = BenchResult(label or name, size, batch, dtype, params, compile_s, train_rate, infer_rate,
                         peak_memory_mb(), note=note)
    if with_torch:
        result.torch_train_steps_s, result.torch_infer_images_s = bench_torch(
            name, kwargs, x, state_dict, steps, getattr(model, "RESTORED_OUTPUT", -1), train)
    return result


SAMPLING_HEADER = (
    "| date | model | input | sampler | params | compile s | s / NFE | images/s | torch s / NFE | torch images/s "
    "| ratio | machine |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)


def run_sampling_bench(name: str, kwargs: dict, size: int, batch: int, sample_steps: int, with_torch: bool,
                       label: str | None = None) -> str:
    """DDIM (η = 0) sampling of a diffusion U-Net over `sample_steps` respaced steps, same weights both sides:
    JAX as one jitted lax.scan (`jaxir.diffusion.samplers`), PyTorch as guided-diffusion's eager loop of
    `ddim_sample` updates on the reference network. Returns the Markdown row."""
    from jaxir.convert.state_dict import convert_state_dict
    from jaxir.diffusion import samplers
    from jaxir.diffusion.gaussian import GaussianDiffusion
    from jaxir.parity import example_inputs

    entry = registry.get_entry(name)
    model = registry.build_model(name, **kwargs)
    channels = model.in_channels
    abstract = example_inputs(entry, model, batch, size)
    if with_torch:
        state_dict = random_official_state_dict(name, kwargs)
        variables = convert_state_dict(state_dict, model, *abstract, hooks=entry.convert_hooks)
    else:
        variables = model.init(jax.random.key(0), *[jnp.zeros(a.shape, a.dtype) for a in abstract])
    params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(variables["params"]))
    diffusion = GaussianDiffusion.from_schedule(
        "linear", 1000, variance="learned_range" if model.out_channels == 2 * channels else "fixed_small"
    ).respaced(str(sample_steps))
    shape = (batch, size, size, channels)

    @jax.jit
    def run(key):
        x_T = jax.random.normal(key, shape, jnp.float32)
        return samplers.ddim_sample(diffusion, lambda x, t: model.apply(variables, x, t), x_T, key)

    start = time.perf_counter()
    run(jax.random.key(0)).block_until_ready()
    first = time.perf_counter() - start
    start = time.perf_counter()
    run(jax.random.key(1)).block_until_ready()
    seconds = time.perf_counter() - start
    compile_s = max(first - seconds, 0.0)
    torch_seconds = None
    if with_torch:
        torch_seconds = _torch_ddim_seconds(name, kwargs, state_dict, diffusion, shape)
    per_nfe = seconds / sample_steps
    torch_cells = (f"{torch_seconds / sample_steps:.3f} | {batch / torch_seconds:.4f} | "
                   f"{torch_seconds / seconds:.2f}x") if torch_seconds else "n/a | n/a | n/a"
    return (f"| {datetime.date.today().isoformat()} | {label or name} | {batch}x{size}x{size} "
            f"| DDIM η=0, {sample_steps} steps | {params:,} | {compile_s:.1f} | {per_nfe:.3f} | {batch / seconds:.4f} "
            f"| {torch_cells} | {machine_description()} |")


def _torch_ddim_seconds(name, kwargs, state_dict, diffusion, shape) -> float:
    import torch

    from jaxir.torch_reference import build_reference

    model = build_reference(name, **kwargs).eval()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict.items()}, strict=True)
    ac = torch.from_numpy(diffusion.alphas_cumprod.astype(np.float32))
    acp = torch.from_numpy(diffusion.alphas_cumprod_prev.astype(np.float32))
    tmap = torch.from_numpy(diffusion.timestep_map.astype(np.float32))
    n, h, w, c = shape
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        x = torch.randn(n, c, h, w, generator=generator)
        model(x, tmap[:1].repeat(n))  # warm-up (allocator, thread pool)
        start = time.perf_counter()
        for i in reversed(range(diffusion.num_timesteps)):
            eps = model(x, tmap[i].repeat(n))[:, :c]
            x0 = ((x - torch.sqrt(1 - ac[i]) * eps) / torch.sqrt(ac[i])).clamp(-1, 1)
            eps = (x - torch.sqrt(ac[i]) * x0) / torch.sqrt(1 - ac[i])
            x = torch.sqrt(acp[i]) * x0 + torch.sqrt(1 - acp[i]) * eps
        return time.perf_counter() - start


TABLE_HEADER = (
    "| date | model | input | dtype | params | compile s | train steps/s | infer images/s | peak MB "
    "| torch train steps/s | torch infer images/s | train ratio | infer ratio | machine |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)


def format_row(result: BenchResult) -> str:
    train_ratio, infer_ratio = result.ratios()
    torch_train = f"{result.torch_train_steps_s:.3f}" if result.torch_train_steps_s else "n/a"
    torch_infer = f"{result.torch_infer_images_s:.3f}" if result.torch_infer_images_s else "n/a"
    train = f"{result.train_steps_s:.3f}" if result.train_steps_s else "n/a"
    machine = machine_description() + (f", {result.note}" if result.note else "")
    return (
        f"| {datetime.date.today().isoformat()} | {result.label} | {result.batch}x{result.size}x{result.size} "
        f"| {result.dtype} | {result.params:,} | {result.compile_s:.1f} | {train} "
        f"| {result.infer_images_s:.3f} | {result.peak_mem_mb:.0f} | {torch_train} | {torch_infer} "
        f"| {train_ratio} | {infer_ratio} | {machine} |"
    )


def record_row(path: str | pathlib.Path, row: str, section: str = "Models") -> None:
    """Append a row under the `## <section>` table of a Markdown file, creating either if needed."""
    path = pathlib.Path(path)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    heading = f"## {section}\n"
    header = {"Models": TABLE_HEADER, "Diffusion sampling": SAMPLING_HEADER}.get(section)
    if heading not in text:
        text = text.rstrip("\n") + f"\n\n{heading}\n" + (header or "")
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    end = len(text) if end == -1 else end + 1
    block = text[start:end].rstrip("\n") + "\n" + row + "\n"
    path.write_text(text[:start] + block + ("\n" if end < len(text) else "") + text[end:])


def run_bench(args, overrides) -> None:
    if getattr(args, "op", None):
        run_op_bench(args)
        return
    if getattr(args, "suite", None):
        from jaxir.bench_suite import run_cli

        run_cli(args)
        return
    if args.pipeline:
        from data_pipelines.bench import run_pipeline_bench

        run_pipeline_bench(args)
        return
    if args.config:
        from jaxir.config import apply_overrides, load_config

        config = apply_overrides(load_config(args.config), overrides)
        name, kwargs = config.model.name, dict(config.model.get("kwargs", {}))
    elif args.model:
        name, kwargs = args.model, json.loads(args.model_kwargs or "{}")
    else:
        raise ValueError("bench needs --model NAME [--model-kwargs JSON] or --config FILE")
    with_torch = args.torch
    from jaxir.torch_reference import REFERENCES

    if with_torch and name not in REFERENCES:
        print(f"no PyTorch reference for {name}: measuring JAX only")
        with_torch = False
    if with_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("torch is not installed: measuring JAX only")
            with_torch = False
    if getattr(args, "sample_steps", 0):
        row = run_sampling_bench(name, kwargs, args.size, args.batch, args.sample_steps, with_torch, args.label)
        print(SAMPLING_HEADER + row)
        if args.record:
            record_row(args.record, row, section="Diffusion sampling")
            print(f"recorded in {args.record}")
        return
    result = run_model_bench(name, kwargs, args.size, args.batch, args.steps, args.dtype, with_torch, args.label,
                             train=getattr(args, "train", True), note=getattr(args, "note", "") or "")
    row = format_row(result)
    print(TABLE_HEADER + row)
    if args.record:
        record_row(args.record, row)
        print(f"recorded in {args.record}")


# --- `jaxir bench --op selective_scan`: the three scan forms and the PyTorch reference ---

SCAN_HEADER = (
    "| date | length | channels | d_state | form | compile s | forward ms | forward+backward ms | XLA temp MB "
    "| machine |\n|---|---|---|---|---|---|---|---|---|---|\n"
)


def _scan_inputs(length: int, channels: int, d_state: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)
    return dict(u=f(1, channels, length), delta=0.5 * f(1, channels, length),
                A=-np.exp(0.5 * f(channels, d_state)).astype(np.float32), B=f(1, d_state, length),
                C=f(1, d_state, length), D=f(channels), delta_bias=0.3 * f(channels))


def bench_scan_form(method: str, x: dict, repeats: int, chunk_size: int = 256) -> tuple[float, float, float, float]:
    """(compile s, forward ms, forward+backward ms, XLA temp MB of the forward+backward) for one form."""
    from jaxir.ops.scan import selective_scan

    def forward(args):
        return selective_scan(**args, delta_softplus=True, method=method, chunk_size=chunk_size)

    grad = jax.jit(jax.grad(lambda args: jnp.sum(forward(args) ** 2)))
    fwd = jax.jit(forward)
    args = {k: jnp.asarray(v) for k, v in x.items()}
    start = time.perf_counter()
    compiled = grad.lower(args).compile()
    jax.block_until_ready(fwd(args))
    compile_s = time.perf_counter() - start
    memory = compiled.memory_analysis()
    temp_mb = getattr(memory, "temp_size_in_bytes", 0) / 2**20 if memory is not None else float("nan")
    return compile_s, 1e3 * _timed(lambda: fwd(args), repeats), 1e3 * _timed(lambda: compiled(args), repeats), temp_mb


def bench_scan_torch(x: dict, repeats: int) -> tuple[float, float]:
    """(forward ms, forward+backward ms) of the sequential PyTorch reference (mamba_ssm's selective_scan_ref)."""
    import torch

    from jaxir.torch_reference.selective_scan import selective_scan_ref

    args = {k: torch.from_numpy(v) for k, v in x.items()}
    with torch.no_grad():
        selective_scan_ref(**args, delta_softplus=True)
        start = time.perf_counter()
        for _ in range(repeats):
            selective_scan_ref(**args, delta_softplus=True)
        forward_ms = 1e3 * (time.perf_counter() - start) / repeats
    grads = {k: v.clone().requires_grad_(True) for k, v in args.items()}
    start = time.perf_counter()
    for _ in range(repeats):
        (selective_scan_ref(**grads, delta_softplus=True) ** 2).sum().backward()
    return forward_ms, 1e3 * (time.perf_counter() - start) / repeats


def run_op_bench(args) -> None:
    if args.op != "selective_scan":
        raise ValueError(f"unknown --op {args.op!r}; available: selective_scan")
    lengths = [int(v) for v in args.lengths.split(",")]
    rows = []
    for length in lengths:
        x = _scan_inputs(length, args.channels, args.d_state)
        for method in ("associative", "chunked", "sequential"):
            compile_s, fwd_ms, grad_ms, temp_mb = bench_scan_form(method, x, args.steps, args.chunk)
            label = f"jax {method}" + (f" (chunk {args.chunk})" if method == "chunked" else "")
            rows.append(f"| {datetime.date.today().isoformat()} | {length} | {args.channels} | {args.d_state} "
                        f"| {label} | {compile_s:.1f} | {fwd_ms:.1f} | {grad_ms:.1f} | {temp_mb:.0f} "
                        f"| {machine_description()} |")
            print(rows[-1], flush=True)
        if args.torch:
            fwd_ms, grad_ms = bench_scan_torch(x, max(1, args.steps // 2))
            rows.append(f"| {datetime.date.today().isoformat()} | {length} | {args.channels} | {args.d_state} "
                        f"| torch sequential reference | n/a | {fwd_ms:.1f} | {grad_ms:.1f} | n/a "
                        f"| {machine_description()} |")
            print(rows[-1], flush=True)
    if args.record:
        path = pathlib.Path(args.record)
        text = path.read_text() if path.exists() else "# Benchmarks\n"
        heading = "## Selective scan\n"
        if heading not in text:
            text = text.rstrip("\n") + f"\n\n{heading}\n" + SCAN_HEADER
            path.write_text(text)
        for row in rows:
            record_row(path, row, section="Selective scan")
        print(f"recorded in {args.record}")
