"""Large-scale training of the 860M-parameter LDM U-Net: bfloat16 compute, remat, FSDP over the mesh.

`lower_train_step` builds the InstructPix2Pix ε-prediction training step (AdamW, float32 master weights
and moments, bfloat16 activations, every ResBlock and transformer block rematerialised) and lowers it
with `jax.jit(...).lower` on abstract shapes only: no parameter is materialised, so the paper
configuration can be checked on a laptop for any mesh (e.g. 8 simulated CPU devices). Parameters and
optimizer moments are sharded along their largest divisible axis (`jaxir.train.sharding`), the batch
over the same `data` axis.
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from jaxir import registry
from jaxir.diffusion.latent import pipeline
from jaxir.train import sharding


def lower_train_step(unet_kwargs: dict, mesh: Mesh, batch: int, latent_hw: int = 32, context_length: int = 77,
                     param_sharding: str = "fsdp", dtype=jnp.bfloat16, remat: bool = True):
    """(lowered, info) for one training step of `ldm_unet(**unet_kwargs)`; info: params, per-device bytes, seconds."""
    start = time.perf_counter()
    unet = registry.build_model("ldm_unet", **dict(unet_kwargs, dtype=dtype, remat=remat))
    latent_c = unet.out_channels
    x = jax.ShapeDtypeStruct((batch, latent_hw, latent_hw, unet.in_channels), jnp.float32)
    ctx = jax.ShapeDtypeStruct((batch, context_length, unet.context_dim), jnp.float32)
    params = jax.eval_shape(lambda: unet.init(jax.random.key(0), jnp.zeros(x.shape), jnp.zeros((batch,), jnp.int32),
                                              jnp.zeros(ctx.shape))["params"])
    tx = optax.adamw(1e-4, weight_decay=0.01)
    opt_state = jax.eval_shape(tx.init, params)
    p_shard = sharding.param_shardings(params, mesh, param_sharding)
    o_shard = sharding.optimizer_shardings(tx, opt_state, p_shard, mesh)
    b_shard = sharding.batch_sharding(mesh)
    diffusion = pipeline.sd_diffusion()

    def step(params, opt_state, z0, image_latent, context, key):
        def loss_fn(p):
            return pipeline.training_loss(lambda xx, t, c: unet.apply({"params": p}, xx, t, c), diffusion, z0,
                                          image_latent, context, jnp.zeros((1,) + context.shape[1:]), key)
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    latent = jax.ShapeDtypeStruct((batch, latent_hw, latent_hw, latent_c), jnp.float32)
    jitted = jax.jit(step, in_shardings=(p_shard, o_shard, b_shard, b_shard, b_shard, sharding.replicated(mesh)),
                     out_shardings=(p_shard, o_shard, sharding.replicated(mesh)), donate_argnums=(0, 1))
    lowered = jitted.lower(params, opt_state, latent, latent, ctx, jax.eval_shape(lambda: jax.random.key(0)))
    n_params = int(sum(np.prod(p.shape) for p in jax.tree.leaves(params)))
    per_device = 0
    for leaf, shard in zip(jax.tree.leaves(params) + jax.tree.leaves(opt_state),
                           jax.tree.leaves(p_shard) + jax.tree.leaves(o_shard)):
        per_device += int(np.prod(shard.shard_shape(leaf.shape))) * leaf.dtype.itemsize
    return lowered, {"params": n_params, "state_bytes_per_device": per_device,
                     "lower_seconds": time.perf_counter() - start}
