"""DA-RCOT in PyTorch, state-dict compatible with xl-tang3/DA-RCOT model_res.py: the potential
network F_net (strided 4x4 convs with LeakyReLU(0.2), then fc -> fc1 -> LeakyReLU -> fc2 on the
NCHW-flattened features) and the transport map MRCNet. Written for jaxir from the official architecture.
"""
from __future__ import annotations

import torch
from torch import nn

from jaxir.torch_reference.restormer import OverlapPatchEmbed, Resample, TransformerBlock

# (out channels, kernel, stride, padding, bias) of features.0, .2, ..., .18
LAYERS = ((64, 5, 1, 2, True), (64, 4, 2, 1, True), (128, 3, 1, 1, True), (128, 4, 2, 1, True),
          (256, 3, 1, 1, True), (256, 4, 2, 1, True), (512, 3, 1, 1, False), (512, 4, 2, 1, False),
          (512, 3, 1, 1, False), (512, 4, 2, 1, False))


class FNet(nn.Module):
    def __init__(self, patch_size: int = 64):
        super().__init__()
        layers, cin = [], 3
        for cout, k, s, p, bias in LAYERS:
            layers += [nn.Conv2d(cin, cout, k, s, p, bias=bias), nn.LeakyReLU(0.2)]
            cin = cout
        self.features = nn.Sequential(*layers)
        num_fea = patch_size * patch_size // 2
        self.fc = nn.Linear(num_fea, num_fea // 4)
        self.fc1 = nn.Linear(num_fea // 4, 64)
        self.fc2 = nn.Linear(64, 1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x):
        out = self.features(x).flatten(1)
        return self.fc2(self.act(self.fc1(self.fc(out)))).view(-1)


def build_fnet(patch_size: int = 64, dtype=None) -> FNet:
    return FNet(patch_size)


# --- MRCNet (the transport map), state-dict compatible with model_res.py MRCNet(decoder=True) ---

RESIDUAL_CONDITION = 0.8


class MRCNet(nn.Module):
    """Two passes: restore; re-encode the residual; condition the second pass's latent and decoder (0.8x).
    Builds the official's unused layers too (strict state-dict loading)."""

    def __init__(self, inp_channels=3, out_channels=3, dim=48, num_blocks=(4, 6, 6, 8), num_refinement_blocks=4,
                 heads=(1, 2, 4, 8), ffn_expansion_factor=2.66, use_bias=False, layer_norm_type="WithBias"):
        super().__init__()

        def blocks(count, width, h):
            return nn.Sequential(*[TransformerBlock(width, h, ffn_expansion_factor, use_bias, layer_norm_type)
                                   for _ in range(count)])

        def conv1x1(cin, cout):
            return nn.Conv2d(cin, cout, 1, bias=use_bias)

        d = dim
        self.patch_embed = OverlapPatchEmbed(inp_channels, d)
        self.res_patch_embed = OverlapPatchEmbed(inp_channels, d)
        self.chnl_reduce1, self.chnl_reduce2, self.chnl_reduce3 = conv1x1(64, 64), conv1x1(128, 128), conv1x1(320, 256)
        self.reduce_noise_channel_1 = conv1x1(d + 64, d)
        self.encoder_level1, self.resencoder_level1 = blocks(num_blocks[0], d, heads[0]), blocks(num_blocks[0], d, heads[0])
        self.down1_2, self.resdown1_2 = Resample(d, False), Resample(d, False)
        self.reduce_noise_channel_2 = conv1x1(2 * d + 128, 2 * d)
        self.encoder_level2 = blocks(num_blocks[1], 2 * d, heads[1])
        self.resencoder_level2 = blocks(num_blocks[1], 2 * d, heads[1])
        self.down2_3, self.resdown2_3 = Resample(2 * d, False), Resample(2 * d, False)
        self.reduce_noise_channel_3 = conv1x1(4 * d + 256, 4 * d)
        self.encoder_level3 = blocks(num_blocks[2], 4 * d, heads[2])
        self.resencoder_level3 = blocks(num_blocks[2], 4 * d, heads[2])
        self.down3_4, self.resdown3_4 = Resample(4 * d, False), Resample(4 * d, False)
        self.latent, self.reslatent = blocks(num_blocks[3], 8 * d, heads[3]), blocks(num_blocks[3], 8 * d, heads[3])
        self.up4_3, self.resup4_3 = Resample(4 * d, True), Resample(4 * d, True)
        self.reduce_chan_level3, self.resreduce_chan_level3 = conv1x1(2 * d + 192, 4 * d), conv1x1(2 * d + 192, 4 * d)
        self.noise_level3 = TransformerBlock(4 * d + 192, heads[2], ffn_expansion_factor, use_bias, layer_norm_type)
        self.resnoise_level3 = TransformerBlock(4 * d + 192, heads[2], ffn_expansion_factor, use_bias, layer_norm_type)
        self.reduce_noise_level3, self.resreduce_noise_level3 = conv1x1(4 * d + 192, 4 * d), conv1x1(4 * d + 192, 4 * d)
        self.decoder_level3 = blocks(num_blocks[2], 4 * d, heads[2])
        self.resdecoder_level3 = blocks(num_blocks[2], 4 * d, heads[2])
        self.up3_2, self.resup3_2 = Resample(4 * d, True), Resample(4 * d, True)
        self.reduce_chan_level2, self.resreduce_chan_level2 = conv1x1(4 * d, 2 * d), conv1x1(4 * d, 2 * d)
        self.noise_level2 = TransformerBlock(4 * d, heads[2], ffn_expansion_factor, use_bias, layer_norm_type)
        self.reduce_noise_level2 = conv1x1(4 * d, 4 * d)
        self.decoder_level2 = blocks(num_blocks[1], 2 * d, heads[1])
        self.resdecoder_level2 = blocks(num_blocks[1], 2 * d, heads[1])
        self.up2_1, self.resup2_1 = Resample(2 * d, True), Resample(2 * d, True)
        self.noise_level1 = TransformerBlock(2 * d, heads[2], ffn_expansion_factor, use_bias, layer_norm_type)
        self.reduce_noise_level1 = conv1x1(2 * d, 2 * d)
        self.decoder_level1 = blocks(num_blocks[0], 2 * d, heads[0])
        self.resdecoder_level1 = blocks(num_blocks[0], 2 * d, heads[0])
        self.refinement = blocks(num_refinement_blocks, 2 * d, heads[0])
        self.output = nn.Conv2d(2 * d, out_channels, 3, padding=1, bias=use_bias)

    def _decode(self, latent, enc1, enc2, enc3, inp, res3=None, res2=None):
        latent = self.reduce_noise_level3(self.noise_level3(latent))
        x = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(latent), enc3], 1)))
        x = self.reduce_noise_level2(self.noise_level2(x if res3 is None else x + RESIDUAL_CONDITION * res3))
        x = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(x), enc2], 1)))
        x = self.reduce_noise_level1(self.noise_level1(x if res2 is None else x + RESIDUAL_CONDITION * res2))
        x = self.decoder_level1(torch.cat([self.up2_1(x), enc1], 1))
        return self.output(self.refinement(x)) + inp

    def forward(self, inp):
        enc1 = self.encoder_level1(self.patch_embed(inp))
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        latent = self.latent(self.down3_4(enc3))
        restored = self._decode(latent, enc1, enc2, enc3, inp)
        res = inp - restored
        r1 = self.resencoder_level1(self.patch_embed(res))
        r2 = self.resencoder_level2(self.resdown1_2(r1))
        r3 = self.resencoder_level3(self.resdown2_3(r2))
        res_latent = self.reslatent(self.down3_4(r3))
        r = self.resreduce_noise_level3(self.resnoise_level3(res_latent))
        res3 = self.resdecoder_level3(self.resreduce_chan_level3(torch.cat([self.resup4_3(r), r3], 1)))
        res2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(res3), r2], 1)))
        restored = self._decode(latent + RESIDUAL_CONDITION * res_latent, enc1, enc2, enc3, inp, res3, res2)
        return restored, res_latent


def build_mrcnet(inp_channels=3, out_channels=3, dim=48, num_blocks=(4, 6, 6, 8), num_refinement_blocks=4,
                 heads=(1, 2, 4, 8), ffn_expansion_factor=2.66, use_bias=False, layer_norm_type="WithBias",
                 decoder=True, dtype=None) -> MRCNet:
    if not decoder:
        raise ValueError("MRCNet runs with decoder=True only")
    return MRCNet(inp_channels, out_channels, dim, tuple(num_blocks), num_refinement_blocks, tuple(heads),
                  ffn_expansion_factor, use_bias, layer_norm_type)
