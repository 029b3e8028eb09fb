"""MoCE-IR in PyTorch, state-dict compatible with the official MoCEIR.

Source: eduardzamfir/MoCE-IR, src/net/moce_ir.py, commit a1a6e7480bf0537dba8e7a776854820cda85f5df (class
MoCEIR). Rewritten for jaxir on its Restormer reference blocks; see jaxir/models/moce_ir.py for the model.

Inference as the official eval path: each image's router picks its top-k experts and only those run
(`routing='sparse'`, the default). `routing='dense'` runs every expert on every image and zeroes the
unrouted ones (the same outputs): `jaxir bench` times both, as the JAX port's `routing` flag does.
Differences from the official, all outside the eval-mode computation `jaxir bench` times:
- no router noise (the official adds N(0, (1/E)^2) to the logits in eval too; jaxir's port routes
  without it, so both sides pick the same experts);
- train mode computes what eval mode does: the training-time noise and the auxiliary balance loss
  (`model.total_loss` in the official) are left to the JAX port;
- `ModExpert` applies its expert once: the official loops `depth` times over the same input, which
  gives the same result.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from jaxir.torch_reference.restormer import Attention, FeedForward, LayerNorm, OverlapPatchEmbed, Resample

ROUTING_MODES = ("auto", "sparse", "dense")


def expert_ranks(dim: int, rank: int, num_experts: int, rank_type: str) -> list[int]:
    table = {
        "constant": lambda i: rank,
        "lin": lambda i: rank + i,
        "double": lambda i: rank + 2 * i,
        "exp": lambda i: rank ** (i + 1),
        "spread": lambda i: dim // 2 ** (num_experts - 1 - i),
    }
    if rank_type not in table:
        raise ValueError(f"rank_type {rank_type!r} is not supported by the reference")
    return [table[rank_type](i) for i in range(num_experts)]


class CrossAttention(nn.Module):
    """Channel attention with queries from x (3x3 depthwise) and keys/values from y (7x7 depthwise)."""

    def __init__(self, dim: int, num_heads: int, bias: bool):
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.q = nn.Conv2d(dim, dim, 1, bias=bias)
        self.q_dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim, bias=bias)
        self.kv = nn.Conv2d(dim, 2 * dim, 1, bias=bias)
        self.kv_dwconv = nn.Conv2d(2 * dim, 2 * dim, 7, padding=3, groups=2 * dim, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x, y):
        b, c, h, w = x.shape
        heads = lambda t: t.reshape(b, self.num_heads, c // self.num_heads, h * w)  # noqa: E731
        k, v = self.kv_dwconv(self.kv(y)).chunk(2, 1)
        q, k, v = heads(self.q_dwconv(self.q(x))), heads(k), heads(v)
        attn = ((F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)) * self.temperature).softmax(-1)
        return self.project_out((attn @ v).reshape(b, c, h, w))


class FFTAttention(nn.Module):
    """q * k as a product of spectra (circular correlation) inside zero-padded patches, normalised, times v."""

    def __init__(self, dim: int, patch_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.q = nn.Conv2d(dim, dim, 1, bias=False)
        self.q_dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.kv = nn.Conv2d(dim, 2 * dim, 1, bias=False)
        self.kv_dwconv = nn.Conv2d(2 * dim, 2 * dim, 7, padding=3, groups=2 * dim)
        self.norm = LayerNorm(dim, "WithBias")
        self.proj_out = nn.Conv2d(dim, dim, 1)

    def _patches(self, t):  # (B, C, H, W) -> (B, C, nh, nw, p, p)
        p = self.patch_size
        t = F.pad(t, (0, (-t.shape[-1]) % p, 0, (-t.shape[-2]) % p))
        b, c, hp, wp = t.shape
        return t.reshape(b, c, hp // p, p, wp // p, p).permute(0, 1, 2, 4, 3, 5)

    def forward(self, x):
        b, c, h, w = x.shape
        p = self.patch_size
        q = self.q_dwconv(self.q(x))
        k, v = self.kv_dwconv(self.kv(x)).chunk(2, 1)
        out = torch.fft.irfft2(torch.fft.rfft2(self._patches(q).float()) * torch.fft.rfft2(self._patches(k).float()),
                               s=(p, p))
        nh, nw = out.shape[2], out.shape[3]
        out = out.permute(0, 1, 2, 4, 3, 5).reshape(b, c, nh * p, nw * p)[:, :, :h, :w]
        return self.proj_out(self.norm(out) * v)


class ModExpert(nn.Module):
    """x + up(FFTAttention(down(x)) * SiLU(gate(shared))) at rank `rank`."""

    def __init__(self, dim: int, rank: int, patch_size: int):
        super().__init__()
        self.proj = nn.ModuleList([nn.Conv2d(dim, rank, 1, bias=False), nn.Conv2d(dim, rank, 1, bias=False),
                                   nn.Conv2d(rank, dim, 1, bias=False)])
        self.body = FFTAttention(rank, patch_size)

    def forward(self, x, shared):
        y = self.body(self.proj[0](x)) * F.silu(self.proj[1](shared))
        return self.proj[2](y) + x


class RoutingFunction(nn.Module):
    def __init__(self, dim: int, freq_dim: int, num_experts: int, k: int, complexity: torch.Tensor):
        super().__init__()
        self.k = k
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(dim, num_experts, bias=False))
        self.freq_gate = nn.Linear(freq_dim, num_experts, bias=False)
        self.register_buffer("complexity", complexity)  # official state; biases only the (unported) loss

    def forward(self, x, freq_emb):
        scores = (self.gate(x) + self.freq_gate(freq_emb)).softmax(-1)
        return torch.topk(scores, self.k, dim=-1)


class AdapterLayer(nn.Module):
    def __init__(self, dim: int, rank: int, num_experts: int, top_k: int, rank_type: str, freq_dim: int,
                 complexity_scale: str, routing: str):
        super().__init__()
        self.routing_mode = routing
        ranks = expert_ranks(dim, rank, num_experts, rank_type)
        # One-element containers: the official wraps each expert in a Sequential (keys experts.<e>.0.*).
        self.experts = nn.ModuleList([nn.ModuleList([ModExpert(dim, r, 2 ** (i + 2))]) for i, r in enumerate(ranks)])
        self.proj_out = nn.Conv2d(dim, dim, 1, bias=False)
        complexity = torch.tensor([float(sum(p.numel() for p in e.parameters())) for e in self.experts])
        if complexity_scale == "min":
            complexity = complexity / complexity.min()
        elif complexity_scale == "max":
            complexity = complexity / complexity.max()
        self.routing = RoutingFunction(dim, freq_dim, num_experts, top_k, complexity)

    def forward(self, x, freq_emb, shared):
        gates, indices = self.routing(x, freq_emb)
        if self.routing_mode == "dense":
            dense = torch.zeros(x.shape[0], len(self.experts), dtype=gates.dtype).scatter(1, indices, gates)
            out = sum(dense[:, e, None, None, None] * expert[0](x, shared) for e, expert in enumerate(self.experts))
        else:  # per image, only its routed experts run (the official eval path, any batch size)
            out = torch.cat([
                sum(gates[b, j] * self.experts[int(indices[b, j])][0](x[b:b + 1], shared[b:b + 1])
                    for j in range(indices.shape[1]))
                for b in range(x.shape[0])])
        return self.proj_out(out)


class EncoderBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, ffn_expansion_factor: float, layer_norm_type: str):
        super().__init__()
        self.norms = nn.ModuleList([LayerNorm(dim, layer_norm_type), LayerNorm(dim, layer_norm_type)])
        self.mixer = Attention(dim, num_heads, True)  # the official builds every encoder group with bias=True
        self.ffn = FeedForward(dim, ffn_expansion_factor, True)

    def forward(self, x):
        x = x + self.mixer(self.norms[0](x))
        return x + self.ffn(self.norms[1](x))


class DecoderBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, ffn_expansion_factor: float, bias: bool, layer_norm_type: str,
                 adapter: dict):
        super().__init__()
        self.norms = nn.ModuleList([LayerNorm(dim, layer_norm_type), LayerNorm(dim, layer_norm_type)])
        self.proj = nn.ModuleList([nn.Conv2d(dim, dim, 1), nn.Conv2d(dim, dim, 1)])
        self.shared = Attention(dim, num_heads, bias)
        self.mixer = CrossAttention(dim, num_heads, bias)
        self.ffn = FeedForward(dim, ffn_expansion_factor, bias)
        self.adapter = AdapterLayer(dim, **adapter)

    def forward(self, x, freq_emb):
        y = self.norms[0](x)
        shared = self.shared(self.proj[0](y))
        x = self.mixer(self.adapter(self.proj[1](y), freq_emb, shared), shared) + x
        return x + self.ffn(self.norms[1](x))


class Group(nn.Module):
    """A residual group: `layers` applied in turn (decoder layers also take the frequency embedding)."""

    def __init__(self, blocks):
        super().__init__()
        self.layers = nn.ModuleList(blocks)

    def forward(self, x, *extra):
        for layer in self.layers:
            x = layer(x, *extra)
        return x


class HighPassConv(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        laplacian = -torch.ones(3, 3)
        laplacian[1, 1] = 8.0
        with torch.no_grad():
            self.conv.weight.copy_(laplacian.expand(channels, 1, 3, 3))

    def forward(self, x):
        return self.conv(x)


class FrequencyEmbedding(nn.Module):
    """MLP of the spatial mean of GELU(Laplacian high-pass(latent))."""

    def __init__(self, dim: int):
        super().__init__()
        self.high_conv = nn.Sequential(HighPassConv(dim), nn.GELU())
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        return self.mlp(self.high_conv(x).mean(dim=(-2, -1)))


class MoCEIR(nn.Module):
    def __init__(self, inp_channels=3, out_channels=3, dim=32, levels=4, heads=(1, 1, 1, 1), num_blocks=(1, 1, 1, 3),
                 num_dec_blocks=(1, 1, 1), ffn_expansion_factor=2.0, num_refinement_blocks=1,
                 layer_norm_type="WithBias", use_bias=False, rank=2, num_experts=4, rank_type="constant", topk=1,
                 complexity_scale="max", routing="auto"):
        super().__init__()
        dims = [dim * 2 ** i for i in range(levels)]

        def encoder(width, count, num_heads):
            return Group([EncoderBlock(width, num_heads, ffn_expansion_factor, layer_norm_type) for _ in range(count)])

        self.patch_embed = OverlapPatchEmbed(inp_channels, dim)
        self.freq_embed = FrequencyEmbedding(dims[-1])
        self.enc = nn.ModuleList([
            nn.ModuleList([encoder(dims[i], num_blocks[i], heads[i]), Resample(dims[i], up=False)])
            for i in range(levels - 1)])
        self.latent = encoder(dims[-1], num_blocks[-1], heads[-1])
        rdims, rheads, rdec = dims[::-1], list(heads)[::-1], list(num_dec_blocks)[::-1]
        adapter = dict(rank=rank, num_experts=num_experts, top_k=topk, rank_type=rank_type, freq_dim=dims[-1],
                       complexity_scale=complexity_scale, routing="dense" if routing == "dense" else "sparse")
        self.dec = nn.ModuleList([nn.ModuleList([
            Resample(rdims[i], up=True),
            nn.Conv2d(rdims[i], rdims[i + 1], 1, bias=use_bias),
            Group([DecoderBlock(rdims[i + 1], rheads[i + 1], ffn_expansion_factor, use_bias, layer_norm_type, adapter)
                   for _ in range(rdec[i])]),
        ]) for i in range(levels - 1)])
        self.refinement = encoder(dim, num_refinement_blocks, heads[0])
        self.output = nn.Conv2d(dim, out_channels, 3, padding=1, bias=use_bias)

    def forward(self, x):
        feats = self.patch_embed(x)
        skips = []
        for block, down in self.enc:
            feats = block(feats)
            skips.append(feats)
            feats = down(feats)
        feats = self.latent(feats)
        freq_emb = self.freq_embed(feats)
        for up, fuse, block in self.dec:
            feats = block(fuse(torch.cat([up(feats), skips.pop()], 1)), freq_emb)
        return self.output(self.refinement(feats)) + x


def build_moce_ir(inp_channels: int = 3, out_channels: int = 3, dim: int = 32, levels: int = 4,
                  heads: Sequence[int] = (1, 1, 1, 1), num_blocks: Sequence[int] = (1, 1, 1, 3),
                  num_dec_blocks: Sequence[int] = (1, 1, 1), ffn_expansion_factor: float = 2.0,
                  num_refinement_blocks: int = 1, layer_norm_type: str = "WithBias", use_bias: bool = False,
                  rank: int = 2, num_experts: int = 4, depth_type="lin", stage_depth: Sequence[int] = (3, 2, 1),
                  rank_type: str = "constant", topk: int = 1, with_complexity: bool = False,
                  complexity_scale: str = "max", routing: str = "auto", expert_probe=None, dtype=None) -> MoCEIR:
    """The jaxir builder's kwargs (`depth_type`, `stage_depth`, `with_complexity` do not change the forward)."""
    del depth_type, stage_depth, with_complexity, expert_probe, dtype
    if routing not in ROUTING_MODES:
        raise ValueError(f"routing must be one of {ROUTING_MODES}, got {routing!r}")
    if len(heads) != levels or len(num_blocks) != levels or len(num_dec_blocks) != levels - 1:
        raise ValueError(f"heads and num_blocks need {levels} entries and num_dec_blocks {levels - 1}")
    return MoCEIR(inp_channels, out_channels, dim, levels, tuple(heads), tuple(num_blocks), tuple(num_dec_blocks),
                  ffn_expansion_factor, num_refinement_blocks, layer_norm_type, use_bias, rank, num_experts,
                  rank_type, topk, complexity_scale, routing)
