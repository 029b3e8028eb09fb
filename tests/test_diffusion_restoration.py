"""Degradation operators (exact normal equations), RDMD and CM4IR loops with a small random U-Net."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data

from jaxir import registry
from jaxir.diffusion import cm4ir, operators, rdmd
from jaxir.diffusion.gaussian import GaussianDiffusion
from jaxir.diffusion.karras import KarrasDenoiser, multistep_consistency_sample
from jaxir.degradations.kernels import gaussian_kernel


def _photo(size=32):
    """The bundled astronaut photo, 256x256 crop box-averaged to size x size, in [-1, 1]."""
    img = skimage.data.astronaut()[:256, 128:384].astype(np.float32) / 255.0
    f = 256 // size
    img = img.reshape(size, f, size, f, 3).mean(axis=(1, 3))
    return jnp.asarray(img[None] * 2 - 1)


def _psnr(a, b):  # images in [-1, 1] scored on [0, 1]
    return float(10 * np.log10(1.0 / np.mean(((np.asarray(a) - np.asarray(b)) / 2) ** 2)))


OPERATORS = {
    "blur": operators.Blur(np.asarray(gaussian_kernel(9, 2.0))),
    "sr": operators.SuperResolution(4, operators.bicubic_kernel(4)),
    "inpaint": operators.Inpainting((np.random.default_rng(0).random((16, 16)) > 0.5).astype(np.float32)),
}


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_operator_adjoint_and_closed_form_normal_equations(name):
    op = OPERATORS[name]
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(k1, (2, 16, 16, 3))
    y = jax.random.normal(k2, op.output_shape(x.shape))
    z = jax.random.normal(k3, x.shape)
    # <Ax, y> = <x, Aᵀy>
    assert float(jnp.vdot(op.forward(x), y)) == pytest.approx(float(jnp.vdot(x, op.adjoint(y))), rel=1e-4)
    for alpha in (0.05, 1.0):
        sol = op.prox(y, z, alpha)
        lhs = op.adjoint(op.forward(sol)) + alpha * sol
        rhs = op.adjoint(y) + alpha * z
        np.testing.assert_allclose(np.asarray(lhs), np.asarray(rhs), atol=2e-4)
    # Regularised pseudo-inverse = prox towards 0 with α = η; η = 0 is a right inverse where A has full row rank.
    np.testing.assert_allclose(np.asarray(op.pinv(y, 0.3)), np.asarray(op.prox(y, jnp.zeros_like(x), 0.3)), atol=2e-4)
    if name in ("sr", "inpaint"):
        np.testing.assert_allclose(np.asarray(op.forward(op.pinv(op.forward(x)))), np.asarray(op.forward(x)),
                                   atol=2e-4)


def test_median_fill_matches_its_definition():
    image = np.arange(5 * 5 * 1, dtype=np.float32).reshape(5, 5, 1)
    mask = np.ones((5, 5), np.float32)
    mask[2, 2] = 0
    filled = operators.median_fill(image, mask)
    known = np.delete(image.reshape(-1), 12)  # the 5x5 window at radius 2 minus the centre; lower median
    assert filled[2, 2, 0] == np.sort(known)[(len(known) - 1) // 2]
    np.testing.assert_array_equal(filled[mask > 0], image[mask > 0])


@functools.lru_cache(maxsize=None)
def _small_unet(name, out_channels):
    model = registry.build_model(name, in_channels=3, model_channels=32, out_channels=out_channels,
                                 num_res_blocks=1, attention_resolutions=(2,), channel_mult=(1, 2),
                                 num_head_channels=16, use_scale_shift_norm=True, resblock_updown=True)
    x = jnp.zeros((1, 32, 32, 3))
    variables = model.init(jax.random.key(0), x, jnp.zeros((1,)))
    return model, variables


def _blurred(op, sigma_y, key=jax.random.key(7)):
    clean = _photo()
    y = op.forward(clean) + 2 * sigma_y * jax.random.normal(key, op.output_shape(clean.shape))
    return clean, y


def test_rdmd_data_step_alone_raises_psnr_and_loop_is_deterministic():
    op = operators.Blur(np.asarray(gaussian_kernel(9, 2.0)))
    config = rdmd.RDMDConfig(iter_num=8, noise_level_img=0.01)
    clean, y = _blurred(op, config.noise_level_img)
    # Data consistency alone: the closed-form step towards the measurement.
    restored = op.prox(y, y, 0.02)
    assert _psnr(restored, clean) > _psnr(y, clean) + 1.0

    model, variables = _small_unet("adm_unet", 6)
    x0_fn = rdmd.adm_x0_fn(model, variables, GaussianDiffusion.from_schedule("linear", 1000))
    run = jax.jit(lambda key, cfg=config: rdmd.restore(x0_fn, op, y, y, key, cfg))
    a, b, c = run(jax.random.key(1)), run(jax.random.key(1)), run(jax.random.key(2))
    assert a.shape == clean.shape and bool(jnp.isfinite(a).all())
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(jnp.abs(a - c).max()) > 1e-4  # ζ > 0: the key matters


def test_rdmd_closed_form_variant_and_schedule():
    config = rdmd.RDMDConfig()
    seq = rdmd.timestep_sequence(config)
    assert seq[0] == 0 and seq[-1] == 999 and len(seq) == 100
    s = rdmd.schedule(config)
    np.testing.assert_array_equal(s["t"], 999 - np.asarray(seq))
    # ρ_t = λτσ²/σ̄_t²
    assert s["rho"][0] == pytest.approx(20 * 0.5 * (12.75 / 255) ** 2 / s["reduced"][999] ** 2, rel=1e-5)

    op = operators.SuperResolution(2, operators.bicubic_kernel(2))
    cfg = rdmd.sr_config(2, iter_num=5, noise_level_img=0.0, data_step="closed_form")
    clean = _photo()
    y = op.forward(clean)
    x_init = op.pinv(y)
    model, variables = _small_unet("adm_unet", 6)
    x0_fn = rdmd.adm_x0_fn(model, variables, GaussianDiffusion.from_schedule("linear", 1000))
    out = jax.jit(lambda key: rdmd.restore(x0_fn, op, y, x_init, key, cfg))(jax.random.key(0))
    assert out.shape == clean.shape and bool(jnp.isfinite(out).all())


def test_karras_scalings_boundary_condition():
    d = KarrasDenoiser()
    c_skip, c_out, c_in = d.scalings(jnp.float32(d.sigma_min))
    assert float(c_skip) == pytest.approx(1.0) and float(c_out) == pytest.approx(0.0, abs=1e-7)
    sigma = 3.0
    c_skip, c_out, c_in = d.scalings(jnp.float32(sigma))
    assert float(c_in) == pytest.approx(1 / np.sqrt(sigma ** 2 + 0.25))
    # Any network: D(x, σ_min) = x.
    x = jax.random.normal(jax.random.key(0), (2, 4, 4, 3))
    np.testing.assert_allclose(np.asarray(d.denoise(lambda u, t: u * 5 + 1, x, d.sigma_min)), np.asarray(x), atol=1e-6)
    assert float(d.rescaled_time(jnp.float32(1.0))) == 0.0


def test_cm4ir_restores_and_back_projection_enforces_the_measurement():
    op = OPERATORS["sr"]
    config = cm4ir.CM4IRConfig(i_n=400, gamma=0.7, sigma_y=0.0)
    clean = _photo()
    y = op.forward(clean)
    x_init = cm4ir.initialise(op, y, config)
    model, variables = _small_unet("cm_unet", 3)
    network = cm4ir.cm_network(model, variables)
    run = jax.jit(lambda key: cm4ir.restore(network, op, y, x_init, key, config))
    a, b = run(jax.random.key(0)), run(jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # Noiseless: the output is the last back-projected estimate, so A x = y exactly.
    np.testing.assert_allclose(np.asarray(op.forward(a)), np.asarray(y), atol=1e-4)
    assert _psnr(a, clean) > 15.0  # the measurement pins the low frequencies even with a random network
    # Alpha schedule as the official: ᾱ[iN+1], then ×(1+γ) clipped at 0.9999.
    alphas = cm4ir.alpha_schedule(config)
    assert alphas[1] == pytest.approx(min(alphas[0] * 1.7, 0.9999), rel=1e-6) and alphas.max() <= 0.9999


def test_multistep_consistency_sampling_is_keyed():
    model, variables = _small_unet("cm_unet", 3)
    network = cm4ir.cm_network(model, variables)
    d = KarrasDenoiser()
    x_T = d.sigma_max * jax.random.normal(jax.random.key(0), (1, 32, 32, 3))
    run = jax.jit(lambda key: multistep_consistency_sample(d, network, x_T, key, ts=(0, 22, 39)))
    a, b, c = run(jax.random.key(1)), run(jax.random.key(1)), run(jax.random.key(2))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(jnp.abs(a - c).max()) > 1e-4
    assert float(jnp.abs(a).max()) <= 1.0


def test_official_task_presets():
    from jaxir.parity import count_params

    kernel = rdmd.dps_gaussian_kernel()
    assert kernel.shape == (61, 61) and kernel.sum() == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(kernel, kernel.T, atol=1e-9)
    op, cfg = rdmd.task("sr4")
    assert op.scale == 4 and cfg.zeta == 0.0 and cfg.scale == 4
    op, cfg = rdmd.task("deblur_gaussian")
    assert cfg.lambda_ == 20.0 and cfg.tau == 0.5 and cfg.zeta == 0.3 and cfg.skip_type == "quad"
    # The official FFHQ prior is the golden file's 93,563,910-parameter configuration.
    model = registry.build_model("adm_unet", **rdmd.PRIORS["ffhq"])
    abstract = [jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32), jax.ShapeDtypeStruct((1,), jnp.float32)]
    assert count_params(model, *abstract) == 93_563_910
    op, cfg = cm4ir.task("deblur_gauss")
    assert cfg.zeta == 3.0 and cfg.i_n == 75 and op.kernel.sum() == pytest.approx(1.0, rel=1e-6)
    mask = np.ones((8, 8), np.float32)
    mask[2:4, 2:4] = 0
    op, cfg = cm4ir.task("inpainting", mask=mask)
    y = op.forward(jnp.ones((1, 8, 8, 3)))
    x = cm4ir.initial_estimate(op, y, cfg, mask)
    np.testing.assert_allclose(np.asarray(x), 1.0, atol=1e-6)  # the hole is filled from its known neighbours
