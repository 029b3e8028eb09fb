"""Diffusion core against closed forms: schedules, respacing, forward process, posterior, samplers."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxir.diffusion import samplers, schedules
from jaxir.diffusion.gaussian import GaussianDiffusion


def test_linear_and_cosine_schedules():
    betas = schedules.linear_betas(1000)
    assert betas[0] == pytest.approx(1e-4) and betas[-1] == pytest.approx(0.02)
    np.testing.assert_allclose(schedules.linear_betas(250), np.linspace(4e-4, 0.08, 250))
    cos = schedules.cosine_betas(100)
    alpha_bar = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    np.testing.assert_allclose(np.cumprod(1 - cos)[:-1], [alpha_bar((i + 1) / 100) / alpha_bar(0) for i in range(99)],
                               rtol=1e-9)
    assert cos.max() <= 0.999


def test_space_timesteps_as_guided_diffusion():
    # 'ddimN': the integer stride giving exactly N steps.
    assert schedules.space_timesteps(1000, "ddim50") == set(range(0, 1000, 20))
    # Sections of 50 steps: strides 49/9 and 49/4 accumulated and rounded half to even (24.5 -> 24).
    want = {0, 5, 11, 16, 22, 27, 33, 38, 44, 49} | {50 + i for i in (0, 12, 24, 37, 49)}
    assert schedules.space_timesteps(100, "10,5") == want
    assert schedules.space_timesteps(10, [3]) == {0, 4, 9}
    with pytest.raises(ValueError):
        schedules.space_timesteps(10, [11])


def test_respacing_keeps_alpha_bar_at_kept_steps():
    base = GaussianDiffusion.from_schedule("linear", 1000)
    spaced = base.respaced("25")
    assert spaced.num_timesteps == 25
    np.testing.assert_allclose(spaced.alphas_cumprod, base.alphas_cumprod[spaced.timestep_map], rtol=1e-12)
    assert spaced.timestep_map[0] == 0 and spaced.timestep_map[-1] == 999
    np.testing.assert_allclose(np.asarray(spaced.model_timesteps(jnp.array([0, 24]))), [0.0, 999.0])


def test_forward_process_marginals():
    d = GaussianDiffusion.from_schedule("cosine", 200)
    x0 = jnp.full((20000, 1), 0.7)
    t = jnp.full((20000,), 120)
    xt = np.asarray(d.q_sample(x0, t, jax.random.normal(jax.random.key(0), x0.shape)))
    ab = d.alphas_cumprod[120]
    assert xt.mean() == pytest.approx(math.sqrt(ab) * 0.7, abs=0.02)
    assert xt.var() == pytest.approx(1 - ab, rel=0.04)
    mean, var = d.q_mean_variance(x0[:1], t[:1])
    assert float(mean[0, 0]) == pytest.approx(math.sqrt(ab) * 0.7, rel=1e-5)
    assert float(var[0, 0]) == pytest.approx(1 - ab, rel=1e-5)


def test_posterior_is_the_bayes_product_of_the_two_gaussians():
    """q(x_{t-1}|x_t,x_0) ∝ N(x_{t-1}; √ᾱ_{t-1} x_0, 1-ᾱ_{t-1}) N(x_t; √α_t x_{t-1}, β_t)."""
    d = GaussianDiffusion.from_schedule("linear", 1000)
    x0, xt = jnp.array([[0.3], [-0.8]]), jnp.array([[1.1], [0.2]])
    for step in (1, 10, 500, 999):
        t = jnp.array([step, step])
        mean, var, log_var = d.q_posterior_mean_variance(x0, xt, t)
        ab_prev, beta = d.alphas_cumprod[step - 1], d.betas[step]
        precision = 1 / (1 - ab_prev) + (1 - beta) / beta
        want_mean = (math.sqrt(ab_prev) * np.asarray(x0) / (1 - ab_prev)
                     + math.sqrt(1 - beta) * np.asarray(xt) / beta) / precision
        np.testing.assert_allclose(np.asarray(mean), want_mean, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(np.asarray(var)[:, 0], 1 / precision, rtol=1e-4)
        np.testing.assert_allclose(np.asarray(log_var)[:, 0], math.log(1 / precision), rtol=1e-4)


def test_parameterisations_round_trip_and_learned_range():
    d = GaussianDiffusion.from_schedule("linear", 100, parameterisation="v", variance="learned_range")
    k1, k2 = jax.random.split(jax.random.key(1))
    x0, noise = jax.random.normal(k1, (3, 4, 4, 2)), jax.random.normal(k2, (3, 4, 4, 2))
    t = jnp.array([0, 40, 99])
    xt = d.q_sample(x0, t, noise)
    np.testing.assert_allclose(d.x0_from_eps(xt, t, noise), x0, atol=2e-4)
    np.testing.assert_allclose(d.eps_from_x0(xt, t, x0), noise, atol=2e-3)
    np.testing.assert_allclose(d.predict_x0(xt, t, d.training_target(x0, t, noise)), x0, atol=1e-5)
    # learned σ: v = -1 gives log β̃_t, v = +1 gives log β_t.
    for value, table in ((-1.0, d.posterior_log_variance_clipped), (1.0, np.log(d.betas))):
        output = jnp.concatenate([jnp.zeros_like(xt), jnp.full_like(xt, value)], axis=-1)
        _, log_var, _ = d.p_mean_variance(output, xt, t, clip_denoised=False)
        np.testing.assert_allclose(np.asarray(log_var)[:, 0, 0, 0], table[np.asarray(t)], rtol=1e-5)


def test_continuous_noise_level_lies_between_steps():
    d = GaussianDiffusion.from_schedule("linear", 50)
    sqrt_gamma, t = schedules.sample_continuous_sqrt_alpha_bar(jax.random.key(0), d.alphas_cumprod, (4000,))
    prev = np.sqrt(np.append(1.0, d.alphas_cumprod))
    t, g = np.asarray(t), np.asarray(sqrt_gamma)
    assert t.min() == 1 and t.max() == 50
    assert np.all(g <= prev[t - 1] + 1e-6) and np.all(g >= prev[t] - 1e-6)


def _gaussian_data_model(base: GaussianDiffusion, mu: float, s: float):
    """The exact ε-predictor E[ε | x_t] for data x_0 ~ N(mu, s²)."""
    table = jnp.asarray(base.alphas_cumprod, jnp.float32)

    def model_fn(x, timesteps):
        ab = table[timesteps.astype(jnp.int32)][:, None, None, None]
        return jnp.sqrt(1 - ab) * (x - jnp.sqrt(ab) * mu) / (ab * s ** 2 + 1 - ab)

    return model_fn


@pytest.mark.parametrize("method", ["ddpm", "ddim"])
def test_samplers_recover_gaussian_data(method):
    """With the exact ε-predictor and all 1000 steps, samples have the data's mean and spread."""
    base = GaussianDiffusion.from_schedule("linear", 1000)
    d = base
    model_fn = _gaussian_data_model(base, 0.3, 0.4)
    x = np.asarray(samplers.sample(d, model_fn, (64, 8, 8, 1), jax.random.key(3), method=method,
                                   clip_denoised=False))
    assert x.mean() == pytest.approx(0.3, abs=0.02)
    assert x.std() == pytest.approx(0.4, rel=0.05)


