"""AirNet: all-in-one image restoration for unknown corruption.

Li, Zhang, Pan, Peng, Tang, Jin. "All-In-One Image Restoration for Unknown
Corruption", CVPR 2022. Official code: XLearning-SCU/2022-CVPR-AirNet,
net/model.py, net/encoder.py, net/moco.py, net/DGRN.py, net/deform_conv.py.

Two parts:
- CBDE, the contrastive degradation encoder: a small ResNet (`ResEncoder`) trained by
  MoCo. Its query encoder gives a degradation feature map `inter` (64 ch, full size);
  the momentum key encoder, the queue of negative keys (dim x K, K = 256 * batch size)
  and the queue pointer are training state. Query/key are two crops of the same
  degraded image; InfoNCE over [positive key, queue] with temperature 0.07.
- DGRN, the degradation-guided restoration network: 5 groups of 5 blocks, each block
  two DGMs (a DCNv2 whose offsets and masks are predicted from [feature, inter], plus
  an SFT layer x * gamma(inter) + beta(inter)).

In jaxir the key encoder's weights are ordinary parameters (they are `parameters()` of
the official module and the papers' 8.9M count includes them), excluded from the
gradient (stop_gradient) and from the optimizer by `jaxir.methods.moco.AirNetMoCo`,
which also applies the momentum update after each step. The queue and its pointer live
in the `moco` variable collection, updated inside the training forward as the official
`_dequeue_and_enqueue`.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxir import registry
from jaxir.models.blocks import BatchNorm2d, Conv2d, Linear
from jaxir.ops.deform_conv import modulated_deform_conv2d

Dtype = Any
MOCO_COLLECTION = "moco"


def _leaky(x):
    return nn.leaky_relu(x, 0.1)


def _l2_normalize(x, axis):
    # F.normalize: x / max(||x||, 1e-12)
    return x / jnp.maximum(jnp.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


class ResBlock(nn.Module):
    out_feat: int
    stride: int = 1
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        dt = self.dtype
        y = Conv2d(self.out_feat, 3, self.stride, 1, use_bias=False, dtype=dt, name="backbone_0")(x)
        y = _leaky(BatchNorm2d(dtype=dt, name="backbone_1")(y, train))
        y = Conv2d(self.out_feat, 3, 1, 1, use_bias=False, dtype=dt, name="backbone_3")(y)
        y = BatchNorm2d(dtype=dt, name="backbone_4")(y, train)
        s = Conv2d(self.out_feat, 1, self.stride, use_bias=False, dtype=dt, name="shortcut_0")(x)
        s = BatchNorm2d(dtype=dt, name="shortcut_1")(s, train)
        return _leaky(y + s)


class ResEncoder(nn.Module):
    """Returns (pooled feature (B, 256), projection (B, 256), inter (B, H, W, 64))."""

    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        dt = self.dtype
        inter = ResBlock(64, 1, dt, name="E_pre")(x, train)
        y = ResBlock(128, 2, dt, name="E_0")(inter, train)
        y = ResBlock(256, 2, dt, name="E_1")(y, train)
        fea = jnp.mean(y, axis=(1, 2))
        out = Linear(256, dtype=dt, name="mlp_2")(_leaky(Linear(256, dtype=dt, name="mlp_0")(fea)))
        return fea, out, inter


class MoCo(nn.Module):
    """Query encoder, momentum key encoder and the queue of negative keys.

    Eval: (embedding, inter) of the query encoder. Train: also the InfoNCE logits
    (B, 1 + K) (positive first, divided by T) and the queue advanced by this batch's
    keys (needs `mutable=['moco', ...]`).
    """

    dim: int = 256
    K: int = 3 * 256
    T: float = 0.07
    dtype: Dtype = jnp.float32

    # Queue buffers go to the non-trainable `moco` collection, in the official (dim, K) layout.
    TORCH_PARAMS = {"queue": (MOCO_COLLECTION, "queue", None), "queue_ptr": (MOCO_COLLECTION, "queue_ptr", None)}

    @nn.compact
    def __call__(self, im_q, im_k=None, train: bool = False):
        encoder_q = ResEncoder(self.dtype, name="encoder_q")
        encoder_k = ResEncoder(self.dtype, name="encoder_k")
        queue = self.variable(
            MOCO_COLLECTION, "queue",
            lambda: _l2_normalize(jax.random.normal(self.make_rng("params"), (self.dim, self.K)), axis=0))
        queue_ptr = self.variable(MOCO_COLLECTION, "queue_ptr", lambda: jnp.zeros((1,), jnp.int32))
        embedding, q, inter = encoder_q(im_q, train)
        if not train:
            if self.is_initializing():
                encoder_k(im_q, False)  # create the key encoder's variables
            return embedding, inter, None
        q = _l2_normalize(q.astype(jnp.float32), axis=1)
        _, k, _ = encoder_k(im_q if im_k is None else im_k, True)
        k = jax.lax.stop_gradient(_l2_normalize(k.astype(jnp.float32), axis=1))
        l_pos = jnp.sum(q * k, axis=1, keepdims=True)
        l_neg = q @ jax.lax.stop_gradient(queue.value)
        logits = jnp.concatenate([l_pos, l_neg], axis=1) / self.T
        if not self.is_initializing():
            batch = k.shape[0]
            if self.K % batch:
                raise ValueError(f"MoCo queue length {self.K} is not a multiple of the batch size {batch}")
            ptr = queue_ptr.value[0]
            queue.value = jax.lax.dynamic_update_slice(queue.value, k.T.astype(queue.value.dtype), (0, ptr))
            queue_ptr.value = jnp.reshape((ptr + batch) % self.K, (1,)).astype(queue_ptr.value.dtype)
        return embedding, inter, logits


class CBDE(nn.Module):
    batch_size: int = 5
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x_query, x_key=None, train: bool = False):
        dim = 256
        return MoCo(dim=dim, K=self.batch_size * dim, dtype=self.dtype, name="E")(x_query, x_key, train)


class DCNLayer(nn.Module):
    """AirNet's DCN_layer: offsets and mask from conv([x, inter]); DCNv2 on x (no bias)."""

    features: int
    kernel_size: int = 3
    padding: int = 1
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, inter):
        k = self.kernel_size
        c = x.shape[-1]
        bound = 1.0 / (c * k * k) ** 0.5
        weight = self.param("weight", lambda key, s: jax.random.uniform(key, s, jnp.float32, -bound, bound),
                            (self.features, c, k, k))
        # The official init zeroes the offset/mask conv (identity sampling, mask 0.5).
        out = Conv2d(3 * k * k, k, 1, self.padding, dtype=self.dtype, name="conv_offset_mask")(
            jnp.concatenate([x, inter], axis=-1))
        # torch.chunk(out, 3) then cat(o1, o2): the first two thirds are (dy, dx) per kernel point.
        offset, mask = out[..., :2 * k * k], jax.nn.sigmoid(out[..., 2 * k * k:])
        return modulated_deform_conv2d(x.astype(self.dtype), offset.astype(jnp.float32), mask, weight,
                                       None, 1, self.padding).astype(self.dtype)


