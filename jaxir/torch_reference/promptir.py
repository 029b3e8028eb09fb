"""PromptIR in PyTorch, state-dict compatible with va1shn9v/PromptIR (net/model.py), on jaxir's Restormer blocks."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from jaxir.torch_reference.restormer import OverlapPatchEmbed, Resample, TransformerBlock

PROMPT_DIMS = (64, 128, 320)


class PromptGenBlock(nn.Module):
    """softmax(linear(mean(x))) mixes `prompt_len` learned prompts; bilinear to x's size; 3x3 conv."""

    def __init__(self, prompt_dim: int, prompt_len: int, prompt_size: int, lin_dim: int):
        super().__init__()
        self.prompt_param = nn.Parameter(torch.rand(1, prompt_len, prompt_dim, prompt_size, prompt_size))
        self.linear_layer = nn.Linear(lin_dim, prompt_len)
        self.conv3x3 = nn.Conv2d(prompt_dim, prompt_dim, 3, padding=1, bias=False)

    def forward(self, x):
        weights = F.softmax(self.linear_layer(x.mean(dim=(-2, -1))), dim=1)
        prompt = torch.einsum("bl,lchw->bchw", weights, self.prompt_param[0])
        return self.conv3x3(F.interpolate(prompt, x.shape[-2:], mode="bilinear", align_corners=False))


class PromptIR(nn.Module):
    def __init__(self, inp_channels=3, out_channels=3, dim=48, num_blocks=(4, 6, 6, 8), num_refinement_blocks=4,
                 heads=(1, 2, 4, 8), ffn_expansion_factor=2.66, use_bias=False, layer_norm_type="WithBias",
                 prompt_sizes=(64, 32, 16), prompt_len=5):
        super().__init__()
        d1, d2, d3, d4 = dim, 2 * dim, 4 * dim, 8 * dim
        p1, p2, p3 = PROMPT_DIMS

        def block(width, num_heads):
            return TransformerBlock(width, num_heads, ffn_expansion_factor, use_bias, layer_norm_type)

        def stage(width, count, num_heads):
            return nn.Sequential(*[block(width, num_heads) for _ in range(count)])

        def conv1x1(cin, cout):
            return nn.Conv2d(cin, cout, 1, bias=use_bias)

        self.patch_embed = OverlapPatchEmbed(inp_channels, dim)
        self.prompt1 = PromptGenBlock(p1, prompt_len, prompt_sizes[0], d2)
        self.prompt2 = PromptGenBlock(p2, prompt_len, prompt_sizes[1], d3)
        self.prompt3 = PromptGenBlock(p3, prompt_len, prompt_sizes[2], d4)
        # Unused by the official forward, but in its state dict and parameter count.
        self.chnl_reduce1, self.chnl_reduce2, self.chnl_reduce3 = conv1x1(64, 64), conv1x1(128, 128), conv1x1(320, 256)
        self.reduce_noise_channel_1 = conv1x1(d1 + 64, d1)
        self.reduce_noise_channel_2 = conv1x1(d2 + 128, d2)
        self.reduce_noise_channel_3 = conv1x1(d3 + 256, d3)
        self.encoder_level1 = stage(d1, num_blocks[0], heads[0])
        self.down1_2 = Resample(d1, up=False)
        self.encoder_level2 = stage(d2, num_blocks[1], heads[1])
        self.down2_3 = Resample(d2, up=False)
        self.encoder_level3 = stage(d3, num_blocks[2], heads[2])
        self.down3_4 = Resample(d3, up=False)
        self.latent = stage(d4, num_blocks[3], heads[3])
        self.noise_level3 = block(d4 + p3, heads[2])
        self.reduce_noise_level3 = conv1x1(d4 + p3, d3)
        self.up4_3 = Resample(d3, up=True)
        self.reduce_chan_level3 = conv1x1(d2 + d3, d3)
        self.decoder_level3 = stage(d3, num_blocks[2], heads[2])
        self.noise_level2 = block(d3 + p2, heads[2])
        self.reduce_noise_level2 = conv1x1(d3 + p2, d3)
        self.up3_2 = Resample(d3, up=True)
        self.reduce_chan_level2 = conv1x1(d3, d2)
        self.decoder_level2 = stage(d2, num_blocks[1], heads[1])
        self.noise_level1 = block(d2 + p1, heads[2])
        self.reduce_noise_level1 = conv1x1(d2 + p1, d2)
        self.up2_1 = Resample(d2, up=True)
        self.decoder_level1 = stage(d2, num_blocks[0], heads[0])
        self.refinement = stage(d2, num_refinement_blocks, heads[0])
        self.output = nn.Conv2d(d2, out_channels, 3, padding=1, bias=use_bias)

    def _prompted(self, x, level):
        prompt, interact, reduce = (getattr(self, f"{n}{level}") for n in ("prompt", "noise_level", "reduce_noise_level"))
        return reduce(interact(torch.cat([x, prompt(x)], 1)))

    def forward(self, inp):
        enc1 = self.encoder_level1(self.patch_embed(inp))
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        x = self._prompted(self.latent(self.down3_4(enc3)), 3)
        x = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(x), enc3], 1)))
        x = self._prompted(x, 2)
        x = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(x), enc2], 1)))
        x = self._prompted(x, 1)
        x = self.refinement(self.decoder_level1(torch.cat([self.up2_1(x), enc1], 1)))
        return self.output(x) + inp


def build_promptir(inp_channels: int = 3, out_channels: int = 3, dim: int = 48,
                   num_blocks: Sequence[int] = (4, 6, 6, 8), num_refinement_blocks: int = 4,
                   heads: Sequence[int] = (1, 2, 4, 8), ffn_expansion_factor: float = 2.66, use_bias: bool = False,
                   layer_norm_type: str = "WithBias", decoder: bool = True,
                   prompt_sizes: Sequence[int] = (64, 32, 16), prompt_len: int = 5) -> PromptIR:
    if not decoder:
        raise ValueError("PromptIR runs only with decoder=True")
    return PromptIR(inp_channels, out_channels, dim, tuple(num_blocks), num_refinement_blocks, tuple(heads),
                    ffn_expansion_factor, use_bias, layer_norm_type, tuple(prompt_sizes), prompt_len)
