"""The `jaxir` command line."""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

DEMO_CONFIG = "experiments/nafnet_demo.py"


class UserError(Exception):
    """A mistake in what the user asked for; reported as one line, no traceback."""


def _config_from_args(args, overrides):
    from jaxir.config import apply_overrides, load_config

    config = load_config(args.config)
    return apply_overrides(config, overrides)


def _join_processes(args):
    """Multi-process launches join jax.distributed before anything touches a device (no-op for one process)."""
    from jaxir.train.distributed import initialize

    initialize(args.distributed, args.coordinator_address, args.num_processes, args.process_id)


def cmd_train(args, overrides):
    from jaxir.train.loop import train

    config = _config_from_args(args, overrides)
    _join_processes(args)
    train(config, args.workdir)


def cmd_demo(args, overrides):
    from jaxir.config import apply_overrides, load_config
    from jaxir.train.loop import train

    config = apply_overrides(load_config(DEMO_CONFIG), overrides)
    train(config, args.workdir)


def cmd_eval(args, overrides):
    if args.benchmark:
        from jaxir.evaluation import run_benchmark

        run_benchmark(args, overrides)
        return
    from jaxir.train.loop import evaluate

    config = _config_from_args(args, overrides)
    if not (args.workdir or args.checkpoint):
        raise UserError("eval needs --workdir RUN (a training run) or --checkpoint W.msgpack (converted weights)")
    metrics = evaluate(config, args.workdir or args.checkpoint)
    print(json.dumps(metrics, indent=2))


def cmd_parity(args, overrides):
    from jaxir.parity import check_parity

    failed = 0
    for path in args.files:
        report = check_parity(path, atol=args.atol, rtol=args.rtol)
        print(report.format())
        failed += not report.ok
    if failed:
        raise SystemExit(1)


def cmd_convert(args, overrides):
    import numpy as np

    from jaxir import registry
    from jaxir.convert.state_dict import convert_state_dict
    from jaxir.convert.torch_io import load_state_dict
    from jaxir.io import save_weights
    from jaxir.parity import input_channels
    import jax
    import jax.numpy as jnp

    if args.config:
        config = _config_from_args(args, overrides)
        name, kwargs = config.model.name, dict(config.model.get("kwargs", {}))
    elif args.model:
        name, kwargs = args.model, json.loads(args.model_kwargs or "{}")
    else:
        raise UserError("convert needs --model NAME [--model-kwargs JSON] or --config FILE")
    entry = registry.get_entry(name)
    model = registry.build_model(name, **kwargs)
    state_dict = load_state_dict(args.checkpoint, key=args.key)
    size = max(entry.min_size, entry.pad_multiple, 64)
    channels = input_channels(model)
    example = jax.ShapeDtypeStruct((1, size, size, channels), jnp.float32)
    variables = convert_state_dict(state_dict, model, example, hooks=entry.convert_hooks)
    save_weights(args.out, name, kwargs, variables)
    count = sum(int(np.prod(v.shape)) for v in jax.tree_util.tree_leaves(variables.get("params", {})))
    print(f"converted {len(state_dict)} tensors of {args.checkpoint} into {name} ({count:,} parameters): {args.out}")


def cmd_restore(args, overrides):
    from jaxir.inference import load_restorer

    import numpy as np
    from jaxir.io import list_images, read_image, write_image

    restorer = load_restorer(
        weights=args.weights, config=args.config, workdir=args.workdir, overrides=overrides,
        tile=args.tile, overlap=args.overlap,
    )
    inputs = list_images(args.input)
    out = pathlib.Path(args.output)
    many = len(inputs) > 1 or pathlib.Path(args.input).is_dir()
    for path in inputs:
        image = read_image(path)
        restored = restorer(image)
        target = out / path.name if many else out
        if many:
            target = target.with_suffix(".png")
        write_image(target, np.clip(restored, 0.0, 1.0))
        print(f"{path} -> {target}")


def cmd_bench(args, overrides):
    from jaxir.bench import run_bench

    run_bench(args, overrides)


def cmd_build_dataset(args, overrides):
    from data_pipelines import builders

    if args.name == "list":
        for name, cls in sorted(builders.BUILDERS.items()):
            print(f"{name:14s} {cls.HOMEPAGE}")
        return
    builders.build(args.name, args.manual_dir, args.data_dir)
    print(f"{args.name} is prepared in {args.data_dir}")


