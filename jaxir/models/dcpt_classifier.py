"""DCPT's degradation classifier over a restoration network's encoder features.

Hu, Zhang, Wang, ... "Universal Image Restoration Pre-training via Degradation
Classification" (DCPT), ICLR 2025.
Official code: MILab-PKU/dcpt, basicsr/archs/degrad_classify_arch.py (`PromptIR_DC`).

The image is embedded (7x7 stride-2 conv + channel LayerNorm); at level i the
encoder feature f_i (1/2^(i+1) resolution, feature_dims[i] channels) is added with
a softmax mixing weight, passed through ResNet bottleneck blocks (1x1, 3x3, 1x1
convs with channel LayerNorm, detectron2's `BottleneckBlock`), a 1x1 conv to the
next width, 2x2 max-pool and ReLU; a last bottleneck stage, global mean and a
linear layer give the degradation logits. `jaxir.methods.dcpt` trains it.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxir import registry
from jaxir.convert.state_dict import ConvertHooks
from jaxir.models.blocks import Conv2d, LayerNorm, Linear, max_pool

Dtype = Any


class ConvLN(nn.Module):
    """detectron2's `Conv2d(..., norm=LN)`: bias-free conv then channel LayerNorm (eps 1e-6)."""

    features: int
    kernel_size: int
    padding: int = 0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = Conv2d(self.features, self.kernel_size, padding=self.padding, use_bias=False, dtype=self.dtype,
                   name="conv")(x)
        return LayerNorm(epsilon=1e-6, dtype=self.dtype, name="norm")(x)


class BottleneckBlock(nn.Module):
    """relu(conv3(relu(conv2(relu(conv1(x))))) + x) with a hidden width of `bottleneck_channels`."""

    bottleneck_channels: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        c, dt = x.shape[-1], self.dtype
        out = nn.relu(ConvLN(self.bottleneck_channels, 1, dtype=dt, name="conv1")(x))
        out = nn.relu(ConvLN(self.bottleneck_channels, 3, padding=1, dtype=dt, name="conv2")(out))
        out = ConvLN(c, 1, dtype=dt, name="conv3")(out)
        return nn.relu(out + x)


class DegradationClassifier(nn.Module):
    """The official `PromptIR_DC`: logits over `num_classes` degradations from (image, encoder features)."""

    feature_dims: Sequence[int] = (48, 96, 192, 384)
    num_res_blocks: int = 2
    num_classes: int = 3
    dtype: Dtype = jnp.float32
    in_channels: int = 3

    @nn.compact
    def __call__(self, lq, features: Sequence[jax.Array], train: bool = False):
        dims, dt = tuple(self.feature_dims), self.dtype
        if len(features) != len(dims):
            raise ValueError(f"expected {len(dims)} encoder features, got {len(features)}")
        for i, f in enumerate(features):
            if f.shape[-1] != dims[i]:
                raise ValueError(f"feature {i} has {f.shape[-1]} channels, feature_dims says {dims[i]}")

        def stage(x, name):
            for j in range(self.num_res_blocks):
                x = BottleneckBlock(2 * x.shape[-1], dt, name=f"{name}_{j}")(x)
            return x

        x = Conv2d(dims[0], 7, 2, padding=3, dtype=dt, name="conv_embed_0")(lq.astype(dt))
        x = LayerNorm(epsilon=1e-6, dtype=dt, name="conv_embed_1")(x)
        mixing = jax.nn.softmax(self.param("mixing_weights", nn.initializers.ones, (len(dims),), jnp.float32))
        for i, feature in enumerate(features):
            x = stage(x + (mixing[i] * feature).astype(dt), f"bottleneck_layers_{i}")
            out_dim = dims[i + 1] if i < len(dims) - 1 else dims[i]
            x = Conv2d(out_dim, 1, use_bias=False, dtype=dt, name=f"downsample_layers_{i}_0")(x)
            x = nn.relu(max_pool(x, 2))
        x = jnp.mean(stage(x, "last_stage").astype(jnp.float32), axis=(1, 2))
        return Linear(self.num_classes, name="fc")(x)


def _classifier_kwargs(official: dict) -> dict:
    kwargs = dict(official)
    kwargs["feature_dims"] = tuple(int(d) for d in kwargs["feature_dims"])
    return kwargs


def _example_input_shapes(model: DegradationClassifier, shapes: list[tuple]) -> list[tuple]:
    """The image, then feature i at 1/2^(i+1) resolution with feature_dims[i] channels."""
    n, h, w, _ = shapes[0]
    return [shapes[0]] + [(n, h // 2 ** (i + 1), w // 2 ** (i + 1), d) for i, d in enumerate(model.feature_dims)]


# detectron2's Conv2d keeps its weight beside its `norm`; jaxir nests the conv as `conv`.
_HOOKS = ConvertHooks(renames=((r"\.(conv[123]|shortcut)\.weight$", r".\1.conv.weight"),))

registry.register_model(registry.ModelEntry(
    name="dcpt_classifier",
    builder=lambda **kw: DegradationClassifier(**kw),
    official=(("MILab-PKU/dcpt", "PromptIR_DC"),),
    translate_kwargs=_classifier_kwargs,
    convert_hooks=_HOOKS,
    official_file="basicsr/archs/degrad_classify_arch.py",
    example_input_shapes=_example_input_shapes,
    description="DCPT's degradation classifier (ICLR 2025) over an image and 4 encoder features.",
))
