"""GenDeg training through the shared loop: the LambdaLinear schedule and per-subtree learning rates, the
in-graph μ/σ conditioning, the `gendeg` method (frozen VAE/CLIP, prompts by 'task'), and a tiny latent
diffusion model (random weights) training a few steps on the bundled photos and then sampling."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

transformers = pytest.importorskip("transformers")

from experiments.base import base_config  # noqa: E402
from jaxir import registry  # noqa: E402
from jaxir.diffusion.latent import gendeg  # noqa: E402
from jaxir.methods import build_method  # noqa: E402
from jaxir.train.optim import make_optimizer, make_schedule  # noqa: E402

TINY = {"unet_kwargs": dict(in_channels=8, out_channels=4, model_channels=32, num_res_blocks=1,
                            attention_resolutions=(1,), channel_mult=(1,), num_heads=2, context_dim=16),
        "vae_kwargs": dict(block_out_channels=(8, 8), layers_per_block=1, norm_num_groups=4),
        "text_kwargs": dict(vocab_size=54, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                            num_attention_heads=2, max_position_embeddings=32),
        "conditioner_kwargs": dict(context_length=32, dim=16)}
PROMPTS = [gendeg.prompt("noise"), gendeg.prompt("blur")]


def _tokenizer_dir(tmp_path):
    vocab = ["<|startoftext|>", "<|endoftext|>"] + [c + s for s in ("", "</w>") for c in "abcdefghijklmnopqrstuvwxyz"]
    folder = tmp_path / "tokenizer"
    folder.mkdir()
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    transformers.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt")).save_pretrained(str(folder))
    return folder


def _official_lambda_linear(n, warm_up, f_start, f_max, f_min, cycle):
    """ldm/lr_scheduler.py LambdaLinearScheduler.schedule, one cycle, written out."""
    if n < warm_up:
        return (f_max - f_start) / warm_up * n + f_start
    return f_min + (f_max - f_min) * (cycle - n) / cycle


def test_lambda_linear_schedule_follows_the_official_multiplier():
    cfg = {"lr": 2e-4, "schedule": "lambda_linear", "warmup_steps": 10, "f_start": 1e-6, "f_max": 1.0,
           "f_min": 0.1, "cycle_length": 50}
    schedule = make_schedule(cfg, 40)
    for n in (0, 1, 5, 9, 10, 11, 30, 39):
        want = 2e-4 * _official_lambda_linear(n, 10, 1e-6, 1.0, 0.1, 50)
        np.testing.assert_allclose(float(schedule(jnp.int32(n))), want, rtol=1e-5)  # optax's int32 count
    # GenDeg's configs/train.yaml: no warm-up, f_min = f_max = 1 -> the base rate throughout
    flat = make_schedule({"lr": 1e-4, "schedule": "lambda_linear", "warmup_steps": 0, "f_start": 1e-6,
                          "f_max": 1.0, "f_min": 1.0, "cycle_length": 10 ** 13}, 100)
    assert [float(jax.jit(flat)(jnp.int32(n))) for n in (0, 50, 99)] == pytest.approx([1e-4] * 3)


def test_lr_multipliers_scale_one_subtree_as_a_torch_param_group():
    params = {"unet": {"w": jnp.ones(3)}, "conditioner": {"cc": {"kernel": jnp.ones(3)}}}
    grads = jax.tree.map(lambda p: 0.5 * p, params)
    plain, _ = make_optimizer({"lr": 1e-3, "schedule": "constant", "weight_decay": 0.01}, 10)
    scaled, _ = make_optimizer({"lr": 1e-3, "schedule": "constant", "weight_decay": 0.01,
                                "lr_multipliers": {"conditioner": 10.0}}, 10)
    u_plain, _ = plain.update(grads, plain.init(params), params)
    u_scaled, _ = scaled.update(grads, scaled.init(params), params)
    np.testing.assert_allclose(u_scaled["unet"]["w"], u_plain["unet"]["w"])
    np.testing.assert_allclose(u_scaled["conditioner"]["cc"]["kernel"], 10 * u_plain["conditioner"]["cc"]["kernel"],
                               rtol=1e-6)
    # the same as AdamW at 10x the rate on that group (torch's per-group lr)
    ten, _ = make_optimizer({"lr": 1e-2, "schedule": "constant", "weight_decay": 0.01}, 10)
    u_ten, _ = ten.update(grads, ten.init(params), params)
    np.testing.assert_allclose(u_scaled["conditioner"]["cc"]["kernel"], u_ten["conditioner"]["cc"]["kernel"],
                               rtol=1e-6)
    assert optax.tree.norm(u_plain) > 0


def test_in_graph_stats_bin_as_edit_dataset():
    mus = np.array([0.0, 0.35, 0.69999, 0.7, 0.9, 0.0123])
    sigmas = np.array([0.4, 0.0, 0.2, 0.399, 1.0, 0.05])
    got = np.asarray(gendeg.stats_jnp(jnp.asarray(mus), jnp.asarray(sigmas)))
    want = np.stack([gendeg.stats(m, s) for m, s in zip(mus, sigmas)])
    np.testing.assert_array_equal(got, want)
    clean = jax.random.uniform(jax.random.key(0), (2, 8, 8, 3))
    degraded = jnp.clip(clean + 0.1 * jax.random.normal(jax.random.key(1), clean.shape), 0, 1)
    mu, sigma = gendeg.pair_stats(clean, degraded)
    diff = np.abs(np.asarray(clean) - np.asarray(degraded)).reshape(2, -1)
    np.testing.assert_allclose(np.asarray(mu), diff.mean(1), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(sigma), diff.std(1), rtol=1e-5)


def test_method_freezes_vae_and_text_and_picks_prompts_by_task(tmp_path):
    method = build_method({"name": "gendeg", "kwargs": {"tokenizer": str(_tokenizer_dir(tmp_path)),
                                                         "prompts": PROMPTS, "context_length": 32}})
    model = registry.build_model("gendeg", **TINY)
    shapes = jax.eval_shape(model.init, {"params": jax.random.key(0)}, jnp.zeros((1, 16, 16, 3)))["params"]
    params = jax.tree.map(lambda s: jnp.full(s.shape, 0.5, s.dtype), shapes)
    assert sorted(params) == ["conditioner", "text_encoder", "unet", "vae"]
    mask = method.trainable(params)
    for part, keep in (("unet", True), ("conditioner", True), ("vae", False), ("text_encoder", False)):
        assert set(jax.tree.leaves(mask[part])) == {keep}
    prepared = method.prepare(params)["conditioner"]["cc_projection"]
    np.testing.assert_array_equal(np.asarray(prepared["kernel"][:16]), np.eye(16))
    assert float(jnp.abs(prepared["bias"]).max()) == 0.0
    kwargs = method.batch_kwargs({"target": jnp.zeros((3, 16, 16, 3)), "task": jnp.array([1, 0, 1])})
    ids = method.prompt_ids()
    assert ids.shape == (3, 32) and not np.array_equal(ids[0], ids[1])
    np.testing.assert_array_equal(np.asarray(kwargs["prompt_ids"]), ids[[1, 0, 1]])
    np.testing.assert_array_equal(np.asarray(kwargs["null_ids"]), ids[2:])
    unlabelled = method.batch_kwargs({"target": jnp.zeros((2, 16, 16, 3))})
    np.testing.assert_array_equal(np.asarray(unlabelled["prompt_ids"]), ids[[0, 0]])


def _train_config(tokenizer, steps=3):
    config = base_config()
    config.model.name = "gendeg"
    config.model.kwargs = TINY
    config.method = {"name": "gendeg", "kwargs": {"tokenizer": str(tokenizer), "prompts": PROMPTS,
                                                  "context_length": 32}}
    tasks = [{"name": "noise", "degradation": [{"name": "gaussian_noise", "sigma": 25 / 255}]},
             {"name": "blur", "degradation": [{"name": "gaussian_blur", "sigma": 1.5, "kernel_size": 7}]}]
    config.data.train = {"source": "task_mixture", "kwargs": {"tasks": tasks}}
    config.data.eval = None
    config.data.crop_size = 16
    config.data.batch_size = 8  # the test session simulates 8 devices
    config.data.augment = "hflip"
    config.loss.terms = [{"name": "l2", "weight": 1.0}]
    config.optim.update({"lr": 1e-3, "weight_decay": 0.01, "schedule": "lambda_linear", "warmup_steps": 2,
                         "f_start": 0.1, "f_max": 1.0, "f_min": 1.0, "ema_decay": 0.5,
                         "lr_multipliers": {"conditioner": 10.0}})
    config.train.update({"num_steps": steps, "log_every": 1, "ckpt_every": steps, "eval_every": 0})
    return config


@pytest.mark.slow  # ~250 s CPU (2.7 GB): compiles the four networks' train step, then the guided sampler
def test_tiny_gendeg_trains_through_the_loop_and_samples(tmp_path):
    from data_pipelines.sources import BundledPhotos
    from jaxir.train import sharding as shd
    from jaxir.train.loop import _restore_state, build_model, train
    from jaxir.train.state import make_init_fn

    tokenizer = _tokenizer_dir(tmp_path)
    config = _train_config(tokenizer)
    metrics = train(config, tmp_path / "run")
    assert metrics["step"] == 3 and metrics["rejected_steps"] == 0 and np.isfinite(metrics["train_loss"])

    model, entry = build_model(config)
    state = _restore_state(config, tmp_path / "run", model, entry, "latest", shd.make_mesh())
    tx, _ = make_optimizer(config.optim, 3)
    initial = make_init_fn(model, tx, (1, 16, 16, 3), 0, True, build_method(config.method))()

    def changed(a, b):
        return max(float(jnp.abs(x - y).max()) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

    for part in ("vae", "text_encoder"):  # frozen: bit-identical, EMA too
        assert changed(state.params[part], initial.params[part]) == 0.0
        assert changed(state.ema_params[part], initial.params[part]) == 0.0
    for part in ("unet", "conditioner"):
        assert changed(state.params[part], initial.params[part]) > 0.0
        # EMA moved, lagging behind the parameters (decay 0.5)
        assert 0.0 < changed(state.ema_params[part], initial.params[part])
        assert changed(state.ema_params[part], state.params[part]) > 0.0

    # `jaxir gendeg export`: the run's EMA weights -> a GenDeg folder, which then samples
    from jaxir.cli import main

    config_file = tmp_path / "gendeg_tiny.py"
    config_file.write_text("import json\n\nimport ml_collections\n\n\ndef get_config():\n"
                           f"    return ml_collections.ConfigDict(json.loads({json.dumps(config.to_dict())!r}))\n")
    assert main(["gendeg", "export", "--config", str(config_file), "--workdir", str(tmp_path / "run"),
                 "--tokenizer", str(tokenizer), "--out", str(tmp_path / "exported")]) == 0
    generator = gendeg.load(tmp_path / "exported")
    for got, want in ((generator.unet_vars, state.ema_params["unet"]),
                      (generator.conditioner_vars, state.ema_params["conditioner"])):
        assert changed(got["params"], want) == 0.0
    photo = np.asarray(BundledPhotos("train")[0]["target"], np.float32)[:32, :32]
    photo = photo / 255.0 if photo.max() > 1.0 else photo
    out = generator.generate(photo[None], "noise", 0.1, 0.05, jax.random.key(0), steps=2)
    assert out.shape == (1, 32, 32, 3) and bool(jnp.all(jnp.isfinite(out)))
    assert float(jnp.abs(out - photo).mean()) > 1e-3
