"""Latent diffusion: SD schedule, InstructPix2Pix dual guidance, LoRA (init, merge, kohya loading, training),
and a tiny VAE + CLIP + LDM U-Net that trains a few LoRA steps and samples with DDIM."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxir import registry
from jaxir.diffusion.latent import autoencoder_kl as akl
from jaxir.diffusion.latent import clip_text, lora, pipeline


def test_sd_scaled_linear_betas():
    b = pipeline.sd_betas()
    assert b.shape == (1000,)
    np.testing.assert_allclose([b[0], b[-1]], [0.00085, 0.012], rtol=1e-12)
    assert np.all(np.diff(np.sqrt(b)) > 0) and np.allclose(np.diff(np.sqrt(b), 2), 0, atol=1e-15)


def _fake_unet(x, t, c):
    # depends on the latent, the image half and the context in distinguishable ways
    return x[..., :2] * 2.0 + x[..., 2:] * 3.0 + c.mean(axis=(1, 2))[:, None, None, None] + t[:, None, None, None]


def test_instructpix2pix_guidance_combines_three_predictions():
    key = jax.random.split(jax.random.key(0), 3)
    z, img = jax.random.normal(key[0], (2, 4, 4, 2)), jax.random.normal(key[1], (2, 4, 4, 2))
    ctx, null = jax.random.normal(key[2], (2, 3, 5)), jnp.full((1, 3, 5), 0.7)
    t = jnp.array([3.0, 9.0])
    full = _fake_unet(jnp.concatenate([z, img], -1), t, ctx)
    image_only = _fake_unet(jnp.concatenate([z, img], -1), t, jnp.broadcast_to(null, ctx.shape))
    uncond = _fake_unet(jnp.concatenate([z, jnp.zeros_like(img)], -1), t, jnp.broadcast_to(null, ctx.shape))
    g = lambda s_t, s_i: pipeline.guided_eps(_fake_unet, z, t, img, ctx, null, s_t, s_i)  # noqa: E731
    np.testing.assert_allclose(g(1.0, 1.0), full, atol=1e-5)
    np.testing.assert_allclose(g(0.0, 0.0), uncond, atol=1e-5)
    np.testing.assert_allclose(g(0.0, 1.0), image_only, atol=1e-5)
    np.testing.assert_allclose(g(7.5, 1.5), uncond + 1.5 * (image_only - uncond) + 7.5 * (full - image_only),
                               atol=1e-4)


def test_lora_merge_is_the_parallel_branch_and_starts_neutral():
    w = jax.random.normal(jax.random.key(0), (6, 5))
    params = {"blk": {"transformer_blocks_0": {"attn1": {"to_q": {"kernel": w}}}}}
    adapters = lora.init(params, jax.random.key(1), rank=2)
    assert list(adapters) == ["blk/transformer_blocks_0/attn1/to_q/kernel"]
    merged = lora.merge(params, adapters)
    np.testing.assert_array_equal(merged["blk"]["transformer_blocks_0"]["attn1"]["to_q"]["kernel"], w)
    a = adapters["blk/transformer_blocks_0/attn1/to_q/kernel"]
    a = dict(a, B=jax.random.normal(jax.random.key(2), a["B"].shape), alpha=jnp.asarray(4.0))
    x = jax.random.normal(jax.random.key(3), (3, 6))
    got = x @ lora.merge(params, {"blk/transformer_blocks_0/attn1/to_q/kernel": a}, scale=0.5)[
        "blk"]["transformer_blocks_0"]["attn1"]["to_q"]["kernel"]
    np.testing.assert_allclose(got, x @ w + 0.5 * (4.0 / 2) * (x @ a["A"]) @ a["B"], atol=1e-5)


def test_lora_from_kohya_state_dict_matches_torch_locon():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 3, 4, 6)).astype(np.float32)  # HWIO
    down, up = rng.normal(size=(2, 4, 3, 3)).astype(np.float32), rng.normal(size=(6, 2, 1, 1)).astype(np.float32)
    params = {"input_blocks_1_0": {"in_layers_2": {"kernel": jnp.asarray(w)}}}
    sd = {"input_blocks.1.0.in_layers.2.lora_down.weight": down, "input_blocks.1.0.in_layers.2.lora_up.weight": up,
          "input_blocks.1.0.in_layers.2.alpha": np.float32(1.0)}
    merged = lora.merge(params, lora.from_state_dict(sd, params))
    merged = np.asarray(merged["input_blocks_1_0"]["in_layers_2"]["kernel"])
    x = torch.from_numpy(rng.normal(size=(1, 4, 7, 7)).astype(np.float32))
    tw = torch.from_numpy(np.transpose(w, (3, 2, 0, 1)).copy())
    branch = torch.nn.functional.conv2d(torch.nn.functional.conv2d(x, torch.from_numpy(down), padding=1),
                                        torch.from_numpy(up))
    want = torch.nn.functional.conv2d(x, tw, padding=1) + 0.5 * branch  # alpha / rank = 1 / 2
    got = torch.nn.functional.conv2d(x, torch.from_numpy(np.transpose(merged, (3, 2, 0, 1)).copy()), padding=1)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-4, rtol=1e-4)


@pytest.mark.slow  # ~80 s CPU: compiles the guided DDIM scan and the LoRA training step
def test_tiny_latent_diffusion_trains_lora_and_samples():
    keys = jax.random.split(jax.random.key(0), 8)
    vae = akl.AutoencoderKL(block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4)
    images = jax.random.uniform(keys[0], (2, 16, 16, 3))
    vae_vars = vae.init(keys[1], images)
    text = clip_text.CLIPTextModel(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                   num_attention_heads=4, max_position_embeddings=8)
    ids = jnp.array([[0, 5, 6, 49, 1, 1, 1, 1], [0, 7, 49, 1, 1, 1, 1, 1]], jnp.int32)
    text_vars = text.init(keys[2], ids)
    context = text.apply(text_vars, ids)[0]
    null_context = text.apply(text_vars, jnp.array([[0, 49, 1, 1, 1, 1, 1, 1]], jnp.int32))[0]
    unet = registry.build_model("ldm_unet", in_channels=8, out_channels=4, model_channels=32, num_res_blocks=1,
                                attention_resolutions=(1,), channel_mult=(1, 2), num_heads=2, context_dim=32)
    clean = akl.encode_latents(vae, vae_vars, images)
    degraded = akl.encode_latents(vae, vae_vars, images * 0.5, key=keys[3])
    assert clean.shape == (2, 8, 8, 4)
    base = unet.init(keys[4], jnp.zeros((2, 8, 8, 8)), jnp.zeros((2,), jnp.int32), context)["params"]
    adapters = lora.init(base, keys[5], rank=2, targets=lora.ATTENTION_TARGETS + "|" + lora.CONV_TARGETS)
    diffusion = pipeline.GaussianDiffusion(pipeline.sd_betas(100, 0.0085, 0.12))

    def loss_fn(adapters, key):
        params = lora.merge(base, adapters)
        return pipeline.training_loss(lambda x, t, c: unet.apply({"params": params}, x, t, c), diffusion,
                                      degraded, clean, context, null_context, key)

    opt = optax.adam(3e-3)
    state = opt.init(adapters)
    step = jax.jit(lambda a, s, k: (lambda lg: (optax.apply_updates(a, opt.update(lg[1], s, a)[0]),
                                                 opt.update(lg[1], s, a)[1], lg[0]))(jax.value_and_grad(loss_fn)(a, k)))
    fixed = keys[6]
    first = float(loss_fn(adapters, fixed))
    for _ in range(4):
        adapters, state, loss = step(adapters, state, fixed)
        assert np.isfinite(float(loss))
    assert float(loss_fn(adapters, fixed)) < first
    assert any(float(jnp.abs(a["B"]).max()) > 0 for a in adapters.values())

    params = lora.merge(base, adapters)
    z = pipeline.sample(unet, {"params": params}, diffusion, clean[:1], context[:1], null_context, keys[7],
                        steps=4, text_scale=3.0, image_scale=1.5)
    out = akl.decode_latents(vae, vae_vars, z)
    assert out.shape == (1, 16, 16, 3) and bool(jnp.all(jnp.isfinite(out)))
    again = pipeline.sample(unet, {"params": params}, diffusion, clean[:1], context[:1], null_context, keys[7],
                            steps=4, text_scale=3.0, image_scale=1.5)
    np.testing.assert_array_equal(np.asarray(z), np.asarray(again))  # keyed, deterministic (eta 0)
