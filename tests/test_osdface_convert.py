"""OSDFace's released-weight layouts (jkwang28/OSDFace infer.py) converted: diffusers' UNet2DConditionModel with a
peft LoRA against diffusers run with the adapters as parallel branches, the merge rule, TwoLayerConv1x1, the VRE
from an `associate_2.ckpt`-style checkpoint against the golden file, and `jaxir osdface convert/restore` on a
self-made tiny SD folder + pretrained/ folder."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from jaxir.cli import main  # noqa: E402
from jaxir.convert.state_dict import convert_state_dict  # noqa: E402
from jaxir.diffusion.latent import osdface  # noqa: E402
from jaxir.diffusion.latent import osdface_convert as oc  # noqa: E402

UNET_CONFIG = dict(sample_size=16, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
                   down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                   up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=24,
                   attention_head_dim=(2, 4), use_linear_projection=True, norm_num_groups=32)
# OSEDiff/OSDFace-style targets: attention, feed-forward, linear proj_in/out and the ResBlock convs
LORA_TARGETS = ("attn1.to_q", "attn1.to_k", "attn2.to_v", "attn2.to_out.0", "ff.net.0.proj", "ff.net.2",
                "proj_in", "proj_out", "conv1", "conv_shortcut")


def _perturbed(module, seed=0):
    rng = np.random.default_rng(seed)
    sd = {k: v.detach().numpy() + 0.02 * rng.normal(size=v.shape).astype(np.float32)
          for k, v in module.state_dict().items()}
    module.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in sd.items()})
    return sd


def _lora_state_dict(unet, rank, seed=1):
    """peft naming as diffusers saves it (`unet.<module>.lora_A.weight`), random A and B."""
    rng = np.random.default_rng(seed)
    lora = {}
    for name, module in unet.named_modules():
        if not name.endswith(LORA_TARGETS) or name.startswith("time_embedding"):
            continue
        if isinstance(module, torch.nn.Linear):
            a = rng.normal(size=(rank, module.in_features)) * 0.1
            b = rng.normal(size=(module.out_features, rank)) * 0.1
        elif isinstance(module, torch.nn.Conv2d):
            a = rng.normal(size=(rank, module.in_channels, *module.kernel_size)) * 0.1
            b = rng.normal(size=(module.out_channels, rank, 1, 1)) * 0.1
        else:
            continue
        lora[f"unet.{name}.lora_A.weight"] = a.astype(np.float32)
        lora[f"unet.{name}.lora_B.weight"] = b.astype(np.float32)
    return lora


def _add_parallel_branches(unet, lora, scale):
    """What peft computes with the adapter unmerged: y = base(x) + scale · B(A(x))."""
    import torch.nn.functional as F

    handles = []
    for name, module in unet.named_modules():
        key = f"unet.{name}.lora_A.weight"
        if key not in lora:
            continue
        a = torch.from_numpy(lora[key])
        b = torch.from_numpy(lora[key.replace("lora_A", "lora_B")])

        def hook(mod, inputs, output, a=a, b=b):
            x = inputs[0]
            if isinstance(mod, torch.nn.Linear):
                return output + scale * F.linear(F.linear(x, a), b)
            return output + scale * F.conv2d(F.conv2d(x, a, stride=mod.stride, padding=mod.padding), b)

        handles.append(module.register_forward_hook(hook))
    return handles


@pytest.fixture(scope="module")
def tiny_unet():
    torch.manual_seed(0)
    ref = diffusers.UNet2DConditionModel(**UNET_CONFIG).eval()
    return ref, _perturbed(ref)


def _unet_inputs():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 4, 16, 16)).astype(np.float32)
    ctx = rng.normal(size=(2, 77, 24)).astype(np.float32)
    return x, ctx


def _jax_unet(sd, config):
    kwargs = oc.diffusers_unet_kwargs(config)
    unet = oc.build_nets({"unet": kwargs, "vae": {}, "vre": {}, "embedding_change": {}})["unet"]
    ldm = oc.diffusers_unet_to_ldm(sd, unet.num_res_blocks, len(unet.channel_mult))
    variables = convert_state_dict(ldm, unet, jnp.zeros((1, 16, 16, 4)), jnp.zeros((1,), jnp.int32),
                                   jnp.zeros((1, 77, unet.context_dim)))
    return unet, variables


def test_diffusers_unet_maps_to_ldm_unet(tiny_unet):
    ref, sd = tiny_unet
    kwargs = oc.diffusers_unet_kwargs(dict(ref.config))
    assert kwargs["num_head_channels"] == 16 and kwargs["attention_resolutions"] == (1,)
    unet, variables = _jax_unet(sd, dict(ref.config))
    x, ctx = _unet_inputs()
    with torch.no_grad():
        want = ref(torch.from_numpy(x), 399, encoder_hidden_states=torch.from_numpy(ctx)).sample.numpy()
    got = unet.apply(variables, jnp.asarray(x.transpose(0, 2, 3, 1)), jnp.full((2,), 399, jnp.int32),
                     jnp.asarray(ctx))
    np.testing.assert_allclose(np.asarray(got).transpose(0, 3, 1, 2), want, atol=1e-4, rtol=0)


def test_peft_lora_merge_matches_parallel_branches(tiny_unet):
    ref, sd = tiny_unet
    lora = _lora_state_dict(ref, rank=4)
    assert any(v.ndim == 4 for v in lora.values()) and len(lora) > 20
    scale = 8.0 / 4  # lora_alpha / lora_rank
    merged = oc.merge_peft_lora(sd, lora, scale)
    # the merge rule: W + scale · B·A
    key = "down_blocks.0.resnets.0.conv1.weight"
    a, b = lora[f"unet.{key[:-7]}.lora_A.weight"], lora[f"unet.{key[:-7]}.lora_B.weight"]
    np.testing.assert_allclose(merged[key], sd[key] + scale * np.einsum("or,rikl->oikl", b[:, :, 0, 0], a), atol=1e-6)
    key = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"
    a, b = lora[f"unet.{key[:-7]}.lora_A.weight"], lora[f"unet.{key[:-7]}.lora_B.weight"]
    np.testing.assert_allclose(merged[key], sd[key] + scale * b @ a, atol=1e-6)
    untouched = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_q.weight"
    np.testing.assert_array_equal(merged[untouched], sd[untouched])
    # the merged, converted U-Net equals diffusers running the adapters unmerged
    unet, variables = _jax_unet(merged, dict(ref.config))
    x, ctx = _unet_inputs()
    handles = _add_parallel_branches(ref, lora, scale)
    try:
        with torch.no_grad():
            want = ref(torch.from_numpy(x), 399, encoder_hidden_states=torch.from_numpy(ctx)).sample.numpy()
    finally:
        for h in handles:
            h.remove()
    with torch.no_grad():
        base = ref(torch.from_numpy(x), 399, encoder_hidden_states=torch.from_numpy(ctx)).sample.numpy()
    assert np.abs(want - base).max() > 1e-2  # the adapters matter
    got = unet.apply(variables, jnp.asarray(x.transpose(0, 2, 3, 1)), jnp.full((2,), 399, jnp.int32),
                     jnp.asarray(ctx))
    np.testing.assert_allclose(np.asarray(got).transpose(0, 3, 1, 2), want, atol=1e-4, rtol=0)


def test_lora_merge_refuses_what_it_cannot_place(tiny_unet):
    _, sd = tiny_unet
    with pytest.raises(KeyError, match="only U-Net"):
        oc.merge_peft_lora(sd, {"text_encoder.x.lora_A.weight": np.zeros((1, 1)),
                                "text_encoder.x.lora_B.weight": np.zeros((1, 1))}, 1.0)
    with pytest.raises(KeyError, match="no unet.nothing"):
        oc.merge_peft_lora(sd, {"unet.nothing.lora_A.weight": np.zeros((1, 1))}, 1.0)


def test_unported_diffusers_options_are_refused():
    with pytest.raises(ValueError, match="class_embed_type"):
        oc.diffusers_unet_kwargs({**UNET_CONFIG, "class_embed_type": "timestep"})
    with pytest.raises(ValueError, match="mirror"):
        oc.diffusers_unet_kwargs({**UNET_CONFIG, "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D")})


def test_embedding_change_matches_conv1d():
    class TwoLayerConv1x1(torch.nn.Module):  # lq_embed/inference.py's layer names and computation
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = torch.nn.Conv1d(32, 16, 1), torch.nn.Conv1d(16, 48, 1)

        def forward(self, x):
            x = torch.nn.functional.silu(self.conv1(x.permute(0, 2, 1)))
            return torch.nn.functional.silu(self.conv2(x)).permute(0, 2, 1)

    torch.manual_seed(0)
    ref = TwoLayerConv1x1()
    sd = {k: v.numpy() for k, v in ref.state_dict().items()}
    module = osdface.EmbeddingChange(48)
    variables = convert_state_dict(sd, module, jnp.zeros((1, 77, 32)))
    x = np.random.default_rng(0).normal(size=(2, 77, 32)).astype(np.float32)
    with torch.no_grad():
        want = ref(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(np.asarray(module.apply(variables, jnp.asarray(x))), want, atol=1e-5)


def _write_official_layout(root, golden_dir, tiny_unet):
    """A tiny SD 2.1-style diffusers folder and an OSDFace pretrained/ folder, in the official file layouts."""
    from safetensors.numpy import save_file

    from jaxir.parity import golden_state_dict, load_golden

    ref, sd = tiny_unet
    sd_dir, ckpt = root / "sd", root / "pretrained"
    (sd_dir / "unet").mkdir(parents=True)
    ref.save_pretrained(str(sd_dir / "unet"))
    torch.manual_seed(1)
    vae = diffusers.AutoencoderKL(block_out_channels=(32, 32), layers_per_block=1, latent_channels=4,
                                  down_block_types=("DownEncoderBlock2D",) * 2,
                                  up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=8)
    vae.save_pretrained(str(sd_dir / "vae"))
    (sd_dir / "scheduler").mkdir()
    (sd_dir / "scheduler" / "scheduler_config.json").write_text(json.dumps(
        {"_class_name": "DDIMScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085,
         "beta_end": 0.012, "num_train_timesteps": 1000}))
    ckpt.mkdir()
    save_file(_lora_state_dict(ref, rank=4), str(ckpt / "pytorch_lora_weights.safetensors"))
    torch.manual_seed(2)
    ec = {"conv1.weight": torch.randn(16, 32, 1) * 0.2, "conv1.bias": torch.randn(16) * 0.1,
          "conv2.weight": torch.randn(24, 16, 1) * 0.2, "conv2.bias": torch.randn(24) * 0.1}
    torch.save(ec, ckpt / "embedding_change_weights.pth")
    meta, arrays = load_golden(golden_dir / "osdface_vre.npz")
    state = {f"vqvae_LQ.{k}": torch.from_numpy(np.ascontiguousarray(v)) for k, v in golden_state_dict(arrays).items()}
    state["vqvae_LQ.decoder.conv_in.weight"] = torch.zeros(4, 4, 3, 3)  # not part of the embedder
    state["vqvae_HQ.encoder.conv_in.weight"] = torch.zeros(4, 4, 3, 3)
    torch.save({"epoch": 3, "state_dict": state}, ckpt / "associate_2.ckpt")
    vre_kwargs = {k: v for k, v in meta["kwargs"].items() if k != "flags"}
    return sd_dir, ckpt, vre_kwargs, meta, arrays


def test_vre_converts_from_the_associate_checkpoint(golden_dir, tmp_path, tiny_unet):
    from jaxir.convert.torch_io import load_checkpoint, select_state_dict
    from jaxir.diffusion.latent.osdface_vre import build
    from jaxir.parity import golden_inputs

    _, ckpt, vre_kwargs, meta, arrays = _write_official_layout(tmp_path, golden_dir, tiny_unet)
    sd = oc.vre_state_dict(select_state_dict(load_checkpoint(ckpt / "associate_2.ckpt"), "state_dict"))
    assert not any(k.startswith("decoder") for k in sd)
    vre = build(**vre_kwargs)
    variables = convert_state_dict(sd, vre, jnp.zeros((1, 32, 32, 3)))
    got = vre.apply(variables, jnp.asarray(golden_inputs(meta, arrays)[0]))
    np.testing.assert_allclose(np.asarray(got), arrays["output_0"], atol=1e-5)


@pytest.mark.slow  # ~30 s CPU: converts and compiles the whole tiny pipeline
def test_convert_and_restore_commands(golden_dir, tmp_path, tiny_unet):
    from jaxir import io as jio

    sd_dir, ckpt, vre_kwargs, _, _ = _write_official_layout(tmp_path, golden_dir, tiny_unet)
    (tmp_path / "vre.json").write_text(json.dumps({**vre_kwargs, "n_min": 77}))
    assert main(["osdface", "convert", "--sd", str(sd_dir), "--ckpt", str(ckpt), "--out", str(tmp_path / "model"),
                 "--lora-rank", "4", "--lora-alpha", "8", "--vre-kwargs", str(tmp_path / "vre.json")]) == 0
    model = oc.load(tmp_path / "model")
    assert model.kwargs["embedding_change"] == {"out_channels": 24}
    ab = float(np.cumprod(1.0 - np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2)[399])
    assert model.alpha_bar == pytest.approx(ab, rel=1e-12)
    # the U-Net in the folder is the LoRA-merged one (scale 8 / 4)
    merged = oc.merge_peft_lora(tiny_unet[1], jio_lora(ckpt), 2.0)
    _, want_vars = _jax_unet(merged, dict(tiny_unet[0].config))
    np.testing.assert_allclose(
        np.asarray(model.variables["unet"]["params"]["input_blocks_1_1"]["proj_in"]["kernel"]),
        np.asarray(want_vars["params"]["input_blocks_1_1"]["proj_in"]["kernel"]), atol=1e-6)

    rng = np.random.default_rng(0)
    (tmp_path / "lq").mkdir()
    jio.write_image(tmp_path / "lq" / "a.png", rng.uniform(size=(24, 24, 3)).astype(np.float32))  # square: resized
    jio.write_image(tmp_path / "lq" / "b.png", rng.uniform(size=(64, 32, 3)).astype(np.float32))
    assert main(["osdface", "restore", "--model", str(tmp_path / "model"), "--input", str(tmp_path / "lq"),
                 "--out", str(tmp_path / "out"), "--size", "32"]) == 0
    a, b = jio.read_image(tmp_path / "out" / "a.png"), jio.read_image(tmp_path / "out" / "b.png")
    assert a.shape == (32, 32, 3) and b.shape == (64, 32, 3)
    # the same as the library call on the same input and key
    from jaxir.models.blocks import resize_bilinear_align_corners
    x = resize_bilinear_align_corners(jnp.asarray(jio.read_image(tmp_path / "lq" / "a.png"))[None], (32, 32))
    want = model.restore(x, jax.random.fold_in(jax.random.key(114), 0))
    np.testing.assert_allclose(a, np.asarray(want[0]), atol=1.5 / 255)


def jio_lora(ckpt):
    from jaxir.convert.torch_io import load_state_dict
    return load_state_dict(ckpt / "pytorch_lora_weights.safetensors")