class SFTLayer(nn.Module):
    features: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, inter):
        def branch(name):
            y = Conv2d(self.features, 1, use_bias=False, dtype=self.dtype, name=f"{name}_0")(inter)
            return Conv2d(self.features, 1, use_bias=False, dtype=self.dtype, name=f"{name}_2")(_leaky(y))

        return x * branch("conv_gamma") + branch("conv_beta")


class DGM(nn.Module):
    features: int
    kernel_size: int = 3
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, inter):
        dcn = DCNLayer(self.features, self.kernel_size, (self.kernel_size - 1) // 2, self.dtype, name="dcn")
        sft = SFTLayer(self.features, self.dtype, name="sft")
        return x + dcn(x, inter) + sft(x, inter)


def _conv(features, kernel_size, dtype, name):
    return Conv2d(features, kernel_size, padding=kernel_size // 2, dtype=dtype, name=name)


class DGB(nn.Module):
    features: int
    kernel_size: int = 3
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, inter):
        f, k, dt = self.features, self.kernel_size, self.dtype
        out = _leaky(DGM(f, k, dt, name="dgm1")(x, inter))
        out = _leaky(_conv(f, k, dt, "conv1")(out))
        out = _leaky(DGM(f, k, dt, name="dgm2")(out, inter))
        return _conv(f, k, dt, "conv2")(out) + x


class DGG(nn.Module):
    features: int
    kernel_size: int = 3
    n_blocks: int = 5
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, inter):
        res = x
        for i in range(self.n_blocks):
            res = DGB(self.features, self.kernel_size, self.dtype, name=f"body_{i}")(res, inter)
        return _conv(self.features, self.kernel_size, self.dtype, f"body_{self.n_blocks}")(res) + x


class DGRN(nn.Module):
    n_groups: int = 5
    n_blocks: int = 5
    n_feats: int = 64
    kernel_size: int = 3
    out_channels: int = 3
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, inter):
        f, k, dt = self.n_feats, self.kernel_size, self.dtype
        x = _conv(f, k, dt, "head_0")(x)
        res = x
        for i in range(self.n_groups):
            res = DGG(f, k, self.n_blocks, dt, name=f"body_{i}")(res, inter)
        res = _conv(f, k, dt, f"body_{self.n_groups}")(res) + x
        return _conv(self.out_channels, k, dt, "tail_0")(res)


class AirNet(nn.Module):
    """`model(x)` restores x. In training (`train=True`, `mutable=['batch_stats', 'moco']`) it
    returns (restored, logits) with the InfoNCE logits of the query x against the key view
    `x_key` (positive at index 0), as the official forward's (restored, logits, labels);
    `restore=False` skips the restorer (the encoder pre-training stage): (None, logits)."""

    batch_size: int = 5  # sets the MoCo queue length K = 256 * batch_size
    in_channels: int = 3
    # The restorer's size; the official hard-codes 5 groups of 5 blocks at 64 features (smaller ones for tests).
    n_groups: int = 5
    n_blocks: int = 5
    n_feats: int = 64
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x_query, x_key=None, train: bool = False, restore: bool = True):
        if x_query.shape[-1] != self.in_channels:
            raise ValueError(f"AirNet expects {self.in_channels} input channels, got {x_query.shape[-1]}")
        _, inter, logits = CBDE(self.batch_size, self.dtype, name="E")(x_query, x_key, train)
        if train and not restore:
            return None, logits
        restored = DGRN(self.n_groups, self.n_blocks, self.n_feats, dtype=self.dtype, name="R")(x_query, inter)
        if train:
            return restored, logits
        return restored


def _translate(kwargs):
    return {"batch_size": int(kwargs.get("batch_size", 5))}


registry.register_model(registry.ModelEntry(
    name="airnet",
    builder=AirNet,
    official=(("XLearning-SCU/2022-CVPR-AirNet", "AirNet"),),
    translate_kwargs=_translate,
    official_file="net/model.py",
    description="AirNet (CVPR 2022): contrastive degradation encoder (MoCo) + DCNv2/SFT restoration network",
))
