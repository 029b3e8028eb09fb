"""DA-RCOT's potential network F_net in PyTorch, state-dict compatible with xl-tang3/DA-RCOT model_res.py.

Written for jaxir from the official architecture (strided 4x4 convs with LeakyReLU(0.2),
then fc -> fc1 -> LeakyReLU -> fc2 on the NCHW-flattened features).
"""
from __future__ import annotations

import torch
from torch import nn

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
