"""PyTorch DISTS as pyiqa's `pyiqa/archs/dists_arch.py` (chaofengc/IQA-PyTorch commit 036f2cc, itself from
dingkeyan93/DISTS `DISTS_pytorch/DISTS_pt.py`), rewritten for jaxir without torchvision and with configurable
stage widths: the same state-dict keys (`stage1.0.weight` ... `stage5.28.bias`, `alpha`, `beta`, the L2 pooling
`filter` buffers, `mean`/`std`), so pyiqa's released weights load with strict=True. Used to prove
`jaxir.metrics.dists` with random weights; `EdgeSobel` is OSDFace's `edge_aware_dists_demo.py` EdgeDetectionModel.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class L2pooling(nn.Module):
    def __init__(self, channels):
        super().__init__()
        a = np.hanning(5)[1:-1]
        g = torch.tensor(a[:, None] * a[None, :], dtype=torch.float32)
        self.register_buffer("filter", (g / g.sum())[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x):
        return (F.conv2d(x ** 2, self.filter, stride=2, padding=1, groups=x.shape[1]) + 1e-12).sqrt()


class DISTS(nn.Module):
    def __init__(self, widths=(64, 128, 256, 512, 512)):
        super().__init__()
        convs = ((0, 2), (5, 7), (10, 12, 14), (17, 19, 21), (24, 26, 28))
        pools = (None, 4, 9, 16, 23)
        cin = 3
        for k, (width, idx, pool) in enumerate(zip(widths, convs, pools), start=1):
            stage = nn.Sequential()
            if pool is not None:
                stage.add_module(str(pool), L2pooling(cin))
            for i in idx:
                stage.add_module(str(i), nn.Conv2d(cin, width, 3, padding=1))
                stage.add_module(str(i + 1), nn.ReLU())
                cin = width
            setattr(self, f"stage{k}", stage)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, -1, 1, 1))
        self.chns = [3, *widths]
        self.alpha = nn.Parameter(torch.randn(1, sum(self.chns), 1, 1) * 0.01 + 0.1)
        self.beta = nn.Parameter(torch.randn(1, sum(self.chns), 1, 1) * 0.01 + 0.1)

    def forward_once(self, x):
        h = (x - self.mean) / self.std
        feats = [x]
        for k in range(1, 6):
            h = getattr(self, f"stage{k}")(h)
            feats.append(h)
        return feats

    def forward(self, x, y):
        f0, f1 = self.forward_once(x), self.forward_once(y)
        c1 = c2 = 1e-6
        w_sum = self.alpha.sum() + self.beta.sum()
        alpha = torch.split(self.alpha / w_sum, self.chns, dim=1)
        beta = torch.split(self.beta / w_sum, self.chns, dim=1)
        dist1 = dist2 = 0
        for k in range(len(self.chns)):
            xm, ym = f0[k].mean([2, 3], keepdim=True), f1[k].mean([2, 3], keepdim=True)
            dist1 = dist1 + (alpha[k] * (2 * xm * ym + c1) / (xm ** 2 + ym ** 2 + c1)).sum(1, keepdim=True)
            xv, yv = ((f0[k] - xm) ** 2).mean([2, 3], keepdim=True), ((f1[k] - ym) ** 2).mean([2, 3], keepdim=True)
            cov = (f0[k] * f1[k]).mean([2, 3], keepdim=True) - xm * ym
            dist2 = dist2 + (beta[k] * (2 * cov + c2) / (xv + yv + c2)).sum(1, keepdim=True)
        return (1 - (dist1 + dist2)).squeeze(-1).squeeze(-1)


class EdgeSobel(nn.Module):
    def __init__(self):
        super().__init__()
        kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
        self.register_buffer("kx", kx.view(1, 1, 3, 3))
        self.register_buffer("ky", kx.t().contiguous().view(1, 1, 3, 3))

    def forward(self, x):
        if x.shape[1] == 3:
            x = x.mean(1, keepdim=True)
        return torch.sqrt(F.conv2d(x, self.kx, padding=1) ** 2 + F.conv2d(x, self.ky, padding=1) ** 2 + 1e-6)
