"""DA-RCOT's networks: the residual-conditioned transport map MRCNet, and the potential F_net.

Tang, Gu, et al. "Degradation-Aware Residual-Conditioned Optimal Transport for Unified
Image Restoration" (DA-RCOT), IEEE TPAMI 2025. Official code: xl-tang3/DA-RCOT,
model_res.py (classes MRCNet and F_net).

MRCNet is a Restormer-shaped U-Net (PromptIR's decoder blocks without prompts) run in
two passes. The first pass restores the input. Its residual (input - restored) is
embedded by the same patch embedding and encoded by a second encoder (`res*`); the
residual latent, times 0.8, is added to the image latent of the second pass, and the
residual decoder's level-3 and (through the shared level-2 decoder) level-2 features,
times 0.8, condition the second pass's decoder. Outputs: (restored image of the second
pass, the residual latent (B, H/8, W/8, 8 dim)).

The official class also builds layers its forward never calls (`res_patch_embed`,
`chnl_reduce*`, `reduce_noise_channel_*`, `resdown3_4`, `resup3_2`,
`resreduce_chan_level2`, `resdecoder_level2`, `resup2_1`, `resdecoder_level1`); they are
parameters of the model (and of its 52.3M count) and are created here too, unused.

F_net is the critic (Kantorovich potential) of the OT objective: strided 4x4 convs
with LeakyReLU(0.2) on patch_size x patch_size patches, then three linear layers.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxir import registry
from jaxir.models.blocks import Conv2d, Linear
from jaxir.models.restormer import Downsample, OverlapPatchEmbed, TransformerBlock, Upsample

Dtype = Any
RESIDUAL_CONDITION = 0.8  # weight of the residual branch on the second pass


def _sequential(blocks):
    """Apply a list of modules in order (an official nn.Sequential whose entries are named `<name>_<i>`)."""
    def apply(x):
        for block in blocks:
            x = block(x)
        return x

    return apply


class MRCNet(nn.Module):
    # Outputs in the official order (restored, auxiliary): evaluation and inference take the first.
    RESTORED_OUTPUT = 0

    inp_channels: int = 3
    out_channels: int = 3
    dim: int = 48
    num_blocks: Sequence[int] = (4, 6, 6, 8)
    num_refinement_blocks: int = 4
    heads: Sequence[int] = (1, 2, 4, 8)
    ffn_expansion_factor: float = 2.66
    use_bias: bool = False
    layer_norm_type: str = "WithBias"
    decoder: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, inp, train: bool = False):
        dim, nb, heads, dt = self.dim, self.num_blocks, self.heads, self.dtype
        if not self.decoder:
            # The official forward feeds the 8*dim latent to a 4*dim upsampler unless the decoder blocks reduce it.
            raise ValueError("MRCNet only runs with decoder=True (the official forward fails without it)")
        if dim != 48:
            raise ValueError("MRCNet's hard-coded widths (+192, ...) hold for dim=48 only")
        if inp.shape[1] % 8 or inp.shape[2] % 8:
            raise ValueError(f"MRCNet needs H and W divisible by 8, got {inp.shape[1:3]}")
        inp = inp.astype(dt)

        def stage(level_blocks, level_heads, name):
            return _sequential([TransformerBlock(level_heads, self.ffn_expansion_factor, self.use_bias,
                                                 self.layer_norm_type, dt, name=f"{name}_{i}")
                                for i in range(level_blocks)])

        def block(level_heads, name):
            return TransformerBlock(level_heads, self.ffn_expansion_factor, self.use_bias, self.layer_norm_type, dt,
                                    name=name)

        def conv1x1(features, name):
            return Conv2d(features, 1, use_bias=self.use_bias, dtype=dt, name=name)

        patch_embed = OverlapPatchEmbed(dim, dtype=dt, name="patch_embed")
        encoder_level1, encoder_level2 = stage(nb[0], heads[0], "encoder_level1"), stage(nb[1], heads[1], "encoder_level2")
        encoder_level3 = stage(nb[2], heads[2], "encoder_level3")
        down1_2, down2_3, down3_4 = (Downsample(dt, name=n) for n in ("down1_2", "down2_3", "down3_4"))
        latent_stage = stage(nb[3], heads[3], "latent")
        noise_level3, reduce_noise_level3 = block(heads[2], "noise_level3"), conv1x1(4 * dim, "reduce_noise_level3")
        up4_3, reduce_chan_level3 = Upsample(dt, name="up4_3"), conv1x1(4 * dim, "reduce_chan_level3")
        decoder_level3 = stage(nb[2], heads[2], "decoder_level3")
        noise_level2, reduce_noise_level2 = block(heads[2], "noise_level2"), conv1x1(4 * dim, "reduce_noise_level2")
        up3_2, reduce_chan_level2 = Upsample(dt, name="up3_2"), conv1x1(2 * dim, "reduce_chan_level2")
        decoder_level2 = stage(nb[1], heads[1], "decoder_level2")
        noise_level1, reduce_noise_level1 = block(heads[2], "noise_level1"), conv1x1(2 * dim, "reduce_noise_level1")
        up2_1 = Upsample(dt, name="up2_1")
        decoder_level1 = stage(nb[0], heads[0], "decoder_level1")
        refinement = stage(self.num_refinement_blocks, heads[0], "refinement")
        output = Conv2d(self.out_channels, 3, padding=1, use_bias=self.use_bias, dtype=dt, name="output")

        def decode(latent, enc1, enc2, enc3, res3=None, res2=None):
            """Decoder from the latent; res3/res2 are the residual branch's level-3/level-2 conditions."""
            latent = reduce_noise_level3(noise_level3(latent))
            x = reduce_chan_level3(jnp.concatenate([up4_3(latent), enc3], -1))
            x = decoder_level3(x)
            x = reduce_noise_level2(noise_level2(x if res3 is None else x + RESIDUAL_CONDITION * res3))
            x = reduce_chan_level2(jnp.concatenate([up3_2(x), enc2], -1))
            x = decoder_level2(x)
            x = reduce_noise_level1(noise_level1(x if res2 is None else x + RESIDUAL_CONDITION * res2))
            x = jnp.concatenate([up2_1(x), enc1], -1)
            return output(refinement(decoder_level1(x))) + inp

        # First pass.
        enc1 = encoder_level1(patch_embed(inp))
        enc2 = encoder_level2(down1_2(enc1))
        enc3 = encoder_level3(down2_3(enc2))
        latent_in = down3_4(enc3)
        latent = latent_stage(latent_in)
        restored = decode(latent, enc1, enc2, enc3)

        # Residual branch: the shared patch embedding and down3_4, its own encoders.
        res = inp - restored
        res_enc1 = stage(nb[0], heads[0], "resencoder_level1")(patch_embed(res))
        res_enc2 = stage(nb[1], heads[1], "resencoder_level2")(Downsample(dt, name="resdown1_2")(res_enc1))
        res_enc3 = stage(nb[2], heads[2], "resencoder_level3")(Downsample(dt, name="resdown2_3")(res_enc2))
        res_latent = stage(nb[3], heads[3], "reslatent")(down3_4(res_enc3))
        r = conv1x1(4 * dim, "resreduce_noise_level3")(block(heads[2], "resnoise_level3")(res_latent))
        r = conv1x1(4 * dim, "resreduce_chan_level3")(
            jnp.concatenate([Upsample(dt, name="resup4_3")(r), res_enc3], -1))
        res3 = stage(nb[2], heads[2], "resdecoder_level3")(r)
        # Level 2 of the residual branch goes through the image branch's up3_2 / reduce / decoder.
        res2 = decoder_level2(reduce_chan_level2(jnp.concatenate([up3_2(res3), res_enc2], -1)))

        # Second pass, conditioned on the residual branch.
        # (The official recomputes self.latent(inp_enc_level4) here: the same value.)
        latent = latent + RESIDUAL_CONDITION * res_latent
        restored = decode(latent, enc1, enc2, enc3, res3, res2)

        if self.is_initializing():
            self._init_unused(dim)
        return restored.astype(jnp.float32), res_latent.astype(jnp.float32)

    def _init_unused(self, dim):
        """Create the parameters of the official layers the forward never calls."""
        dt = self.dtype
        z = lambda c, s=1: jnp.zeros((1, s, s, c), dt)  # noqa: E731
        OverlapPatchEmbed(dim, dtype=dt, name="res_patch_embed")(z(self.inp_channels))
        for name, cin, cout in (("chnl_reduce1", 64, 64), ("chnl_reduce2", 128, 128), ("chnl_reduce3", 320, 256),
                                ("reduce_noise_channel_1", dim + 64, dim),
                                ("reduce_noise_channel_2", 2 * dim + 128, 2 * dim),
                                ("reduce_noise_channel_3", 4 * dim + 256, 4 * dim),
                                ("resreduce_chan_level2", 4 * dim, 2 * dim)):
            Conv2d(cout, 1, use_bias=self.use_bias, dtype=dt, name=name)(z(cin))
        Downsample(dt, name="resdown3_4")(z(4 * dim, 2))
        Upsample(dt, name="resup3_2")(z(4 * dim))
        Upsample(dt, name="resup2_1")(z(2 * dim))
        for name, num, heads in (("resdecoder_level2", self.num_blocks[1], self.heads[1]),
                                 ("resdecoder_level1", self.num_blocks[0], self.heads[0])):
            for i in range(num):
                TransformerBlock(heads, self.ffn_expansion_factor, self.use_bias, self.layer_norm_type, dt,
                                 name=f"{name}_{i}")(z(2 * dim, 2))


