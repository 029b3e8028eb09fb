"""Shared layers reproduce PyTorch exactly (the usual porting traps, written once)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxir.models import blocks

torch = pytest.importorskip("torch")
F = torch.nn.functional


def to_nchw(x):
    return torch.from_numpy(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))


def to_nhwc(t):
    return np.transpose(t.detach().numpy(), (0, 2, 3, 1))


rng = np.random.default_rng(0)


def test_pixel_shuffle_and_unshuffle_match_torch():
    x = rng.random((2, 5, 6, 12), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(blocks.pixel_shuffle(x, 2)), to_nhwc(F.pixel_shuffle(to_nchw(x), 2)))
    y = rng.random((2, 6, 4, 3), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(blocks.pixel_unshuffle(y, 2)), to_nhwc(F.pixel_unshuffle(to_nchw(y), 2)))


@pytest.mark.parametrize("groups,dilation,padding_mode,stride", [(1, 1, "zeros", 1), (4, 2, "reflect", 1),
                                                                 (8, 1, "zeros", 2), (2, 3, "replicate", 1),
                                                                 (8, 2, "reflect", 1), (8, 1, "zeros", 1)])
def test_conv2d_matches_torch(groups, dilation, padding_mode, stride):
    conv = torch.nn.Conv2d(8, 8, 3, stride=stride, padding=dilation, dilation=dilation, groups=groups,
                           padding_mode=padding_mode)
    x = rng.random((1, 11, 10, 8), dtype=np.float32)
    layer = blocks.Conv2d(8, 3, stride=stride, padding=dilation, dilation=dilation, groups=groups,
                          padding_mode=padding_mode)
    params = {"params": {"kernel": blocks.oihw_to_hwio(conv.weight.detach().numpy()),
                         "bias": conv.bias.detach().numpy()}}
    np.testing.assert_allclose(np.asarray(layer.apply(params, x)), to_nhwc(conv(to_nchw(x))), atol=1e-5)


@pytest.mark.parametrize("stride,padding,output_padding", [(2, 1, 1), (2, 0, 0), (3, 1, 2)])
def test_conv_transpose_matches_torch(stride, padding, output_padding):
    conv = torch.nn.ConvTranspose2d(4, 6, 4 if stride == 2 else 3, stride=stride, padding=padding,
                                    output_padding=output_padding)
    x = rng.random((1, 7, 5, 4), dtype=np.float32)
    layer = blocks.ConvTranspose2d(6, conv.kernel_size, stride=stride, padding=padding, output_padding=output_padding)
    params = {"params": {"kernel": blocks.iohw_to_hwio(conv.weight.detach().numpy()),
                         "bias": conv.bias.detach().numpy()}}
    np.testing.assert_allclose(np.asarray(layer.apply(params, x)), to_nhwc(conv(to_nchw(x))), atol=1e-5)


@pytest.mark.parametrize("size", [(16, 12), (5, 7), (9, 9)])
def test_bilinear_matches_torch(size):
    x = rng.random((1, 9, 10, 3), dtype=np.float32)
    want = to_nhwc(F.interpolate(to_nchw(x), size=size, mode="bilinear", align_corners=False))
    np.testing.assert_allclose(np.asarray(blocks.interpolate_bilinear(x, size)), want, atol=1e-6)


@pytest.mark.parametrize("scale", [0.5, 0.25, 2.0])
def test_nearest_matches_torch(scale):
    x = rng.random((1, 16, 12, 3), dtype=np.float32)
    want = to_nhwc(F.interpolate(to_nchw(x), scale_factor=scale, mode="nearest"))
    np.testing.assert_array_equal(np.asarray(blocks.interpolate_nearest(x, scale)), want)


def test_batchnorm_train_and_eval_match_torch():
    bn = torch.nn.BatchNorm2d(3)
    x = rng.random((4, 5, 5, 3), dtype=np.float32) * 3
    layer = blocks.BatchNorm2d()
    variables = layer.init(jax.random.key(0), x)
    out, state = layer.apply(variables, x, train=True, mutable=["batch_stats"])
    bn.train()
    np.testing.assert_allclose(np.asarray(out), to_nhwc(bn(to_nchw(x))), atol=1e-5)
    np.testing.assert_allclose(np.asarray(state["batch_stats"]["mean"]), bn.running_mean.numpy(), atol=1e-6)
    np.testing.assert_allclose(np.asarray(state["batch_stats"]["var"]), bn.running_var.numpy(), atol=1e-6)
    bn.eval()
    out_eval = layer.apply({"params": variables["params"], **state}, x, train=False)
    np.testing.assert_allclose(np.asarray(out_eval), to_nhwc(bn(to_nchw(x))), atol=1e-5)


def test_layernorm_variants():
    x = rng.random((2, 3, 3, 6), dtype=np.float32)
    ln = torch.nn.LayerNorm(6, eps=1e-5)
    layer = blocks.LayerNorm(epsilon=1e-5)
    params = {"params": {"scale": ln.weight.detach().numpy(), "bias": ln.bias.detach().numpy()}}
    np.testing.assert_allclose(np.asarray(layer.apply(params, x)), ln(torch.from_numpy(x)).detach().numpy(), atol=1e-5)
    bias_free = blocks.LayerNorm(epsilon=1e-5, bias_free=True).apply({"params": {"scale": np.ones(6, np.float32)}}, x)
    want = x / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(np.asarray(bias_free), want, atol=1e-5)


def test_gelu_is_exact_erf_form():
    x = np.linspace(-4, 4, 101, dtype=np.float32)
    np.testing.assert_allclose(np.asarray(blocks.gelu(x)), F.gelu(torch.from_numpy(x)).numpy(), atol=1e-6)


@pytest.mark.parametrize("pad,dilation", [(((1, 1), (1, 1)), (1, 1)), (((2, 2), (2, 2)), (2, 2)),
                                          (((1, 0), (2, 1)), (1, 2))])
def test_cpu_depthwise_path_has_the_native_gradients(pad, dilation):
    """The shifted multiply-add depthwise conv (CPU fast path) and its custom backward equal XLA's conv."""
    x = jnp.asarray(rng.random((2, 9, 11, 5)), jnp.float32)
    k = jnp.asarray(rng.random((3, 3, 1, 5)), jnp.float32)

    def native(x, k):
        return jax.lax.conv_general_dilated(x, k, (1, 1), pad, rhs_dilation=dilation, feature_group_count=5,
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"), precision="highest")

    def shifted(x, k):
        return blocks._depthwise_by_shifts(x, k, pad, dilation)

    np.testing.assert_allclose(shifted(x, k), native(x, k), atol=1e-5)
    want = jax.grad(lambda x, k: (native(x, k) ** 2).sum(), argnums=(0, 1))(x, k)
    got = jax.grad(lambda x, k: (shifted(x, k) ** 2).sum(), argnums=(0, 1))(x, k)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)
