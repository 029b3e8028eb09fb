"""SD VAE and CLIP text encoder against diffusers' AutoencoderKL and transformers' CLIPTextModel
(small random configurations, weights perturbed), their converters, and the CLIP tokenizer on a vocab
file written here."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")

from jaxir.convert.state_dict import convert_state_dict  # noqa: E402
from jaxir.convert.torch_io import load_state_dict  # noqa: E402
from jaxir.diffusion.latent import autoencoder_kl as akl  # noqa: E402
from jaxir.diffusion.latent import clip_text  # noqa: E402
from jaxir.parity import count_params  # noqa: E402


def _perturbed(module, seed=0):
    rng = np.random.default_rng(seed)
    sd = {k: v.detach().numpy() + 0.02 * rng.normal(size=v.shape).astype(np.float32)
          if v.dtype.is_floating_point else v.detach().numpy() for k, v in module.state_dict().items()}
    module.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in sd.items()})
    return sd


@pytest.fixture(scope="module")
def vae_pair():
    torch.manual_seed(0)
    ref = diffusers.AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                                  up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16),
                                  layers_per_block=1, latent_channels=4, norm_num_groups=4).eval()
    sd = _perturbed(ref)
    model = akl.AutoencoderKL(**akl.diffusers_kwargs(dict(ref.config)))
    return ref, sd, model


def test_vae_matches_diffusers(vae_pair, tmp_path):
    ref, sd, model = vae_pair
    x = np.random.default_rng(1).uniform(-1, 1, (2, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        posterior = ref.encode(torch.from_numpy(x)).latent_dist
        mean, logvar = posterior.mean.numpy(), posterior.logvar.numpy()
        decoded = ref.decode(posterior.mean).sample.numpy()
    # through a .safetensors file, as diffusers folders store vae/diffusion_pytorch_model.safetensors
    from safetensors.numpy import save_file
    save_file({k: np.ascontiguousarray(v) for k, v in sd.items()}, str(tmp_path / "vae.safetensors"))
    xh = jnp.asarray(x.transpose(0, 2, 3, 1))
    variables = convert_state_dict(load_state_dict(tmp_path / "vae.safetensors"), model, xh)
    post = model.apply(variables, xh, method=akl.AutoencoderKL.encode)
    np.testing.assert_allclose(np.asarray(post.mean).transpose(0, 3, 1, 2), mean, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(post.logvar).transpose(0, 3, 1, 2), logvar, atol=1e-4, rtol=1e-4)
    got = np.asarray(model.apply(variables, xh)).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, decoded, atol=1e-4, rtol=1e-4)
    # the scaled-latent helpers: [0,1] images in, SD's 0.18215 scale on the latents
    z = akl.encode_latents(model, variables, (xh + 1) / 2)
    np.testing.assert_allclose(np.asarray(z), np.asarray(post.mean) * 0.18215, atol=1e-5)
    img = akl.decode_latents(model, variables, z)
    np.testing.assert_allclose(np.asarray(img), np.clip((decoded.transpose(0, 2, 3, 1) + 1) / 2, 0, 1), atol=1e-4)


def test_vae_posterior_sampling_and_kl():
    moments = jnp.concatenate([jnp.full((1, 2, 2, 3), 0.5), jnp.full((1, 2, 2, 3), 50.0)], axis=-1)
    post = akl.DiagonalGaussian(moments)
    assert float(post.logvar.max()) == 20.0  # clamped
    zero = akl.DiagonalGaussian(jnp.zeros((1, 2, 2, 6)))
    assert float(zero.kl()[0]) == 0.0
    samples = zero.sample(jax.random.key(0))
    assert samples.shape == (1, 2, 2, 3) and float(jnp.abs(samples).max()) > 0


def test_vae_tiled_decode_matches_whole_on_a_pointwise_decoder():
    # with a per-pixel 'decoder' blending must reproduce the untiled result exactly
    z = jax.random.normal(jax.random.key(0), (1, 20, 28, 4))
    fn = lambda t: jnp.repeat(jnp.repeat(jnp.tanh(t[..., :3]), 2, axis=1), 2, axis=2)  # noqa: E731
    np.testing.assert_allclose(np.asarray(akl._tiled(fn, z, 8, 2)), np.asarray(fn(z)), atol=1e-6)


def test_vae_tiled_decode_is_close_for_the_real_decoder(vae_pair):
    _, sd, model = vae_pair
    z = jax.random.normal(jax.random.key(1), (1, 16, 16, 4)) * 0.18215
    variables = convert_state_dict(sd, model, jnp.zeros((1, 8, 8, 3)))
    whole = akl.decode_latents(model, variables, z)
    tiled = akl.decode_latents(model, variables, z, tile=10, overlap=4)
    assert whole.shape == tiled.shape == (1, 32, 32, 3)
    # the decoder's receptive field crosses tiles, so only approximately equal (diffusers' trade-off)
    assert float(jnp.abs(whole - tiled).mean()) < 0.05


@pytest.fixture(scope="module")
def clip_pair():
    torch.manual_seed(0)
    config = transformers.CLIPTextConfig(vocab_size=99, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                         num_attention_heads=4, max_position_embeddings=16, eos_token_id=2,
                                         bos_token_id=0, pad_token_id=1)
    ref = transformers.CLIPTextModel(config).eval()
    sd = _perturbed(ref)
    model = clip_text.CLIPTextModel(**clip_text.transformers_kwargs(config.to_dict()))
    return ref, sd, model


def test_clip_text_matches_transformers(clip_pair):
    ref, sd, model = clip_pair
    ids = np.array([[0, 5, 17, 98, 3, 1, 1, 1], [0, 40, 41, 42, 43, 44, 98, 1]], np.int64)
    with torch.no_grad():
        out = ref(input_ids=torch.from_numpy(ids))
    variables = convert_state_dict(sd, model, jnp.asarray(ids, jnp.int32),
                                   hooks=clip_text.CONVERT_HOOKS)
    hidden, pooled = model.apply(variables, jnp.asarray(ids, jnp.int32))
    np.testing.assert_allclose(np.asarray(hidden), out.last_hidden_state.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(pooled), out.pooler_output.numpy(), atol=1e-4, rtol=1e-4)


def test_clip_vit_l14_text_count_matches_transformers():
    with torch.device("meta"):
        # openai/clip-vit-large-patch14's text tower (transformers' default config is ViT-B/32's)
        ref = transformers.CLIPTextModel(transformers.CLIPTextConfig(hidden_size=768, intermediate_size=3072,
                                                                     num_attention_heads=12))
    want = sum(p.numel() for p in ref.parameters())
    assert count_params(clip_text.CLIPTextModel(), jax.ShapeDtypeStruct((1, 77), jnp.int32)) == want == 123_060_480


def test_tokenizer_from_a_written_vocab(tmp_path):
    vocab = ["<|startoftext|>", "<|endoftext|>"]
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab += list(letters) + [c + "</w>" for c in letters] + ["ha", "haz", "haze</w>", "rain</w>", "ra", "in</w>"]
    (tmp_path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (tmp_path / "merges.txt").write_text("#version: 0.2\nh a\nha z\nhaz e</w>\nr a\ni n</w>\nra in</w>\n")
    tok = transformers.CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    ids = clip_text.tokenize(tok, ["haze rain", "Haze"], length=6)
    bos, eos = vocab.index("<|startoftext|>"), vocab.index("<|endoftext|>")
    assert ids.dtype == np.int32 and ids.shape == (2, 6)
    assert ids[0].tolist()[:4] == [bos, vocab.index("haze</w>"), vocab.index("rain</w>"), eos]
    assert ids[1].tolist()[:3] == [bos, vocab.index("haze</w>"), eos]  # lower-cased


def test_diffusers_and_transformers_folders_load(vae_pair, clip_pair, tmp_path):
    ref_vae, _, _ = vae_pair
    ref_vae.save_pretrained(tmp_path / "vae")
    model, variables = akl.load_diffusers(tmp_path / "vae")
    x = np.random.default_rng(2).uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        want = ref_vae(torch.from_numpy(x)).sample.numpy()
    got = np.asarray(model.apply(variables, jnp.asarray(x.transpose(0, 2, 3, 1)))).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)

    ref_text, _, _ = clip_pair
    ref_text.save_pretrained(tmp_path / "text_encoder")
    text, text_vars = clip_text.load_transformers(tmp_path / "text_encoder")
    ids = np.array([[0, 7, 9, 98, 1]], np.int64)
    with torch.no_grad():
        want = ref_text(input_ids=torch.from_numpy(ids)).last_hidden_state.numpy()
    got = np.asarray(text.apply(text_vars, jnp.asarray(ids, jnp.int32))[0])
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
