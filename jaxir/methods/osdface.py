"""OSDFace training (Wang et al., CVPR 2025; jkwang28/OSDFace releases no training code, so this follows the paper's
description): LoRA on the U-Net of the one-step generator, trained with a pixel MSE, edge-aware DISTS
(`edge_aware_dists_demo.py`), the facial identity loss (1 − cos of ArcFace/IResNet embeddings) and GAN guidance
from a discriminator on the restored images.

The trained module (`OSDFaceGenerator`, built by `wrap_model` from the configured `ldm_unet`) is the inference
pipeline of `jaxir.diffusion.latent.osdface` written as one Flax module whose params hold `unet` (base), `lora`
(adapters, `jaxir.diffusion.latent.lora`), `embedding_change`, `vae` and `vre`; the U-Net runs with the adapters
merged (exactly the adapted network; gradients reach A and B through the merge). `trainable` lets the optimizer
change the LoRA A/B and `embedding_change` only (the released checkpoint ships both; the VRE, VAE and base U-Net
are frozen, as the paper and `infer.py` load them). The discriminator's parameters and Adam state are the method's
state, updated in `pre_update` before the generator step.

Not from the paper (it was not readable in this session; the official code is unreleased), jaxir's choices: the
discriminator (a PatchGAN-style stack of stride-2 4x4 convs with LeakyReLU 0.2, non-saturating softplus losses),
the loss weights' defaults, the MSE on [0, 1] images, and the VAE posterior sample drawn from the 'noise' stream.
The identity and DISTS networks' weights come from paths (`arcface`, `dists`: see `jaxir.metrics.identity.load`,
`jaxir.metrics.dists.load`); base weights from an OSDFace folder made by
`jaxir osdface convert --lora-alpha 0` (scale 0: the SD 2.1 U-Net without the released LoRA) via `pretrained`
(read in `prepare`, which runs inside the jitted initialisation: the weights become constants of that
computation, workable for the tests' networks, heavy for the 865M U-Net).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxir.diffusion.latent import autoencoder_kl as akl
from jaxir.diffusion.latent import lora as lora_lib
from jaxir.diffusion.latent import osdface
from jaxir.diffusion.latent.osdface_vre import build as build_vre
from jaxir.methods import TrainMethod
from jaxir.models.blocks import Conv2d
from jaxir.models.ldm_unet import LDMUNet

FROZEN = ("unet", "vae", "vre")


class OSDFaceGenerator(nn.Module):
    """Params `unet`, `vae`, `vre` (frozen), `lora`, `embedding_change`; the networks are fields (applied unbound)."""

    unet_model: LDMUNet
    vae_model: akl.AutoencoderKL
    vre_model: nn.Module
    lora_rank: int = 16
    lora_alpha: float = 16.0
    lora_targets: str = lora_lib.ATTENTION_TARGETS
    timestep: int = osdface.TIMESTEP

    @nn.compact
    def __call__(self, lq01, train: bool = False):
        unet, vae, vre = (m.clone(parent=None) for m in (self.unet_model, self.vae_model, self.vre_model))
        n = lq01.shape[0]
        side = 2 ** (len(unet.channel_mult) - 1)
        res = vre.resolution

        def frozen(name, module, *args):
            return jax.lax.stop_gradient(self.param(name, lambda k: module.init(k, *args)["params"]))

        unet_p = frozen("unet", unet, jnp.zeros((1, side, side, unet.in_channels)),
                        jnp.zeros((1,), jnp.int32), jnp.zeros((1, 77, unet.context_dim)))
        vae_p = frozen("vae", vae, jnp.zeros((1, 8, 8, vae.in_channels)))
        vre_p = frozen("vre", vre, jnp.zeros((1, res, res, 3)))
        adapters = self.param("lora", lambda k: lora_lib.init(unet_p, k, self.lora_rank, self.lora_alpha,
                                                               self.lora_targets))
        lq = 2.0 * lq01.astype(jnp.float32) - 1.0
        prompt = vre.apply({"params": vre_p}, osdface.vre_input(lq, res)).reshape(n, 77, -1)
        prompt = osdface.EmbeddingChange(unet.context_dim, name="embedding_change")(prompt)
        posterior = vae.apply({"params": vae_p}, lq, method=akl.AutoencoderKL.encode)
        key = self.make_rng("noise") if self.has_rng("noise") else jax.random.key(0)
        z = posterior.sample(key) * vae.scaling_factor
        merged = lora_lib.merge(unet_p, adapters)
        eps = unet.apply({"params": merged}, z, jnp.full((n,), self.timestep, jnp.int32), prompt)
        return akl.decode_latents(vae, {"params": vae_p}, osdface.x0_from_eps(z, eps, self.timestep))


class PatchDiscriminator(nn.Module):
    widths: Sequence[int] = (64, 128, 256, 512)

    @nn.compact
    def __call__(self, x):
        h = 2.0 * x.astype(jnp.float32) - 1.0
        for i, width in enumerate(self.widths):
            h = nn.leaky_relu(Conv2d(width, 4, stride=2, padding=1, name=f"conv_{i}")(h), 0.2)
        return Conv2d(1, 3, padding=1, name="logits")(h)


class OSDFaceTraining(TrainMethod):
    name = "osdface"

    def __init__(self, vae: Mapping | None = None, vre: Mapping | None = None, lora_rank: int = 16,
                 lora_alpha: float = 16.0, lora_targets: str = lora_lib.ATTENTION_TARGETS,
                 arcface: str | None = None, arcface_kwargs: Mapping | None = None, dists: str | None = None,
                 dists_widths: Sequence[int] = (64, 128, 256, 512, 512), pretrained: str | None = None,
                 l2_weight: float = 1.0, dists_weight: float = 1.0, id_weight: float = 1.0, gan_weight: float = 0.1,
                 disc_widths: Sequence[int] = (64, 128, 256, 512), disc_lr: float = 1e-5,
                 disc_betas: Sequence[float] = (0.9, 0.999)):
        self.vae_kwargs, self.vre_kwargs = dict(vae or {}), dict(vre or {})
        self.lora = (int(lora_rank), float(lora_alpha), str(lora_targets))
        self.pretrained = pretrained
        self.weights = {"l2": float(l2_weight), "dists": float(dists_weight), "id": float(id_weight),
                        "gan": float(gan_weight)}
        if not arcface or not dists:
            raise ValueError("osdface training needs the identity (arcface) and DISTS (dists) weights by path")
        self.arcface, self.arcface_kwargs = str(arcface), dict(arcface_kwargs or {})
        self.dists, self.dists_widths = str(dists), tuple(dists_widths)
        self._loss_nets = None
        self.disc = PatchDiscriminator(tuple(disc_widths))
        self.disc_tx = optax.adam(float(disc_lr), b1=float(disc_betas[0]), b2=float(disc_betas[1]))

    def wrap_model(self, model: Any, entry: Any) -> Any:
        if not isinstance(model, LDMUNet):
            raise ValueError("the osdface method trains an ldm_unet (config.model.name = 'ldm_unet')")
        vae = akl.AutoencoderKL(**akl.diffusers_kwargs(self.vae_kwargs))
        rank, alpha, targets = self.lora
        return OSDFaceGenerator(model, vae, build_vre(**self.vre_kwargs), rank, alpha, targets)

    def prepare(self, params):
        if not self.pretrained:
            return params
        from jaxir.diffusion.latent import osdface_convert

        loaded = osdface_convert.load(self.pretrained)
        params = dict(params)
        for part in FROZEN:
            want = jax.tree.map(jnp.shape, params[part])
            got = jax.tree.map(jnp.shape, loaded.variables[part]["params"])
            if want != got:
                raise ValueError(f"{self.pretrained}: {part} does not fit the configured networks")
            params[part] = jax.tree.map(jnp.asarray, loaded.variables[part]["params"])
        return params

    def trainable(self, params):
        def keep(path, _):
            names = [getattr(p, "key", str(p)) for p in path]
            return names[0] == "embedding_change" or (names[0] == "lora" and names[-1] in ("A", "B"))

        return jax.tree_util.tree_map_with_path(keep, params)

    def init_state(self, key, params, input_shape):
        d = self.disc.init(key, jnp.zeros((1, *input_shape[1:3], 3)))["params"]
        return {"params": d, "opt_state": self.disc_tx.init(d)}

    def pre_update(self, model, method_state, variables, inputs, target, batch, key, step):
        fake = jax.lax.stop_gradient(model.apply(variables, inputs, train=False, rngs={"noise": key}))
        params, opt_state = method_state["params"], method_state["opt_state"]

        def d_loss(p):
            real = self.disc.apply({"params": p}, target.astype(jnp.float32))
            fake_logits = self.disc.apply({"params": p}, fake)
            return jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake_logits))

        loss, grads = jax.value_and_grad(d_loss)(params)
        updates, opt_state = self.disc_tx.update(grads, opt_state, params)
        return ({"params": optax.apply_updates(params, updates), "opt_state": opt_state},
                {"discriminator/loss": loss})

    def loss_networks(self):
        """(identity net, its variables, DISTS net, its variables), read from their paths on first use."""
        if self._loss_nets is None:
            from jaxir.metrics import dists as dists_lib
            from jaxir.metrics import identity

            self._loss_nets = (*identity.load(self.arcface, **self.arcface_kwargs),
                               *dists_lib.load(self.dists, self.dists_widths))
        return self._loss_nets

    def loss(self, outputs: Any, target: jax.Array, batch: Mapping[str, jax.Array], base_loss: Callable,
             method_state: Any, key: jax.Array):
        from jaxir.metrics import dists as dists_lib
        from jaxir.metrics import identity

        id_net, id_vars, dists_net, dists_vars = self.loss_networks()
        restored, target = outputs.astype(jnp.float32), target.astype(jnp.float32)
        terms = {"l2": jnp.mean(jnp.square(restored - target)),
                 "edge_dists": jnp.mean(dists_lib.edge_aware_dists(dists_net, dists_vars, restored, target)),
                 "identity": jnp.mean(identity.identity_distance(id_net, id_vars, restored, target)),
                 "gan": jnp.mean(jax.nn.softplus(-self.disc.apply(
                     {"params": jax.lax.stop_gradient(method_state["params"])}, restored)))}
        total = (self.weights["l2"] * terms["l2"] + self.weights["dists"] * terms["edge_dists"]
                 + self.weights["id"] * terms["identity"] + self.weights["gan"] * terms["gan"])
        return total, terms
