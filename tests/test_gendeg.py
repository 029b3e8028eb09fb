"""GenDeg: μ/σ binning as edit_dataset.py, the conditioner's projections, the official statistics' μ/σ
sampler, and `jaxir gendeg generate` with small random weights writing a GenDS-style paired folder that a
restoration config (the NAFNet demo) trains on."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

transformers = pytest.importorskip("transformers")

from jaxir import io as jio  # noqa: E402
from jaxir import registry  # noqa: E402
from jaxir.cli import main  # noqa: E402
from jaxir.diffusion.latent import autoencoder_kl as akl  # noqa: E402
from jaxir.diffusion.latent import clip_text, gendeg  # noqa: E402
from jaxir.models.ldm_unet import build_ldm_unet  # noqa: E402


def test_stats_binning_matches_numpy_digitize():
    s = gendeg.stats(0.35, 0.4)
    assert s.shape == (2, 129) and s.sum() == 2
    assert s[0].argmax() == 64  # 0.35 / (0.7 / 128) = 64 exactly -> bin 64 (right=False)
    assert s[1].argmax() == 127  # the top edge folds into the last regular bin
    assert gendeg.null_stats()[:, -1].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError):
        gendeg.stats(-0.1, 0.1)


def test_conditioner_keeps_text_and_adds_projected_stats():
    cond = gendeg.GenDegConditioner(context_length=5, dim=8)
    variables = gendeg.init_conditioner(cond, jax.random.key(0))
    text = jax.random.normal(jax.random.key(1), (2, 5, 8))
    st = jnp.asarray(np.stack([gendeg.stats(0.1, 0.2), gendeg.null_stats()]))
    out = cond.apply(variables, text, st)
    p = variables["params"]
    projected = jnp.swapaxes(st @ p["stats_proj"]["kernel"] + p["stats_proj"]["bias"], 1, 2)  # (2, 5, 2)
    want = text + projected @ p["cc_projection"]["kernel"][8:]
    np.testing.assert_allclose(np.asarray(out), np.asarray(want), atol=1e-5)


def _tiny_model(tmp_path):
    vocab = ["<|startoftext|>", "<|endoftext|>"] + [c + s for s in ("", "</w>") for c in "abcdefghijklmnopqrstuvwxyz"]
    (tmp_path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    tok = transformers.CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    keys = jax.random.split(jax.random.key(0), 4)
    kw = {"unet": dict(in_channels=8, out_channels=4, model_channels=32, num_res_blocks=1, attention_resolutions=(2,),
                       channel_mult=(1, 2), num_heads=2, context_dim=32),
          "vae": dict(block_out_channels=(32,), layers_per_block=1, norm_num_groups=8),
          "text_encoder": dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                               num_attention_heads=2, max_position_embeddings=77),
          "conditioner": dict(context_length=77, dim=32)}
    unet, vae = build_ldm_unet(**kw["unet"]), akl.AutoencoderKL(**kw["vae"])
    text, cond = clip_text.CLIPTextModel(**kw["text_encoder"]), gendeg.GenDegConditioner(**kw["conditioner"])
    model = gendeg.GenDegModel(
        unet, unet.init(keys[0], jnp.zeros((1, 8, 8, 8)), jnp.zeros((1,), jnp.int32), jnp.zeros((1, 77, 32))),
        vae, vae.init(keys[1], jnp.zeros((1, 8, 8, 3))), text, text.init(keys[2], jnp.zeros((1, 77), jnp.int32)),
        cond, gendeg.init_conditioner(cond, keys[3]), tok)
    gendeg.save(tmp_path / "gendeg", model, kw)
    return model


def _write_official_stats(root, degradation_folder, datasets):
    """Statistics in the official data/<degradation>/ format: `datasets` maps a name to (μ bin, σ bin) of
    its only occupied bins (128 bins over [0, 0.7] and [0, 0.4])."""
    folder = root / degradation_folder
    folder.mkdir(parents=True)
    mu_edges, sigma_edges = np.linspace(0, 0.7, 129), np.linspace(0, 0.4, 129)
    for name, (mu_bin, sigma_bin) in datasets.items():
        mu = [{"Mu min": mu_edges[i], "Mu max": mu_edges[i + 1], "Count": int(i == mu_bin) * 7, "Dataset": name}
              for i in range(128)]
        sigma = [{"Sigma min": sigma_edges[i], "Sigma max": sigma_edges[i + 1], "Count": int(i == sigma_bin) * 7,
                  "Dataset": name} for i in range(128)]
        joint = [{"Mu range": f"{mu_edges[i]:.3f} - {mu_edges[i + 1]:.3f}", "Dataset": name,
                  "Count": [{"Sigma min": sigma_edges[j], "Sigma max": sigma_edges[j + 1],
                             "Count": int(i == mu_bin and j == sigma_bin) * 7} for j in range(128)]}
                 for i in range(128)]
        (folder / f"Mu_{name}.json").write_text(json.dumps(mu))
        (folder / f"Sigma_{name}.json").write_text(json.dumps(sigma))
        (folder / f"Mu-Sigma-{name}.json").write_text(json.dumps(joint))


def test_official_statistics_sampler(tmp_path):
    _write_official_stats(tmp_path, "haze", {"RESIDE": (10, 20), "DenseHaze": (100, 90)})
    stats = gendeg.DegradationStats(tmp_path, "haze")
    assert stats.datasets == ["DenseHaze", "RESIDE"]
    np.testing.assert_allclose(stats.weights / stats.weights.sum(), [0.05 / 1.05, 1 / 1.05])  # DenseHaze x 0.05
    rng = np.random.default_rng(0)
    draws = [stats.sample(rng, random_sample=False) for _ in range(400)]
    for mu, sigma, dataset in draws:
        mu_bin, sigma_bin = (10, 20) if dataset == "RESIDE" else (100, 90)
        assert mu_bin * 0.7 / 128 <= mu <= (mu_bin + 1) * 0.7 / 128
        assert sigma_bin * 0.4 / 128 <= sigma <= (sigma_bin + 1) * 0.4 / 128
        assert gendeg.stats(mu, sigma)[0].argmax() in (mu_bin, mu_bin + 1)
    share = sum(d == "DenseHaze" for _, _, d in draws) / len(draws)
    assert 0.01 < share < 0.12  # 4.8% expected
    for seed in range(5):  # uniform over the occupied ranges (one bin each here)
        mu, sigma, dataset = stats.sample(np.random.default_rng(seed), random_sample=True)
        mu_bin, sigma_bin = (10, 20) if dataset == "RESIDE" else (100, 90)
        assert mu_bin * 0.7 / 128 <= mu <= (mu_bin + 1) * 0.7 / 128
        assert sigma_bin * 0.4 / 128 <= sigma <= (sigma_bin + 1) * 0.4 / 128


@pytest.mark.slow  # ~195 s CPU (2.8 GB): compiles the guided DDIM loop and a short NAFNet training run
def test_generate_writes_pairs_a_restoration_config_trains_on(tmp_path):
    _tiny_model(tmp_path)
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(16, 16), (19, 26)]):
        jio.write_image(tmp_path / "clean" / f"im{i}.png", rng.uniform(size=(h, w, 3)))
    common = ["gendeg", "generate", "--model", str(tmp_path / "gendeg"), "--clean", str(tmp_path / "clean"),
              "--out", str(tmp_path / "gen"), "--steps", "2"]
    assert main(common + ["--degradation", "haze", "--mu", "0.2", "--sigma", "0.1"]) == 0
    # μ/σ drawn per image from statistics in the official format; ORD is prompted "rainy and hazy"
    _write_official_stats(tmp_path / "data", "rain", {"ORD": (30, 40)})
    assert main(common + ["--degradation", "rain", "--stats", str(tmp_path / "data")]) == 0
    for stem, shape in (("im0", (16, 16, 3)), ("im1", (16, 24, 3))):
        haze, rain, clean = (jio.read_image(tmp_path / "gen" / d / f"{stem}.png") for d in ("haze", "rain", "GT"))
        assert haze.shape == rain.shape == clean.shape == shape
        assert np.abs(haze - clean).mean() > 1e-3  # random weights: a different image, not a copy
    records = json.loads((tmp_path / "gen" / "gendeg.json").read_text())["records"]
    assert [(r["image_path"], r["target_path"]) for r in records] == [
        ("haze/im0.png", "GT/im0.png"), ("haze/im1.png", "GT/im1.png"), ("rain/im0.png", "GT/im0.png"),
        ("rain/im1.png", "GT/im1.png")]
    assert [(r["mu"], r["sigma"]) for r in records[:2]] == [(0.2, 0.1)] * 2
    for r in records[2:]:
        assert r["sampled_dataset"] == "ORD" and r["prompt"] == "a photo in rainy and hazy conditions"
        assert 30 * 0.7 / 128 <= r["mu"] <= 31 * 0.7 / 128 and 40 * 0.4 / 128 <= r["sigma"] <= 41 * 0.4 / 128
    assert [r["random_sampled"] for r in records[2:]] == [True, False]  # the first of every 20 is uniform
    assert main(common + ["--degradation", "snow"]) != 0  # neither μ/σ nor statistics

    # the generated pairs, labelled by degradation, train the NAFNet demo config
    from jaxir.config import load_config
    from jaxir.train.loop import train
    config = load_config("experiments/nafnet_demo.py")
    config.data.train = {"source": "task_mixture", "kwargs": {"tasks": [
        {"name": "haze", "source": gendeg.paired_source(tmp_path / "gen", "haze")},
        {"name": "rain", "source": gendeg.paired_source(tmp_path / "gen", "rain")}]}}
    config.data.eval = None
    config.data.degradation = []
    config.data.crop_size = 16
    config.optim.warmup_steps = 0
    config.train.update({"num_steps": 2, "log_every": 1, "ckpt_every": 2, "eval_every": 0})
    metrics = train(config, tmp_path / "run")
    assert metrics["step"] == 2 and np.isfinite(metrics["train_loss"]) and metrics["rejected_steps"] == 0


def _diffusers_to_compvis(sd, levels):
    """Test-side inverse naming (checked against diffusers' own single-file converter below)."""
    import re
    out = {}
    for key, value in sd.items():
        k = key.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
        k = re.sub(r"down_blocks\.(\d+)\.resnets\.(\d+)", r"down.\1.block.\2", k)
        k = re.sub(r"down_blocks\.(\d+)\.downsamplers\.0", r"down.\1.downsample", k)
        k = k.replace("mid_block.resnets.0", "mid.block_1").replace("mid_block.resnets.1", "mid.block_2")
        k = k.replace("mid_block.attentions.0.group_norm", "mid.attn_1.norm")
        k = re.sub(r"mid_block\.attentions\.0\.to_(q|k|v)\.", r"mid.attn_1.\1.", k)
        k = k.replace("mid_block.attentions.0.to_out.0", "mid.attn_1.proj_out")
        m = re.match(r"decoder\.up_blocks\.(\d+)\.(resnets\.(\d+)|upsamplers\.0)\.(.*)", k)
        if m:
            b = levels - 1 - int(m.group(1))
            inner = f"block.{m.group(3)}" if m.group(3) is not None else "upsample"
            k = f"decoder.up.{b}.{inner}.{m.group(4)}"
        if "mid.attn_1." in k and k.endswith("weight") and value.ndim == 2 and ".norm." not in k:
            value = value[:, :, None, None]
        out[k] = value
    return out


def test_compvis_vae_names_convert_as_diffusers_does():
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
    types = 3
    ref = diffusers.AutoencoderKL(block_out_channels=(8, 16, 16), down_block_types=("DownEncoderBlock2D",) * types,
                                  up_block_types=("UpDecoderBlock2D",) * types, layers_per_block=1, norm_num_groups=4)
    d = {k: v.numpy() for k, v in ref.state_dict().items()}
    compvis = _diffusers_to_compvis(d, types)
    theirs = convert_ldm_vae_checkpoint({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in compvis.items()},
                                        dict(ref.config))
    assert sorted(theirs) == sorted(d)  # the test's CompVis naming is the real one
    ours = akl.compvis_to_diffusers({**compvis, "loss.logvar": np.zeros(())}, types)
    assert sorted(ours) == sorted(d)
    for k in d:
        np.testing.assert_array_equal(ours[k], d[k])


def _official_checkpoint(golden_dir, tmp_path):
    """A LatentDiffusion-style state dict (golden U-Net, the tiny VAE/CLIP/conditioner under official names,
    an EMA entry), with the golden file, the tiny model and the per-network kwargs."""
    import re

    from flax import traverse_util

    from jaxir.parity import golden_state_dict, load_golden
    meta, arrays = load_golden(golden_dir / "gendeg_unet.npz")
    model = _tiny_model(tmp_path)
    ckpt = {f"model.diffusion_model.{k}": v for k, v in golden_state_dict(arrays).items()}
    # the tiny model's VAE and CLIP weights written under the official (CompVis / transformers) names
    vae_sd = {}
    for path, leaf in traverse_util.flatten_dict(model.vae_vars["params"]).items():
        name, kind = ".".join(path[:-1]), path[-1]
        leaf = np.asarray(leaf)
        if kind == "kernel":
            leaf = leaf.transpose(3, 2, 0, 1) if leaf.ndim == 4 else leaf.T
        vae_sd[f"{name}.{'weight' if kind in ('kernel', 'scale') else 'bias'}"] = leaf
    vae_sd = {re.sub(r"_(\d+)(?=\.|$)", r".\1", k): v for k, v in vae_sd.items()}
    ckpt.update({f"first_stage_model.{k}": v for k, v in _diffusers_to_compvis(vae_sd, 1).items()})
    for path, leaf in traverse_util.flatten_dict(model.text_vars["params"]).items():
        name = re.sub(r"_(\d+)$", r".\1", ".".join(path[:-1]).replace("layers_", "layers."))
        leaf = np.asarray(leaf)
        key = {"kernel": "weight", "scale": "weight", "embedding": "weight", "bias": "bias"}[path[-1]]
        ckpt[f"cond_stage_model.transformer.{name}.{key}"] = leaf.T if path[-1] == "kernel" else leaf
    for name in ("stats_proj", "cc_projection"):
        p = model.conditioner_vars["params"][name]
        ckpt[f"{name}.weight"], ckpt[f"{name}.bias"] = np.asarray(p["kernel"]).T, np.asarray(p["bias"])
    ckpt["model_ema.decay"] = np.float32(0.999)
    kwargs = {"unet": registry.get_entry("ldm_unet").translate_kwargs(meta["kwargs"]),
              "vae": dict(block_out_channels=(32,), layers_per_block=1, norm_num_groups=8),
              "text_encoder": dict(vocab_size=model.text.vocab_size, hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=77),
              "conditioner": dict(context_length=77, dim=32)}
    return meta, arrays, model, ckpt, kwargs


def test_official_checkpoint_layout_converts(golden_dir, tmp_path):
    """The LatentDiffusion state dict splits and converts: the U-Net reproduces the official output, the rest
    round-trips."""
    from jaxir.parity import golden_inputs, nhwc_to_nchw
    meta, arrays, model, ckpt, kwargs = _official_checkpoint(golden_dir, tmp_path)
    # through a .safetensors file and `jaxir gendeg convert`, as a user converts the released checkpoint
    from safetensors.numpy import save_file
    save_file({k: np.ascontiguousarray(v) for k, v in ckpt.items()}, str(tmp_path / "gendeg.safetensors"))
    (tmp_path / "kwargs.json").write_text(json.dumps(kwargs))
    assert main(["gendeg", "convert", str(tmp_path / "gendeg.safetensors"), "--tokenizer",
                 str(tmp_path / "gendeg" / "tokenizer"), "--out", str(tmp_path / "converted"),
                 "--kwargs", str(tmp_path / "kwargs.json")]) == 0
    converted = gendeg.load(tmp_path / "converted")
    x, t, c = golden_inputs(meta, arrays)
    got = nhwc_to_nchw(np.asarray(converted.unet.apply(converted.unet_vars, x, t, c)))
    np.testing.assert_allclose(got, arrays["output_0"], atol=1e-4, rtol=1e-4)
    for a, b in ((converted.vae_vars, model.vae_vars), (converted.text_vars, model.text_vars),
                 (converted.conditioner_vars, model.conditioner_vars)):
        for u, w in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
            np.testing.assert_allclose(np.asarray(u), np.asarray(w), atol=0)


def test_sd_checkpoint_initialises_the_training_model(golden_dir, tmp_path):
    """`jaxir gendeg init` on an SD-style checkpoint (4-channel U-Net input, no μ/σ conditioner): the U-Net's
    extra input channels start at zero (`init_from_ckpt`), the conditioner as the official init, and the
    weights fit the `gendeg` training model (`train.init_from`)."""
    from safetensors.numpy import save_file

    from jaxir.io import load_weights
    _, _, _, ckpt, kwargs = _official_checkpoint(golden_dir, tmp_path)
    sd = {k: v for k, v in ckpt.items() if not k.startswith(("stats_proj", "cc_projection"))}
    conv_in = np.asarray(sd["model.diffusion_model.input_blocks.0.0.weight"])  # (C, 8, 3, 3)
    sd["model.diffusion_model.input_blocks.0.0.weight"] = conv_in[:, :4]
    save_file({k: np.ascontiguousarray(v) for k, v in sd.items()}, str(tmp_path / "sd.safetensors"))
    (tmp_path / "kwargs.json").write_text(json.dumps(kwargs))
    assert main(["gendeg", "init", str(tmp_path / "sd.safetensors"), "--tokenizer",
                 str(tmp_path / "gendeg" / "tokenizer"), "--out", str(tmp_path / "init.msgpack"),
                 "--kwargs", str(tmp_path / "kwargs.json")]) == 0
    name, module_kwargs, variables = load_weights(tmp_path / "init.msgpack")
    assert name == "gendeg" and module_kwargs == json.loads(json.dumps(gendeg.module_kwargs(kwargs)))
    kernel = np.asarray(variables["params"]["unet"]["input_blocks_0_0"]["kernel"])  # HWIO
    np.testing.assert_array_equal(kernel[:, :, :4], conv_in[:, :4].transpose(2, 3, 1, 0))
    assert kernel.shape[2] == 8 and not kernel[:, :, 4:].any()
    cc = variables["params"]["conditioner"]["cc_projection"]
    np.testing.assert_array_equal(np.asarray(cc["kernel"])[:32], np.eye(32))
    # The fixture's U-Net attends to 64-wide contexts and its text encoder is 32 wide: a consistent module
    # (context 32) has the same tree, and the same shapes outside the U-Net's cross-attention.
    module = registry.build_model("gendeg", **{**module_kwargs,
                                               "unet_kwargs": {**module_kwargs["unet_kwargs"], "context_dim": 32}})
    shapes = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, 16, 16, 3)))["params"]
    assert jax.tree.structure(shapes) == jax.tree.structure(variables["params"])
    for part in ("vae", "text_encoder", "conditioner"):
        for a, b in zip(jax.tree.leaves(shapes[part]), jax.tree.leaves(variables["params"][part])):
            assert a.shape == np.shape(b)
    assert shapes["unet"]["input_blocks_0_0"]["kernel"].shape == kernel.shape
