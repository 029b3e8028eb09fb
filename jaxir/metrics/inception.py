"""The FID Inception-v3 of pytorch-fid (mseitzer/pytorch-fid `src/pytorch_fid/inception.py`,
`fid_inception_v3` + `InceptionV3`), the network torch-fidelity and most papers' FID/KID use.

torchvision's Inception3 layout with the TensorFlow-FID patches: the average pools of
the A/C/E blocks exclude padding (`count_include_pad=False`) and the last E block
max-pools. Submodules carry the official attribute names (`Mixed_5b/branch1x1/conv`),
so the released `pt_inception-2015-12-05-6726825d.pth` converts by the generic rule
(`jaxir convert ... --model fid_inception`); weights cannot be downloaded here, so
`load_fid_inception(path)` takes the user's copy. Input NHWC in [0, 1]; output the
2048-d pool features (block 3), optionally the 64/192/768-d maps of blocks 0-2.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxir import registry
from jaxir.convert.state_dict import ConvertHooks
from jaxir.models.blocks import BatchNorm2d, Conv2d, interpolate_bilinear


class BasicConv2d(nn.Module):
    """conv (no bias) -> BatchNorm(eps 1e-3) -> ReLU, torchvision's BasicConv2d."""

    features: int
    kernel_size: int | tuple = 1
    stride: int = 1
    padding: int | tuple = 0

    @nn.compact
    def __call__(self, x):
        x = Conv2d(self.features, self.kernel_size, self.stride, self.padding, use_bias=False, name="conv")(x)
        return nn.relu(BatchNorm2d(epsilon=1e-3, name="bn")(x, train=False))


def _max_pool(x, window=3, stride=2, padding=0):
    if padding:
        x = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)), constant_values=-jnp.inf)
    return nn.max_pool(x, (window, window), strides=(stride, stride), padding="VALID")


def _avg_pool_exclude_pad(x):
    """3x3, stride 1, padding 1, count_include_pad=False."""
    pad = ((0, 0), (1, 1), (1, 1), (0, 0))
    total = nn.pool(jnp.pad(x, pad), 0.0, jax.lax.add, (3, 3), (1, 1), "VALID")
    count = nn.pool(jnp.pad(jnp.ones_like(x[..., :1]), pad), 0.0, jax.lax.add, (3, 3), (1, 1), "VALID")
    return total / count


class InceptionA(nn.Module):
    pool_features: int

    @nn.compact
    def __call__(self, x):
        b1 = BasicConv2d(64, name="branch1x1")(x)
        b5 = BasicConv2d(64, 5, padding=2, name="branch5x5_2")(BasicConv2d(48, name="branch5x5_1")(x))
        b3 = BasicConv2d(64, name="branch3x3dbl_1")(x)
        b3 = BasicConv2d(96, 3, padding=1, name="branch3x3dbl_3")(BasicConv2d(96, 3, padding=1, name="branch3x3dbl_2")(b3))
        bp = BasicConv2d(self.pool_features, name="branch_pool")(_avg_pool_exclude_pad(x))
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
    @nn.compact
    def __call__(self, x):
        b3 = BasicConv2d(384, 3, stride=2, name="branch3x3")(x)
        d = BasicConv2d(96, 3, padding=1, name="branch3x3dbl_2")(BasicConv2d(64, name="branch3x3dbl_1")(x))
        d = BasicConv2d(96, 3, stride=2, name="branch3x3dbl_3")(d)
        return jnp.concatenate([b3, d, _max_pool(x)], axis=-1)


class InceptionC(nn.Module):
    channels_7x7: int

    @nn.compact
    def __call__(self, x):
        c = self.channels_7x7
        row, col = dict(kernel_size=(1, 7), padding=(0, 3)), dict(kernel_size=(7, 1), padding=(3, 0))
        b1 = BasicConv2d(192, name="branch1x1")(x)
        b7 = BasicConv2d(c, name="branch7x7_1")(x)
        b7 = BasicConv2d(192, **col, name="branch7x7_3")(BasicConv2d(c, **row, name="branch7x7_2")(b7))
        d = BasicConv2d(c, name="branch7x7dbl_1")(x)
        d = BasicConv2d(c, **row, name="branch7x7dbl_3")(BasicConv2d(c, **col, name="branch7x7dbl_2")(d))
        d = BasicConv2d(192, **row, name="branch7x7dbl_5")(BasicConv2d(c, **col, name="branch7x7dbl_4")(d))
        bp = BasicConv2d(192, name="branch_pool")(_avg_pool_exclude_pad(x))
        return jnp.concatenate([b1, b7, d, bp], axis=-1)


class InceptionD(nn.Module):
    @nn.compact
    def __call__(self, x):
        b3 = BasicConv2d(320, 3, stride=2, name="branch3x3_2")(BasicConv2d(192, name="branch3x3_1")(x))
        b7 = BasicConv2d(192, name="branch7x7x3_1")(x)
        b7 = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
        b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
        b7 = BasicConv2d(192, 3, stride=2, name="branch7x7x3_4")(b7)
        return jnp.concatenate([b3, b7, _max_pool(x)], axis=-1)