def cmd_list(args, overrides):
    from jaxir import registry

    for name in registry.model_names():
        entry = registry.get_entry(name)
        official = ", ".join(f"{r}:{c}" for r, c in entry.official)
        print(f"{name:24s} {official}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxir", description="Image restoration in JAX, parity-proven.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model from an experiments/ config")
    p.add_argument("--config", required=True, help="experiments/FILE.py[:arg]")
    p.add_argument("--workdir", required=True)
    g = p.add_argument_group("multi-process (default: from JAX_COORDINATOR_ADDRESS/JAX_NUM_PROCESSES/"
                             "JAX_PROCESS_ID, SLURM, Open MPI or a TPU slice; see README)")
    g.add_argument("--distributed", default="auto", choices=["auto", "on", "off"],
                   help="auto: join jax.distributed when launched as several processes; on: always; off: never")
    g.add_argument("--coordinator-address", help="host:port of process 0's coordinator")
    g.add_argument("--num-processes", type=int, help="number of processes")
    g.add_argument("--process-id", type=int, help="this process's index, 0 .. num-processes - 1")
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("demo", help="train the embedded default: a small NAFNet on bundled photos")
    p.add_argument("--workdir", default="runs/demo")
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser("eval", help="evaluate a trained model (or run a benchmark protocol)")
    p.add_argument("--config", required=True)
    p.add_argument("--workdir", help="training workdir holding checkpoints")
    p.add_argument("--checkpoint", help="converted weights (.msgpack from `jaxir convert`)")
    p.add_argument("--benchmark", help="benchmark protocol name (see `jaxir eval --benchmark list`)")
    p.add_argument("--data-dir", help="TFDS data dir or dataset folder for --benchmark")
    p.add_argument("--out", help="where to write the results table (Markdown and JSON)")
    p.add_argument("--paper", action="store_true", help="put the paper's reported numbers beside the measured ones")
    p.set_defaults(fn=cmd_eval)

    p = sub.add_parser("restore", help="restore an image or a folder of images")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--weights", help="converted weights (.msgpack from `jaxir convert`)")
    p.add_argument("--config", help="experiments config of a training run (with --workdir)")
    p.add_argument("--workdir", help="training workdir whose latest checkpoint to use")
    p.add_argument("--tile", type=int, default=0, help="tile size for bounded-memory inference (0: whole image)")
    p.add_argument("--overlap", type=int, default=32, help="tile overlap in pixels")
    p.set_defaults(fn=cmd_restore)

    p = sub.add_parser("parity", help="check a port against a golden file made from the official code")
    p.add_argument("files", nargs="+")
    p.add_argument("--atol", type=float, default=1e-4)
    p.add_argument("--rtol", type=float, default=1e-4)
    p.set_defaults(fn=cmd_parity)

    p = sub.add_parser("convert", help="convert an official PyTorch checkpoint (.pth/.safetensors) to jaxir")
    p.add_argument("checkpoint")
    p.add_argument("out", help="output .msgpack")
    p.add_argument("--model", help="registered jaxir model name (see `jaxir list`)")
    p.add_argument("--model-kwargs", help="JSON kwargs of the jaxir model")
    p.add_argument("--config", help="or take the model from an experiments config")
    p.add_argument("--key", help="entry of the checkpoint holding the state dict (e.g. params_ema)")
    p.set_defaults(fn=cmd_convert)

    p = sub.add_parser("bench", help="measure compile time, train steps/s, inference images/s, peak memory")
    p.add_argument("--config", help="experiments config whose model to measure")
    p.add_argument("--model", help="or a registered model name")
    p.add_argument("--model-kwargs", help="JSON kwargs for --model")
    p.add_argument("--label", help="row label in BENCHMARKS.md")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--torch", action="store_true", help="also run the PyTorch reference with the same weights")
    p.add_argument("--pipeline", help="benchmark a data pipeline instead of a model (e.g. bundled)")
    p.add_argument("--workers", default="0,1,2", help="worker counts for --pipeline")
    p.add_argument("--record", default="", help="append the row to this Markdown file (e.g. BENCHMARKS.md)")
    g = p.add_argument_group("suite (jaxir.bench_suite): every paper config, train crop and test frame")
    g.add_argument("--suite", help="'paper': run the suite (uses --batch, --steps, --torch, --record)")
    g.add_argument("--suite-filter", help="regular expression on the suite's row labels")
    g.add_argument("--suite-sizes", default="train,test", help="train (the recipe's crop), test (full frame)")
    g.add_argument("--dtypes", default="float32,bfloat16", help="compute dtypes of the suite")
    g.add_argument("--torch-compile", action=argparse.BooleanOptionalAction, default=True,
                   help="with --torch, also time the reference under torch.compile")
    g.add_argument("--out", default="", help="also append the suite's rows as JSON lines to this file")
    p.set_defaults(fn=cmd_bench)

    p = sub.add_parser("build-dataset", help="prepare a benchmark's TFDS dataset from its official files")
    p.add_argument("name", help="benchmark (e.g. gopro, dpdd, bsd400/color), or 'list'")
    p.add_argument("--manual-dir", default=".", help="folder holding the official archive or extracted files")
    p.add_argument("--data-dir", default="~/tensorflow_datasets", help="TFDS data dir to write to")
    p.set_defaults(fn=cmd_build_dataset)

    p = sub.add_parser("list", help="list registered models and the official classes they reproduce")
    p.set_defaults(fn=cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # `--config.key=value` overrides are not argparse options; split them off first.
    overrides = [a for a in argv if a.startswith("--config.")]
    args = parser.parse_args([a for a in argv if not a.startswith("--config.")])
    if overrides and args.command not in ("train", "demo", "eval", "convert", "restore", "bench"):
        parser.error(f"`{args.command}` takes no --config.KEY overrides")
    from jaxir.config import ConfigError
    from jaxir.convert.state_dict import ConversionError

    user_errors = (UserError, ConfigError, ConversionError, FileNotFoundError, ValueError, KeyError)
    try:
        args.fn(args, overrides)
    except user_errors as err:
        if args.debug:
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"jaxir {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
