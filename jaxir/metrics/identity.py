"""Face identity embeddings and distances: insightface's arcface_torch `IResNet` (Deng et al., CVPR 2019;
deepinsight/insightface `recognition/arcface_torch/backbones/iresnet.py`, commit 04a433f) in Flax, with weights
converted from a path (arcface_torch's released `backbone.pth` state dicts convert by the generic rule).

IResNet: 3x3 conv 64, BN, PReLU; four stages of IBasicBlocks (BN, 3x3 conv, BN, PReLU, 3x3 conv with the stage's
stride 2 on the first block, BN; 1x1 conv + BN shortcut on the first block), BN, flatten in (C, H, W) order,
dropout, Linear to the embedding, BatchNorm1d. Inputs 112² in [-1, 1] ((x − 0.5) / 0.5); iresnet50 is layers
(3, 4, 14, 3), iresnet100 (3, 13, 30, 3). `widths` and the input size are parameters so tests run tiny.

`identity_distance` is the facial identity loss of OSDFace (Wang et al., CVPR 2025): 1 − cos(φ(x̂), φ(x)) of the
embeddings of the restored and ground-truth faces, each resized bilinearly to the network's input size.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxir.models.blocks import BatchNorm2d, Conv2d, Linear, PReLU, interpolate_bilinear

ARCHS = {"r18": (2, 2, 2, 2), "r34": (3, 4, 6, 3), "r50": (3, 4, 14, 3), "r100": (3, 13, 30, 3)}


class IBasicBlock(nn.Module):
    planes: int
    stride: int = 1
    shortcut: bool = False

    @nn.compact
    def __call__(self, x):
        out = BatchNorm2d(name="bn1")(x)
        out = Conv2d(self.planes, 3, padding=1, use_bias=False, name="conv1")(out)
        out = PReLU(self.planes, name="prelu")(BatchNorm2d(name="bn2")(out))
        out = Conv2d(self.planes, 3, stride=self.stride, padding=1, use_bias=False, name="conv2")(out)
        out = BatchNorm2d(name="bn3")(out)
        if self.shortcut:
            x = Conv2d(self.planes, 1, stride=self.stride, use_bias=False, name="downsample_0")(x)
            x = BatchNorm2d(name="downsample_1")(x)
        return out + x


class IResNet(nn.Module):
    layers: Sequence[int] = ARCHS["r50"]
    widths: Sequence[int] = (64, 128, 256, 512)
    num_features: int = 512
    input_size: int = 112

    @nn.compact
    def __call__(self, x):
        """NHWC faces in [-1, 1] at input_size² -> (N, num_features) embeddings (eval mode)."""
        x = Conv2d(self.widths[0], 3, padding=1, use_bias=False, name="conv1")(x.astype(jnp.float32))
        x = PReLU(self.widths[0], name="prelu")(BatchNorm2d(name="bn1")(x))
        for stage, (planes, blocks) in enumerate(zip(self.widths, self.layers), start=1):
            for b in range(blocks):
                x = IBasicBlock(planes, 2 if b == 0 else 1, b == 0, name=f"layer{stage}_{b}")(x)
        x = BatchNorm2d(name="bn2")(x)
        x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)  # torch.flatten of NCHW
        x = Linear(self.num_features, name="fc")(x)
        return BatchNorm2d(name="features")(x[:, None, None, :])[:, 0, 0, :]  # BatchNorm1d, eval mode


def load(path, arch: str = "r50", **kwargs) -> tuple[IResNet, dict]:
    """An arcface_torch backbone state dict (`backbone.pth`) -> (module, variables)."""
    from jaxir.convert.state_dict import convert_state_dict
    from jaxir.convert.torch_io import load_state_dict

    module = IResNet(ARCHS[arch] if arch in ARCHS else tuple(kwargs.pop("layers")), **kwargs)
    size = module.input_size
    return module, convert_state_dict(load_state_dict(path), module, jnp.zeros((1, size, size, 3)))


def embed(module: IResNet, variables, images01):
    """NHWC [0, 1] faces -> embeddings (resized to the network's input size, normalised to [-1, 1])."""
    x = interpolate_bilinear(jnp.asarray(images01, jnp.float32), (module.input_size, module.input_size))
    return module.apply(variables, 2.0 * x - 1.0)


def identity_distance(module: IResNet, variables, pred01, target01):
    """(N,) 1 − cosine similarity of the identity embeddings."""
    a, b = embed(module, variables, pred01), embed(module, variables, target01)
    cos = jnp.sum(a * b, -1) / (jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(b, axis=-1) + 1e-8)
    return 1.0 - cos
