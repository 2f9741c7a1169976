"""A small 3D UNet (``torch.nn.Module``, TorchScript-able) for organ segmentation.

Two down-sampling levels by default; ``width`` sets the channel count of the first level (each
level doubles it). Inputs must have spatial sizes divisible by ``2**depth``; the sliding window
always feeds patches of the model card's ``patch_size``, which satisfies that.
"""

from __future__ import annotations

import torch
from torch import nn


class _Block(nn.Module):
    """Two 3×3×3 convolutions, each followed by instance norm and LeakyReLU."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(c_in, c_out, 3, padding=1, bias=False),
            nn.InstanceNorm3d(c_out, affine=True),
            nn.LeakyReLU(0.01, inplace=True),
            nn.Conv3d(c_out, c_out, 3, padding=1, bias=False),
            nn.InstanceNorm3d(c_out, affine=True),
            nn.LeakyReLU(0.01, inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class UNet3D(nn.Module):
    """UNet with ``depth`` pooling levels: (N, in_channels, Z, Y, X) → (N, n_classes, Z, Y, X) logits."""

    def __init__(self, in_channels: int = 1, n_classes: int = 2, width: int = 8, depth: int = 2):
        super().__init__()
        chans = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        c = in_channels
        for ch in chans[:-1]:
            self.down.append(_Block(c, ch))
            c = ch
        self.bottom = _Block(chans[-2], chans[-1])
        self.pool = nn.MaxPool3d(2)
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for ch in reversed(chans[:-1]):
            self.up.append(nn.ConvTranspose3d(ch * 2, ch, 2, stride=2))
            self.dec.append(_Block(ch * 2, ch))
        self.head = nn.Conv3d(chans[0], n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for i, (up, dec) in enumerate(zip(self.up, self.dec)):  # noqa: B905 (TorchScript)
            x = up(x)
            x = dec(torch.cat([x, skips[len(skips) - 1 - i]], dim=1))
        return self.head(x)