def test_ddim_eta0_is_deterministic_and_eta1_is_not():
    base = GaussianDiffusion.from_schedule("linear", 1000)
    d = base.respaced("ddim20")
    model_fn = _gaussian_data_model(base, 0.0, 0.5)
    x_T = jax.random.normal(jax.random.key(0), (2, 4, 4, 1))
    a = samplers.ddim_sample(d, model_fn, x_T, jax.random.key(1), eta=0.0, clip_denoised=False)
    b = samplers.ddim_sample(d, model_fn, x_T, jax.random.key(2), eta=0.0, clip_denoised=False)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    c = samplers.ddim_sample(d, model_fn, x_T, jax.random.key(2), eta=1.0, clip_denoised=False)
    assert float(jnp.abs(a - c).max()) > 1e-2
    # For zero-mean Gaussian data each DDIM step is linear: x_{t'} = (√ᾱ'√ᾱ s² + √(1-ᾱ')√(1-ᾱ)) / V_t x_t,
    # V_t = ᾱ s² + 1 - ᾱ; the whole chain is the product of these factors.
    ab = d.alphas_cumprod
    ab_prev = d.alphas_cumprod_prev
    factors = (np.sqrt(ab_prev * ab) * 0.25 + np.sqrt((1 - ab_prev) * (1 - ab))) / (ab * 0.25 + 1 - ab)
    np.testing.assert_allclose(np.asarray(a), np.prod(factors) * np.asarray(x_T), rtol=1e-4, atol=1e-5)


def test_delta_data_is_reached_exactly_by_ddpm():
    base = GaussianDiffusion.from_schedule("linear", 1000)
    d = base.respaced("10")
    table = jnp.asarray(base.alphas_cumprod, jnp.float32)

    def model_fn(x, timesteps):  # data is the single point 0.25
        ab = table[timesteps.astype(jnp.int32)][:, None, None, None]
        return (x - jnp.sqrt(ab) * 0.25) / jnp.sqrt(1 - ab)

    x = samplers.sample(d, model_fn, (2, 4, 4, 3), jax.random.key(0), method="ddpm", clip_denoised=False)
    np.testing.assert_allclose(np.asarray(x), 0.25, atol=1e-4)
