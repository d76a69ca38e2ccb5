"""The one resize-and-normalise from loader images to the network's input: every datamodule runs it on the device
after each batch's transfer (ImageDataModule.to_model_input), and `effnet benchmark` and `effnet cam` call it for
their own batches, so all three feed a network the same numbers.

Light to import: torch only (no Lightning), so a command that only needs the arithmetic starts quickly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["to_model_input"]

PIXEL_MAX = 255  # uint8 images; mean and std are given on the 0-1 scale


def to_model_input(images: Tensor, resolution: int, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """uint8 (N, 3, H, W) on any device -> float32 (N, 3, resolution, resolution), normalized with per-channel
    `mean` and `std` on the 0-1 scale."""
    x = images.float()
    size = (resolution, resolution)
    if tuple(x.shape[-2:]) != size:
        # one interpolate per batch; antialias only acts when shrinking, upscaling is plain bilinear
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    mean_t = torch.tensor(mean, device=x.device).view(1, -1, 1, 1) * PIXEL_MAX
    std_t = torch.tensor(std, device=x.device).view(1, -1, 1, 1) * PIXEL_MAX
    return (x - mean_t) / std_t
