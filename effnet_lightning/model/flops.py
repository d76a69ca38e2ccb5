"""What a scaled EfficientNet costs, counted by arithmetic from its architecture: MACs, parameters, activations.

`cost(depth, width, resolution)` reads the stages `network.architecture` decodes and adds up, layer by layer,
what timm's blocks compute on one image. It is the one MAC counter of the project: `effnet scale`, the budget
solver, `effnet study`, `effnet benchmark` and the training module's throughput all read it. It builds nothing,
so it costs microseconds at any size (a meta-device forward under FlopCounterMode costs 20-400 ms per model).

Conventions, the same as torch.utils.flop_counter halved (the paper's Table 2 "FLOPS" are multiply-adds):
- a convolution costs out_channels x out_side² x in_channels / groups x kernel² MACs; a linear layer in x out;
- biases, BatchNorm, activations, the squeeze-excite mean and gates, and the residual adds cost nothing.
`count_macs(model, resolution)` is that FlopCounterMode count itself, for any model; tests check the arithmetic
against it (B0-B7 and random scalings, exactly equal), and benchmarks/mac_counter.py on 100 random scalings.

Activations follow pycls (Radosavovic et al. 2020; Dollar et al. 2021, "Fast and Accurate Model Scaling"): the
elements of every convolution's and linear layer's output for one image, the measure of size that predicted GPU
run time best in that paper.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from timm.layers import make_divisible

from effnet_lightning.model.network import Architecture, Stage, architecture

if TYPE_CHECKING:
    from torch import nn

__all__ = ["Cost", "cost", "count_macs", "count_params", "stem_side"]

STEM_KERNEL, STEM_STRIDE = 3, 2  # timm EfficientNet's stem: 3x3 convolution, stride 2
COSTS_KEPT = 4096  # (architecture, px, classes) -> Cost entries a process keeps (~200 bytes each)


@dataclass(frozen=True)
class Cost:
    """The cost of one image through the network: forward MACs, parameters, and activations (pycls)."""

    macs: int
    params: int
    activations: int  # elements of every conv and linear output


class _Tally:
    """Adds up convolutions (and the classifier) as they are met, block by block."""

    def __init__(self) -> None:
        self.macs = self.params = self.activations = 0

    def conv(self, cin: int, cout: int, kernel: int, side: int, groups: int = 1, bias: bool = False) -> None:
        per_position = cin // groups * kernel * kernel
        self.macs += cout * side * side * per_position
        self.params += cout * per_position + (cout if bias else 0)
        self.activations += cout * side * side

    def norm(self, channels: int) -> None:
        self.params += 2 * channels  # BatchNorm weight and bias (running statistics are buffers)


def _out_side(side: int, stride: int) -> int:
    """timm's symmetric padding (k // 2 for odd k) gives ceil(side / stride) for every kernel here."""
    return -(-side // stride)


def stem_side(resolution: int) -> int:
    """The side of the stem's output map for a `resolution` px input. Every later map follows from it, so two
    resolutions with the same stem side (35 and 36 px: 18) run one network on the same feature maps."""
    return _out_side(resolution, STEM_STRIDE)


def _block(stage: Stage, cin: int, side: int, stride: int) -> _Tally:
    """One block of `stage` with `cin` input channels on a `side` px map, as timm builds it."""
    tally = _Tally()
    out_side = _out_side(side, stride)
    if stage.block_type == "ir":  # pointwise expansion first (on the input map), then as "ds" on the mid channels
        mid = make_divisible(cin * stage.expansion)
        tally.conv(cin, mid, 1, side)
        tally.norm(mid)
    elif stage.block_type == "ds":  # depthwise-separable: no expansion
        mid = cin
    else:
        raise NotImplementedError(f"block type {stage.block_type!r} is not counted; add it here and to the tests")
    tally.conv(mid, mid, stage.kernel, out_side, groups=mid)  # depthwise
    tally.norm(mid)
    reduced = round(mid * stage.se_ratio / stage.expansion)  # timm: se_from_exp=False divides by the expansion
    tally.conv(mid, reduced, 1, 1, bias=True)  # squeeze-excite on the pooled 1x1 map
    tally.conv(reduced, mid, 1, 1, bias=True)
    tally.conv(mid, stage.out_channels, 1, out_side)  # pointwise projection
    tally.norm(stage.out_channels)
    return tally


def _network(arch: Architecture, resolution: int, num_classes: int, in_chans: int) -> Cost:
    total = _Tally()
    side = _out_side(resolution, STEM_STRIDE)
    total.conv(in_chans, arch.stem_channels, STEM_KERNEL, side)
    total.norm(arch.stem_channels)
    channels = arch.stem_channels
    for stage in arch.stages:
        first = _block(stage, channels, side, stage.stride)
        side, channels = _out_side(side, stage.stride), stage.out_channels
        rest = _block(stage, channels, side, 1)  # the blocks after the first are identical: counted once
        for field in ("macs", "params", "activations"):
            setattr(
                total, field, getattr(total, field) + getattr(first, field) + (stage.repeats - 1) * getattr(rest, field)
            )
    total.conv(channels, arch.head_channels, 1, side)
    total.norm(arch.head_channels)
    total.macs += arch.head_channels * num_classes  # classifier: linear with bias
    total.params += arch.head_channels * num_classes + num_classes
    total.activations += num_classes
    return Cost(total.macs, total.params, total.activations)


@functools.lru_cache(maxsize=COSTS_KEPT)
def _cached(arch: Architecture, resolution: int, num_classes: int, in_chans: int) -> Cost:
    return _network(arch, resolution, num_classes, in_chans)


def cost(depth: float, width: float, resolution: int, num_classes: int = 1000, in_chans: int = 3) -> Cost:
    """MACs, parameters and activations of B0 scaled by (depth, width) on one `resolution` px square image."""
    if not (isinstance(resolution, int) and resolution > 0) or num_classes < 1 or in_chans < 1:
        given = f"{resolution}, {num_classes} and {in_chans}"
        raise ValueError(f"resolution, num_classes and in_chans must be positive integers, got {given}")
    return _cached(architecture(depth, width), resolution, num_classes, in_chans)


def count_macs(model: nn.Module, resolution: int, in_chans: int = 3) -> int:
    """MACs of one forward pass of any `model` on one `resolution` px image, by torch's FlopCounterMode (its
    FLOPs / 2). Forward only: FlopCounterMode miscounts grouped-conv backward (measured with torch 2.x here).

    Runs on the model's own device; build the model under `torch.device("meta")` to count without allocating.
    For the networks `create_model` builds, `cost(...)` gives the same number by arithmetic.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

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
