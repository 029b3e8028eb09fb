import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxir import losses


def _arr(values, shape):
    return jnp.asarray(np.asarray(values, np.float32).reshape(shape))


# --------------------------------------------------------------------------
# Individual terms against hand-computed values
# --------------------------------------------------------------------------
def test_l1_l2_hand_values():
    pred = _arr([0.0, 0.5, 1.0, 0.25], (1, 2, 2, 1))
    target = _arr([0.5, 0.5, 0.0, 0.0], (1, 2, 2, 1))
    # |d| = 0.5, 0, 1, 0.25
    assert float(losses.l1_loss(pred, target)) == pytest.approx(1.75 / 4)
    assert float(losses.l2_loss(pred, target)) == pytest.approx(
        (0.25 + 0 + 1 + 0.0625) / 4)


def test_charbonnier_hand_values():
    pred = _arr([0.0, 3e-3, -4e-3], (1, 1, 3, 1))
    target = jnp.zeros((1, 1, 3, 1))
    expected = (math.sqrt(1e-6) + math.sqrt(9e-6 + 1e-6)
                + math.sqrt(16e-6 + 1e-6)) / 3
    assert float(losses.charbonnier_loss(pred, target)) == pytest.approx(
        expected, rel=1e-5)
    # eps is configurable; with eps -> 0 it tends to L1.
    assert float(losses.charbonnier_loss(pred, target, eps=1e-8)) == \
        pytest.approx(7e-3 / 3, rel=1e-4)


def test_psnr_loss_hand_values():
    target = jnp.zeros((2, 2, 2, 1))
    pred = jnp.concatenate([jnp.full((1, 2, 2, 1), 0.1),
                            jnp.full((1, 2, 2, 1), 0.2)])
    # mse per image 0.01 and 0.04
    expected = 10 / math.log(10) * (math.log(0.01 + 1e-8)
                                    + math.log(0.04 + 1e-8)) / 2
    assert float(losses.psnr_loss(pred, target)) == pytest.approx(expected,
                                                                  rel=1e-5)
    # It is minus the mean PSNR of [0, 1] images (20 and ~13.98 dB here).
    assert float(losses.psnr_loss(pred, target)) == pytest.approx(
        -(20 + 10 * math.log10(1 / 0.04)) / 2, rel=1e-5)


def test_fft_loss_hand_values():
    # One row [1, 1, 0, 0]: its DFT is [2, 1-1j, 0, 1+1j].
    pred = _arr([1, 1, 0, 0], (1, 1, 4, 1))
    target = jnp.zeros((1, 1, 4, 1))
    # full spectrum: mean|re| = (2+1+0+1)/4 = 1, mean|im| = (0+1+0+1)/4 = 0.5
    assert float(losses.fft_loss(pred, target)) == pytest.approx(0.75)
    # rfft2 half spectrum [2, 1-1j, 0]: mean|re| = 1, mean|im| = 1/3
    assert float(losses.fft_loss(pred, target, onesided=True)) == \
        pytest.approx((1 + 1 / 3) / 2)


def test_fft_loss_transforms_each_channel_over_h_w():
    # A 2x2 delta in channel 1 only: its DFT is all ones in that channel.
    pred = jnp.zeros((1, 2, 2, 2)).at[0, 0, 0, 1].set(1.0)
    target = jnp.zeros((1, 2, 2, 2))
    # channel 0 contributes zeros: mean|re| = 4 / 8, mean|im| = 0
    assert float(losses.fft_loss(pred, target)) == pytest.approx(0.25)


def test_fft_loss_matches_convir_pytorch_code():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    pred = rng.random((2, 6, 10, 3)).astype(np.float32)
    target = rng.random((2, 6, 10, 3)).astype(np.float32)

    def convir_fft(x):  # ConvIR train.py: fft2 over (H, W), stack re/im
        spec = torch.fft.fft2(torch.from_numpy(x).permute(0, 3, 1, 2),
                              dim=(-2, -1))
        return torch.stack((spec.real, spec.imag), -1)

    expected = torch.nn.functional.l1_loss(convir_fft(pred),
                                           convir_fft(target)).item()
    assert float(losses.fft_loss(pred, target)) == pytest.approx(expected,
                                                                 rel=1e-5)


