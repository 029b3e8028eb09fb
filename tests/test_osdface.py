"""OSDFace's one-step restoration end to end on a bundled photo with small random weights."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxir import registry
from jaxir.diffusion.latent import autoencoder_kl as akl
from jaxir.diffusion.latent import osdface


def test_x0_from_eps_inverts_the_forward_process():
    ab = float(np.cumprod(1.0 - osdface.pipeline.sd_betas())[399])
    x0, eps = np.full((1, 2, 2, 4), 0.3), np.full((1, 2, 2, 4), -1.2)
    z = np.sqrt(ab) * x0 + np.sqrt(1 - ab) * eps
    np.testing.assert_allclose(osdface.x0_from_eps(z, eps), x0, atol=1e-12)


@pytest.mark.slow  # ~40 s CPU: compiles the VRE, VAE and U-Net
def test_one_step_restoration_of_a_bundled_photo():
    skimage_data = pytest.importorskip("skimage.data")
    from skimage.transform import resize
    photo = resize(skimage_data.astronaut(), (32, 32), anti_aliasing=True).astype(np.float32)[None]
    keys = jax.random.split(jax.random.key(0), 5)
    # VRE: 32x32 -> 8x8 latent of 512-wide codes, 77 selected (at most 64 distinct codes exist, rest zero)
    nets = {"vre": registry.build_model("osdface_vre", n_embed=128, embed_dim=512, ch=32, ch_mult=(1, 2, 2),
                                        num_res_blocks=1, attn_resolutions=(8,), resolution=32, z_channels=32,
                                        n_min=77),
            "embedding_change": osdface.EmbeddingChange(64),
            "unet": registry.build_model("ldm_unet", in_channels=4, out_channels=4, model_channels=32,
                                         num_res_blocks=1, attention_resolutions=(1,), channel_mult=(1, 2),
                                         num_head_channels=16, context_dim=64),
            "vae": akl.AutoencoderKL(block_out_channels=(32, 32, 32), layers_per_block=1, norm_num_groups=8)}
    lq = jnp.asarray(photo) * 2 - 1
    variables = {"vre": nets["vre"].init(keys[0], lq),
                 "embedding_change": nets["embedding_change"].init(keys[1], jnp.zeros((1, 77, 512))),
                 "unet": nets["unet"].init(keys[2], jnp.zeros((1, 8, 8, 4)), jnp.zeros((1,), jnp.int32),
                                           jnp.zeros((1, 77, 64))),
                 "vae": nets["vae"].init(keys[3], lq)}
    out = osdface.restore(nets, variables, photo, keys[4], color_fix=True)
    assert out.shape == (1, 32, 32, 3) and float(out.min()) >= 0 and float(out.max()) <= 1
    # the colour fix gives the output the input's low frequencies: mean colour stays close to the photo's
    np.testing.assert_allclose(np.asarray(out).mean((1, 2)), photo.mean((1, 2)), atol=0.08)
    raw = osdface.restore(nets, variables, photo, keys[4], color_fix=False)
    assert float(jnp.abs(raw - out).mean()) > 1e-3
