"""PyTorch IResNet as insightface's arcface_torch (deepinsight/insightface commit 04a433f,
`recognition/arcface_torch/backbones/iresnet.py`), rewritten for jaxir with configurable stage widths and input
size (the official fixes 64/128/256/512 and 112², fc over 512·7·7): same module names and state-dict keys
(`conv1.weight`, `layer1.0.bn1.running_mean`, `layer1.0.downsample.0.weight`, `fc.weight`, `features.weight`), so
arcface_torch's released backbones load with strict=True. Used to prove `jaxir.metrics.identity`.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class IBasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = downsample

    def forward(self, x):
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (self.downsample(x) if self.downsample is not None else x)


class IResNet(nn.Module):
    def __init__(self, layers=(3, 4, 14, 3), widths=(64, 128, 256, 512), num_features=512, input_size=112):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0], eps=1e-5)
        self.prelu = nn.PReLU(widths[0])
        inplanes = widths[0]
        for k, (planes, blocks) in enumerate(zip(widths, layers), start=1):
            down = nn.Sequential(nn.Conv2d(inplanes, planes, 1, 2, bias=False), nn.BatchNorm2d(planes, eps=1e-5))
            mods = [IBasicBlock(inplanes, planes, 2, down)] + [IBasicBlock(planes, planes) for _ in range(1, blocks)]
            setattr(self, f"layer{k}", nn.Sequential(*mods))
            inplanes = planes
        side = input_size // 16
        self.bn2 = nn.BatchNorm2d(widths[-1], eps=1e-5)
        self.dropout = nn.Dropout(0.0)
        self.fc = nn.Linear(widths[-1] * side * side, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-5)

    def forward(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.features(self.fc(self.dropout(torch.flatten(self.bn2(x), 1))))