# --------------------------------------------------------------------------
# Resizing for multi-scale outputs
# --------------------------------------------------------------------------
@pytest.mark.parametrize("in_hw,out_hw", [((16, 16), (8, 8)),
                                          ((16, 16), (4, 4)),
                                          ((15, 17), (7, 8)),
                                          ((6, 10), (12, 20))])
def test_resize_bilinear_matches_pytorch_interpolate(in_hw, out_hw):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).random((2, *in_hw, 3)).astype(np.float32)
    ours = losses.resize_bilinear(jnp.asarray(x), *out_hw)
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(x).permute(0, 3, 1, 2), size=out_hw, mode="bilinear",
        align_corners=False).permute(0, 2, 3, 1).numpy()
    assert ours.shape == (2, *out_hw, 3)
    np.testing.assert_allclose(np.asarray(ours), ref, atol=1e-6)


def test_resize_bilinear_halving_averages_pixel_pairs():
    # Half-pixel centres without antialiasing: each output is the mean of a
    # 2x2 block when halving.
    x = _arr(np.arange(16), (1, 4, 4, 1))
    out = np.asarray(losses.resize_bilinear(x, 2, 2))[0, ..., 0]
    np.testing.assert_allclose(out, [[2.5, 4.5], [10.5, 12.5]])


# --------------------------------------------------------------------------
# build_loss
# --------------------------------------------------------------------------
def test_build_loss_single_output_weights_terms():
    rng = np.random.default_rng(2)
    pred = jnp.asarray(rng.random((2, 8, 8, 3)), jnp.float32)
    target = jnp.asarray(rng.random((2, 8, 8, 3)), jnp.float32)
    fn = losses.build_loss([{"name": "l1", "weight": 2.0},
                            {"name": "charbonnier", "eps": 1e-2},
                            {"name": "fft", "weight": 0.1}])
    total, terms = fn(pred, target)
    assert set(terms) == {"l1", "charbonnier", "fft"}
    l1 = losses.l1_loss(pred, target)
    ch = losses.charbonnier_loss(pred, target, eps=1e-2)
    ff = losses.fft_loss(pred, target)
    np.testing.assert_allclose(float(terms["l1"]), float(l1), rtol=1e-6)
    np.testing.assert_allclose(float(terms["charbonnier"]), float(ch),
                               rtol=1e-6)
    np.testing.assert_allclose(float(total), float(2 * l1 + ch + 0.1 * ff),
                               rtol=1e-6)