class InceptionE(nn.Module):
    max_pool_branch: bool = False  # the second FID E block max-pools (TF-FID's quirk)

    @nn.compact
    def __call__(self, x):
        row, col = dict(kernel_size=(1, 3), padding=(0, 1)), dict(kernel_size=(3, 1), padding=(1, 0))
        b1 = BasicConv2d(320, name="branch1x1")(x)
        b3 = BasicConv2d(384, name="branch3x3_1")(x)
        b3 = jnp.concatenate([BasicConv2d(384, **row, name="branch3x3_2a")(b3),
                              BasicConv2d(384, **col, name="branch3x3_2b")(b3)], axis=-1)
        d = BasicConv2d(384, 3, padding=1, name="branch3x3dbl_2")(BasicConv2d(448, name="branch3x3dbl_1")(x))
        d = jnp.concatenate([BasicConv2d(384, **row, name="branch3x3dbl_3a")(d),
                             BasicConv2d(384, **col, name="branch3x3dbl_3b")(d)], axis=-1)
        pooled = _max_pool(x, 3, 1, 1) if self.max_pool_branch else _avg_pool_exclude_pad(x)
        bp = BasicConv2d(192, name="branch_pool")(pooled)
        return jnp.concatenate([b1, b3, d, bp], axis=-1)


class FIDInceptionV3(nn.Module):
    """Returns the features of `output_blocks` (0: 64-d after the first max pool, 1: 192-d, 2: 768-d
    before the aux classifier, 3: 2048-d final average pool, shape (N, 2048))."""

    output_blocks: tuple = (3,)
    resize_input: bool = True
    normalize_input: bool = True
    in_channels: int = 3

    @nn.compact
    def __call__(self, x, train: bool = False):
        if self.resize_input:
            x = interpolate_bilinear(x, (299, 299))
        if self.normalize_input:
            x = 2 * x - 1
        outputs = []
        last = max(self.output_blocks)
        x = BasicConv2d(32, 3, stride=2, name="Conv2d_1a_3x3")(x)
        x = BasicConv2d(32, 3, name="Conv2d_2a_3x3")(x)
        x = _max_pool(BasicConv2d(64, 3, padding=1, name="Conv2d_2b_3x3")(x))
        stages = [
            lambda x: _max_pool(BasicConv2d(192, 3, name="Conv2d_4a_3x3")(BasicConv2d(80, name="Conv2d_3b_1x1")(x))),
            lambda x: _stage2(x),
            lambda x: jnp.mean(InceptionE(True, name="Mixed_7c")(InceptionE(name="Mixed_7b")(
                InceptionD(name="Mixed_7a")(x))), axis=(1, 2)),
        ]
        if 0 in self.output_blocks:
            outputs.append(x)
        for index, stage in enumerate(stages, start=1):
            if index > last:
                break
            x = stage(x)
            if index in self.output_blocks:
                outputs.append(x)
        return outputs[0] if len(outputs) == 1 else outputs


def _stage2(x):
    x = InceptionA(32, name="Mixed_5b")(x)
    x = InceptionA(64, name="Mixed_5c")(x)
    x = InceptionA(64, name="Mixed_5d")(x)
    x = InceptionB(name="Mixed_6a")(x)
    for name, channels in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        x = InceptionC(channels, name=name)(x)
    return x


def build_fid_inception(**kwargs) -> FIDInceptionV3:
    if "output_blocks" in kwargs:
        kwargs["output_blocks"] = tuple(kwargs["output_blocks"])
    return FIDInceptionV3(**kwargs)


# The released weights include the 1008-way classifier (`fc`), which the features never use.
HOOKS = ConvertHooks(ignored=(r"^fc\.",))

registry.register_model(registry.ModelEntry(
    name="fid_inception",
    builder=build_fid_inception,
    convert_hooks=HOOKS,
    min_size=75,
    description="pytorch-fid's FID Inception-v3 (features for FID/KID); convert pt_inception-2015-12-05.pth.",
))


def load_fid_inception(path: str):
    """(model, variables) from converted weights (.msgpack) or the official pytorch-fid .pth."""
    import pathlib

    from jaxir.convert.state_dict import convert_state_dict
    from jaxir.convert.torch_io import load_state_dict
    from jaxir.io import load_weights

    if pathlib.Path(path).suffix == ".msgpack":
        name, kwargs, variables = load_weights(path)
        return build_fid_inception(**kwargs), variables
    model = build_fid_inception()
    example = jax.ShapeDtypeStruct((1, 299, 299, 3), jnp.float32)
    return model, convert_state_dict(load_state_dict(path), model, example, hooks=HOOKS)
