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


class PromptUNet(nn.Module):
    """Interactive 3D segmentation: image crop + point/box prompts → one object's mask logits.

    The TorchScript signature every ``interactive`` model card promises (see README)::

        forward(image: (1, C, Z, Y, X) float32, points: (N, 3) float32 voxel coordinates (z, y, x)
                on the crop, labels: (N,) int64 (1 positive, 0 negative), box: (2, 3) float32
                [min corner, max corner] inclusive, all -1 for no box) -> (1, 1, Z, Y, X) logits

    This one encodes the prompts as three extra channels (a Gaussian of every positive point, of
    every negative point, and the box filled with ones) and runs a :class:`UNet3D` on them.
    """

    def __init__(self, in_channels: int = 1, width: int = 8, depth: int = 2, sigma: float = 2.0):
        super().__init__()
        self.net = UNet3D(in_channels + 3, 1, width, depth)
        self.sigma = sigma

    def encode(
        self, image: torch.Tensor, points: torch.Tensor, labels: torch.Tensor, box: torch.Tensor
    ) -> torch.Tensor:
        """(1, C + 3, Z, Y, X): the image with its positive, negative and box prompt maps."""
        _, _, nz, ny, nx = image.shape
        dev = image.device
        z = torch.arange(nz, device=dev, dtype=torch.float32).reshape(1, nz, 1, 1)
        y = torch.arange(ny, device=dev, dtype=torch.float32).reshape(1, 1, ny, 1)
        x = torch.arange(nx, device=dev, dtype=torch.float32).reshape(1, 1, 1, nx)
        maps = [
            self._point_map(points[labels == 1], z, y, x),
            self._point_map(points[labels == 0], z, y, x),
        ]
        if bool(box[0, 0] >= 0):
            inside = (
                (z >= box[0, 0]) & (z <= box[1, 0])
                & (y >= box[0, 1]) & (y <= box[1, 1])
                & (x >= box[0, 2]) & (x <= box[1, 2])
            )  # fmt: skip
            maps.append(inside[0].to(torch.float32))
        else:
            maps.append(torch.zeros((nz, ny, nx), device=dev))
        return torch.cat([image, torch.stack(maps)[None].to(image.dtype)], dim=1)

    def _point_map(
        self, sel: torch.Tensor, z: torch.Tensor, y: torch.Tensor, x: torch.Tensor
    ) -> torch.Tensor:
        """Max over ``sel`` points of a Gaussian of ``sigma`` voxels (zeros for no point)."""
        if sel.shape[0] == 0:
            return torch.zeros((z.shape[1], y.shape[2], x.shape[3]), device=z.device)
        d2 = (
            (z - sel[:, 0].reshape(-1, 1, 1, 1)) ** 2
            + (y - sel[:, 1].reshape(-1, 1, 1, 1)) ** 2
            + (x - sel[:, 2].reshape(-1, 1, 1, 1)) ** 2
        )
        return torch.exp(-d2 / (2.0 * self.sigma**2)).amax(dim=0)

    def forward(
        self, image: torch.Tensor, points: torch.Tensor, labels: torch.Tensor, box: torch.Tensor
    ) -> torch.Tensor:
        x = self.encode(image, points, labels, box)
        if x.shape[0] == 1 and not x.is_cuda:
            # PyTorch's CPU conv3d takes its slow im2col kernel for one small volume and oneDNN
            # for two (its heuristic): two copies run 3–4× faster than one, same result
            return self.net(torch.cat([x, x]))[:1]
        return self.net(x)