class FNet(nn.Module):
    """The official F_net potential: (B, p, p, 3) patches -> (B,) scores."""

    patch_size: int = 64
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        if x.shape[1:3] != (self.patch_size, self.patch_size):
            raise ValueError(f"F_net takes {self.patch_size}x{self.patch_size} patches, got {x.shape[1:3]}")
        # (features, kernel, stride, padding, bias) of features.0, .2, ..., .18
        layers = ((64, 5, 1, 2, True), (64, 4, 2, 1, True), (128, 3, 1, 1, True), (128, 4, 2, 1, True),
                  (256, 3, 1, 1, True), (256, 4, 2, 1, True), (512, 3, 1, 1, False), (512, 4, 2, 1, False),
                  (512, 3, 1, 1, False), (512, 4, 2, 1, False))
        y = x.astype(self.dtype)
        for i, (features, k, s, p, bias) in enumerate(layers):
            y = nn.leaky_relu(Conv2d(features, k, s, p, use_bias=bias, dtype=self.dtype, name=f"features_{2 * i}")(y),
                              0.2)
        # out.view(B, -1) flattens NCHW: channel-major.
        y = y.transpose(0, 3, 1, 2).reshape(y.shape[0], -1)
        num_fea = self.patch_size * self.patch_size // 2
        y = Linear(num_fea // 4, dtype=self.dtype, name="fc")(y)
        y = nn.leaky_relu(Linear(64, dtype=self.dtype, name="fc1")(y), 0.2)
        return Linear(1, dtype=self.dtype, name="fc2")(y)[:, 0].astype(jnp.float32)


def _translate(kwargs):
    out = dict(kwargs)
    out.pop("task_num", None)  # stored by the official class, used by nothing
    for old, new in (("bias", "use_bias"), ("LayerNorm_type", "layer_norm_type")):
        if old in out:
            out[new] = out.pop(old)
    for key in ("num_blocks", "heads"):
        if key in out:
            out[key] = tuple(int(v) for v in out[key])
    return out


registry.register_model(registry.ModelEntry(
    name="da_rcot",
    builder=MRCNet,
    official=(("xl-tang3/DA-RCOT", "MRCNet"),),
    translate_kwargs=_translate,
    pad_multiple=8,
    min_size=8,
    official_file="model_res.py",
    description="DA-RCOT's MRCNet (TPAMI 2025): two-pass residual-conditioned transport map, 52.3M params",
))

registry.register_model(registry.ModelEntry(
    name="da_rcot_fnet",
    builder=FNet,
    official=(("xl-tang3/DA-RCOT", "F_net"),),
    official_file="model_res.py",
    description="DA-RCOT's potential network F_net (the OT critic on patches)",
))
