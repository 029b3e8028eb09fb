"""jaxir.codec against CompressAI 1.2.8 (the `torch` extra) with random weights: GDN/IGDN, the entropy
bottleneck's likelihoods and aux loss, the Gaussian conditional's likelihoods, scale indexes, and the whole
mean-scale hyperprior forward (eval mode: rounded latents)."""
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_geometric")
pytestmark = pytest.mark.slow  # importing compressai pulls torch_geometric and transformers


@pytest.fixture(scope="module")
def compressai():
    # compressai imports torchvision.transforms only to list dataset transforms; the CPU torch build here has no
    # matching torchvision, so an empty module stands in (torch_geometric first: it probes for torchvision).
    import torch_geometric.transforms  # noqa: F401
    try:
        import torchvision.transforms  # noqa: F401
    except Exception:
        stub, transforms = types.ModuleType("torchvision"), types.ModuleType("torchvision.transforms")
        stub.transforms = transforms
        sys.modules["torchvision"], sys.modules["torchvision.transforms"] = stub, transforms
    return pytest.importorskip("compressai")


def _randomise(module, seed=0, convs=True):
    """Random non-default values of the entropy and GDN parameters (and convolutions: `convs`)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("quantiles"):
                p.add_(torch.randn(p.shape, generator=gen) * 0.3)
            elif name.endswith(("beta", "gamma")):
                p.copy_(torch.rand(p.shape, generator=gen) * 0.5 + 0.1)
            elif convs or name.startswith("entropy_bottleneck"):
                p.add_(torch.randn(p.shape, generator=gen) * 0.2)
    return module


def _nhwc(t):
    return np.asarray(t.detach().numpy()).transpose(0, 2, 3, 1)


def _nchw(a):
    return torch.from_numpy(np.ascontiguousarray(np.asarray(a).transpose(0, 3, 1, 2)))


@pytest.mark.parametrize("inverse", [False, True])
def test_gdn_matches(compressai, inverse):
    from compressai.layers import GDN as TorchGDN

    from jaxir.codec.entropy import GDN

    ref = _randomise(TorchGDN(6, inverse=inverse).eval(), seed=int(inverse))
    x = np.random.default_rng(0).normal(size=(2, 7, 5, 6)).astype(np.float32)
    params = {"beta": jnp.asarray(ref.beta.detach().numpy()), "gamma": jnp.asarray(ref.gamma.detach().numpy())}
    ours = GDN(inverse=inverse).apply({"params": params}, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(ours), _nhwc(ref(_nchw(x))), rtol=1e-5, atol=1e-6)
    # the fresh parameters are CompressAI's initial ones
    fresh = GDN(inverse=inverse).init(jax.random.key(0), jnp.asarray(x))["params"]
    init = TorchGDN(6, inverse=inverse)
    np.testing.assert_allclose(np.asarray(fresh["gamma"]), init.gamma.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(fresh["beta"]), init.beta.detach().numpy(), rtol=1e-6)


def test_entropy_bottleneck_matches(compressai):
    from compressai.entropy_models import EntropyBottleneck as TorchEB

    from jaxir.codec.entropy import EntropyBottleneck

    ref = _randomise(TorchEB(5).eval())
    sd = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    params = {"quantiles": sd["quantiles"]}
    for k in range(5):
        params[f"matrix{k}"], params[f"bias{k}"] = sd[f"matrices.{k}"], sd[f"biases.{k}"]
        if k < 4:
            params[f"factor{k}"] = sd[f"factors.{k}"]
    params = jax.tree.map(jnp.asarray, params)
    z = (np.random.default_rng(1).normal(size=(2, 4, 3, 5)) * 4).astype(np.float32)
    z_hat, lik = EntropyBottleneck(5).apply({"params": params}, jnp.asarray(z))
    ref_hat, ref_lik = ref(_nchw(z), training=False)
    np.testing.assert_allclose(np.asarray(z_hat), _nhwc(ref_hat), atol=1e-6)
    np.testing.assert_allclose(np.asarray(lik), _nhwc(ref_lik), rtol=1e-4, atol=1e-7)
    aux = EntropyBottleneck(5).apply({"params": params}, method="aux_loss")
    np.testing.assert_allclose(float(aux), float(ref.loss().detach()), rtol=1e-5)
    assert np.abs(np.asarray(z_hat) - z).max() > 0.05  # rounding happened around non-integer medians


def test_gaussian_conditional_matches(compressai):
    from compressai.entropy_models import GaussianConditional as TorchGC
    from compressai.models.google import get_scale_table

    from jaxir.codec.entropy import GaussianConditional, build_indexes, scale_table

    rng = np.random.default_rng(2)
    y = (rng.normal(size=(2, 4, 4, 6)) * 3).astype(np.float32)
    scales = np.abs(rng.normal(size=y.shape)).astype(np.float32) * 4
    means = rng.normal(size=y.shape).astype(np.float32)
    ref = TorchGC(None).eval()
    ref_hat, ref_lik = ref(_nchw(y), _nchw(scales), means=_nchw(means), training=False)
    y_hat, lik = GaussianConditional().apply({}, jnp.asarray(y), jnp.asarray(scales), jnp.asarray(means))
    np.testing.assert_allclose(np.asarray(y_hat), _nhwc(ref_hat), atol=1e-6)
    np.testing.assert_allclose(np.asarray(lik), _nhwc(ref_lik), rtol=1e-4, atol=1e-7)
    table = scale_table()
    np.testing.assert_allclose(table, get_scale_table().numpy(), rtol=1e-6)
    ref.update_scale_table(get_scale_table())
    np.testing.assert_array_equal(build_indexes(scales, table), _nhwc(ref.build_indexes(_nchw(scales))))


def test_mean_scale_hyperprior_forward_matches(compressai):
    from compressai.models.google import MeanScaleHyperprior as TorchMSH

    from jaxir.codec.hyperprior import MeanScaleHyperprior, params_from_compressai

    torch.manual_seed(0)
    ref = _randomise(TorchMSH(8, 12).eval(), seed=3, convs=False)  # default convs keep x̂ in range
    x = np.random.default_rng(3).uniform(size=(1, 64, 64, 3)).astype(np.float32)
    model = MeanScaleHyperprior(N=8, M=12)
    params = params_from_compressai({k: v.detach().numpy() for k, v in ref.state_dict().items()}, model,
                                    jnp.asarray(x))
    out = model.apply({"params": params}, jnp.asarray(x), method="forward")
    with torch.no_grad():
        ref_out = ref(_nchw(x))
    np.testing.assert_allclose(np.asarray(out["likelihoods"]["z"]), _nhwc(ref_out["likelihoods"]["z"]),
                               rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(np.asarray(out["likelihoods"]["y"]), _nhwc(ref_out["likelihoods"]["y"]),
                               rtol=1e-3, atol=1e-6)
    ref_x = _nhwc(ref_out["x_hat"])
    np.testing.assert_allclose(np.asarray(out["x_hat"]), ref_x, rtol=1e-4, atol=1e-4 * np.abs(ref_x).max())
    assert np.abs(ref_x).max() > 1e-3
