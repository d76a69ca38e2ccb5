"""Count multiply-accumulates (MACs) with torch.utils.flop_counter.

FlopCounterMode counts 2 FLOPs per multiply-add; the paper's Table 2 "FLOPS" are multiply-adds, so MACs =
FLOPs / 2. Forward only: FlopCounterMode miscounts grouped-conv backward (measured with torch 2.x here).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_macs(model: nn.Module, resolution: int, in_chans: int = 3) -> int:
    """MACs of one forward pass on a single `resolution`x`resolution` image.

    Runs on the model's own device; build the model under `torch.device("meta")` to count B7 in milliseconds
    without allocating or computing anything.
    """
    device = next(model.parameters()).device
    image = torch.zeros(1, in_chans, resolution, resolution, device=device)
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(image)
    model.train(was_training)
    return counter.get_total_flops() // 2


def count_params(model: nn.Module) -> int:
    """Number of parameters (BN running statistics are buffers, not counted, as in timm)."""
    return sum(p.numel() for p in model.parameters())