def test_build_loss_multiscale_matches_mimo_unet_recipe():
    """MIMO-UNet/ConvIR: L1 and 0.1 * FFT summed over 3 outputs (coarse to
    fine), the target downscaled with F.interpolate(scale_factor=0.5/0.25,
    mode='bilinear')."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    target = rng.random((2, 16, 16, 3)).astype(np.float32)
    outputs = [rng.random((2, s, s, 3)).astype(np.float32) for s in (4, 8, 16)]

    fn = losses.build_loss([{"name": "l1", "weight": 1.0},
                            {"name": "fft", "weight": 0.1}])
    total, terms = jax.jit(fn)([jnp.asarray(o) for o in outputs],
                               jnp.asarray(target))

    nchw = lambda x: torch.from_numpy(x).permute(0, 3, 1, 2)
    label = nchw(target)
    labels = [torch.nn.functional.interpolate(label, scale_factor=0.25,
                                              mode="bilinear"),
              torch.nn.functional.interpolate(label, scale_factor=0.5,
                                              mode="bilinear"),
              label]
    preds = [nchw(o) for o in outputs]
    l1 = sum(torch.nn.functional.l1_loss(p, t) for p, t in zip(preds, labels))

    def spec(x):
        s = torch.fft.fft2(x, dim=(-2, -1))
        return torch.stack((s.real, s.imag), -1)

    ff = sum(torch.nn.functional.l1_loss(spec(p), spec(t))
             for p, t in zip(preds, labels))
    assert float(terms["l1"]) == pytest.approx(l1.item(), rel=1e-5)
    assert float(terms["fft"]) == pytest.approx(ff.item(), rel=1e-5)
    assert float(total) == pytest.approx((l1 + 0.1 * ff).item(), rel=1e-5)


def test_build_loss_nearest_multiscale_takes_every_fourth_pixel():
    target = jnp.arange(2 * 8 * 8 * 3, dtype=jnp.float32).reshape(2, 8, 8, 3)
    fn = losses.build_loss([{"name": "l1"}], multiscale="nearest")
    total, _ = fn((target[:, ::4, ::4], target), target)  # F.interpolate(target, scale_factor=0.25)
    assert float(total) == 0.0
    total, _ = fn((target[:, 1::4, 1::4], target), target)
    assert float(total) > 0


def test_build_loss_resizes_target_to_each_output_shape(monkeypatch):
    seen = []
    original = losses.resize_bilinear

    def spy(x, h, w):
        out = original(x, h, w)
        seen.append(out.shape)
        return out

    monkeypatch.setattr(losses, "resize_bilinear", spy)
    fn = losses.build_loss([{"name": "l2"}])
    target = jnp.ones((2, 32, 24, 3))
    outputs = (jnp.ones((2, 8, 6, 3)), jnp.ones((2, 16, 12, 3)), target)
    total, terms = fn(outputs, target)
    assert seen == [(2, 8, 6, 3), (2, 16, 12, 3), (2, 32, 24, 3)]
    # A constant target stays constant when resized: zero loss at every scale.
    assert float(total) == pytest.approx(0.0, abs=1e-7)


def test_build_loss_psnr_term_and_gradient():
    rng = np.random.default_rng(4)
    pred = jnp.asarray(rng.random((2, 8, 8, 3)), jnp.float32)
    target = jnp.asarray(rng.random((2, 8, 8, 3)), jnp.float32)
    fn = losses.build_loss([{"name": "psnr", "weight": 0.5}])
    total, terms = fn(pred, target)
    assert float(total) == pytest.approx(
        0.5 * float(losses.psnr_loss(pred, target)), rel=1e-6)
    grad = jax.grad(lambda p: fn(p, target)[0])(pred)
    assert np.all(np.isfinite(np.asarray(grad)))
    assert float(jnp.abs(grad).max()) > 0


def test_build_loss_lpips_term():
    from jaxir.metrics.lpips import LPIPS

    rng = np.random.default_rng(5)
    target = jnp.asarray(rng.random((1, 40, 40, 3)), jnp.float32)
    pred = jnp.clip(target + 0.1 * jnp.asarray(rng.normal(size=target.shape),
                                               jnp.float32), 0, 1)
    fn = losses.build_loss([{"name": "lpips", "weight": 0.2, "net": "alex"}])
    total, terms = fn(pred, target)
    expected = float(LPIPS("alex").loss(pred, target))
    assert expected > 0
    assert float(terms["lpips"]) == pytest.approx(expected, rel=1e-6)
    assert float(total) == pytest.approx(0.2 * expected, rel=1e-6)


def test_build_loss_bfloat16_outputs_are_scored_in_float32():
    target = jnp.linspace(0, 1, 48, dtype=jnp.float32).reshape(1, 4, 4, 3)
    pred = (target + 0.01).astype(jnp.bfloat16)
    total, _ = losses.build_loss([{"name": "l2"}])(pred, target)
    assert total.dtype == jnp.float32


def test_build_loss_config_errors():
    with pytest.raises(ValueError, match="unknown loss term"):
        losses.build_loss([{"name": "ssim"}])
    with pytest.raises(ValueError, match="twice"):
        losses.build_loss([{"name": "l1"}, {"name": "l1", "weight": 2}])
    with pytest.raises(ValueError, match="unknown options"):
        losses.build_loss([{"name": "l1", "eps": 1e-3}])
    with pytest.raises(ValueError, match="multiscale"):
        losses.build_loss([{"name": "l1"}], multiscale="bicubic")
    with pytest.raises(ValueError, match="at least one"):
        losses.build_loss([])


def test_terms_select_outputs_and_take_labels():
    from jaxir.losses import build_loss

    target = jnp.zeros((1, 4, 4, 3))
    outputs = (jnp.full((1, 2, 2, 3), 1.0), jnp.full((1, 4, 4, 3), 2.0), jnp.full((1, 4, 4, 3), 3.0))
    fn = build_loss([{"name": "l1", "outputs": [-1]}, {"name": "l1", "label": "aux", "weight": 0.5, "outputs": [1]}])
    total, values = fn(outputs, target)
    assert float(values["l1"]) == 3.0 and float(values["aux"]) == 2.0
    assert float(total) == 3.0 + 0.5 * 2.0
    with pytest.raises(ValueError, match="selects output 5"):
        build_loss([{"name": "l1", "outputs": [5]}])(outputs, target)
    with pytest.raises(ValueError, match="given twice"):
        build_loss([{"name": "l1"}, {"name": "l1"}])


def test_fft_modulus_is_torch_l1_on_complex_spectra():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    pred, target = rng.random((2, 2, 6, 5, 3), dtype=np.float32)
    want = torch.nn.L1Loss()(torch.fft.fft2(torch.from_numpy(pred).permute(0, 3, 1, 2)),
                             torch.fft.fft2(torch.from_numpy(target).permute(0, 3, 1, 2)))
    np.testing.assert_allclose(float(losses.fft_loss(pred, target, modulus=True)), float(want), rtol=1e-5)


def test_edge_loss_matches_mprnet_formulation():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(1)
    pred, target = rng.random((2, 2, 9, 10, 3), dtype=np.float32)
    k = torch.tensor([[0.05, 0.25, 0.4, 0.25, 0.05]])
    kernel = (k.t() @ k).unsqueeze(0).repeat(3, 1, 1, 1)

    def gauss(img):
        return F.conv2d(F.pad(img, (2, 2, 2, 2), mode="replicate"), kernel, groups=3)

    def laplacian(img):
        filtered = gauss(img)
        up = torch.zeros_like(filtered)
        up[:, :, ::2, ::2] = filtered[:, :, ::2, ::2] * 4
        return img - gauss(up)

    a, b = (laplacian(torch.from_numpy(v).permute(0, 3, 1, 2)) for v in (pred, target))
    want = torch.mean(torch.sqrt((a - b) ** 2 + 1e-6))
    np.testing.assert_allclose(float(losses.edge_loss(pred, target)), float(want), rtol=1e-5)
    assert float(losses.edge_loss(target, target)) == pytest.approx(1e-3, rel=1e-4)


def test_vgg_perceptual_matches_the_official_loss_network():
    """DehazeFormer/MPMF-Net LossNetwork on vgg16.features[:16] (torch), with the same VGG16 weights."""
    torch = pytest.importorskip("torch")
    from jaxir.metrics.lpips import _load_params

    vgg = _load_params("vgg")["VGG16_0"]
    layers, cin = [], 3
    for index in range(7):
        kernel = vgg[f"Conv_{index}"]["kernel"]
        conv = torch.nn.Conv2d(cin, kernel.shape[-1], 3, padding=1)
        conv.weight.data = torch.from_numpy(np.ascontiguousarray(np.transpose(kernel, (3, 2, 0, 1))))
        conv.bias.data = torch.from_numpy(np.asarray(vgg[f"Conv_{index}"]["bias"]))
        layers += [conv, torch.nn.ReLU()]
        if index in (1, 3):
            layers.append(torch.nn.MaxPool2d(2, 2))
        cin = kernel.shape[-1]
    features = torch.nn.Sequential(*layers)  # indices 3, 8, 15 are relu1_2, relu2_2, relu3_3

    def official(pred, gt):
        def outs(x):
            found = []
            for name, module in features._modules.items():
                x = module(x)
                if name in ("3", "8", "15"):
                    found.append(x)
            return found
        return sum(torch.nn.functional.mse_loss(a, b) for a, b in zip(outs(pred), outs(gt))) / 3

    rng = np.random.default_rng(0)
    pred, gt = (rng.uniform(size=(2, 16, 16, 3)).astype(np.float32) for _ in range(2))
    want = official(torch.from_numpy(pred.transpose(0, 3, 1, 2)), torch.from_numpy(gt.transpose(0, 3, 1, 2)))
    fn = losses.build_loss([{"name": "vgg_perceptual"}])
    total, terms = fn(jnp.asarray(pred), jnp.asarray(gt))
    np.testing.assert_allclose(float(terms["vgg_perceptual"]), want.item(), rtol=1e-4)
    assert float(fn(jnp.asarray(gt), jnp.asarray(gt))[0]) == 0.0
