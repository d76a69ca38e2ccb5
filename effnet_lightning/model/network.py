"""Build a scaled EfficientNet from timm's own blocks and builder, and say what it will be before building it.

Only the scaling is ours: the MBConv/SE/DropPath blocks and the arch-string decoder (`decode_arch_def`) are timm's,
and so is the channel rounding (`timm.layers.make_divisible`: multiples of 8, never below 90%). `architecture`
is the one decoding of B0's arch strings: the network builder, the MAC and parameter arithmetic (flops.py) and the
memory guard (memory.py) all read it. Depth rounds up per stage (`max(1, ceil(repeats x depth))`, as timm's
`_scale_stage_depth` with `depth_trunc="ceil"`). With the official multipliers the result is exactly timm's
`efficientnet_b0..b7` (same state_dict keys and shapes).
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass
from functools import partial
from typing import Any

from timm.layers import make_divisible
from timm.models.efficientnet import EfficientNet, decode_arch_def
from torch import nn

from effnet_lightning.model import scaling as sc

__all__ = [
    "B0_ARCH",
    "CHANNEL_DIVISOR",
    "HEAD_CHANNELS",
    "STEM_CHANNELS",
    "Architecture",
    "Stage",
    "architecture",
    "create_model",
    "scaled_channels",
    "stage_repeats",
]

# EfficientNet-B0 (paper Table 1), in timm's arch-string notation: block type, repeats r, kernel k, stride s,
# expansion e, output channels c, squeeze-excite ratio se. Same as timm's _gen_efficientnet.
B0_ARCH = [
    ["ds_r1_k3_s1_e1_c16_se0.25"],
    ["ir_r2_k3_s2_e6_c24_se0.25"],
    ["ir_r2_k5_s2_e6_c40_se0.25"],
    ["ir_r3_k3_s2_e6_c80_se0.25"],
    ["ir_r3_k5_s1_e6_c112_se0.25"],
    ["ir_r4_k5_s2_e6_c192_se0.25"],
    ["ir_r1_k3_s1_e6_c320_se0.25"],
]
STEM_CHANNELS = 32  # B0 stem, scaled by width like every layer
HEAD_CHANNELS = 1280  # B0 final 1x1 conv, scaled by width
CHANNEL_DIVISOR = 8  # channels are rounded to multiples of 8 (TF's round_filters, timm's round_channels)
ARCHITECTURES_KEPT = 8192  # (depth, width) -> Architecture a process keeps: a solver asks for each several times
HUGE_CHANNELS = 1e300  # a width beyond any limit is clamped here before int(): memory.py then refuses it

# BatchNorm: PyTorch defaults, or TF's (momentum 0.99 in TF == 0.01 in PyTorch; eps 1e-3), as the paper trained.
TORCH_BN_MOMENTUM, TORCH_BN_EPS = 0.1, 1e-5
TF_BN_MOMENTUM, TF_BN_EPS = 0.01, 1e-3
# Stochastic depth (paper §5.2: "survival probability 0.8"): block i of N drops with rate * i / N (TF
# efficientnet_model.py, timm's builder), so block 0 never drops and the last block drops rate * (N-1) / N.
DROP_PATH_RATE = 0.2
# The classifier: timm and TF draw its weights from U(+-1/sqrt(num_classes)), a range set for ImageNet's 1000
# classes. With fewer classes it widens as sqrt(1000 / num_classes): at 2 classes the first logits of a phi -4
# network had std 8.6 and its loss was 4.0-5.6 against ln 2 = 0.69 (BENCHMARKS.md, "Small images"). Below 1000
# classes the 1000-class range is kept, so the first logits are as small as ImageNet's (std 0.3-0.4).
CLASSIFIER_INIT_CLASSES = 1000


@dataclass(frozen=True)
class Stage:
    """One stage as built: its first block has `stride`, the others stride 1 with in = out channels."""

    block_type: str  # "ds": depthwise-separable (B0's first stage); "ir": inverted residual (MBConv)
    repeats: int  # blocks in the stage
    kernel: int  # depthwise kernel side
    stride: int
    expansion: float  # mid channels / input channels ("ir"); 1 for "ds"
    se_ratio: float  # squeeze-excite channels relative to the block input (timm: se_from_exp=False)
    out_channels: int


@dataclass(frozen=True)
class Architecture:
    """What (depth, width) builds, resolution aside: hashable, so that equal networks compare equal."""

    stem_channels: int
    stages: tuple[Stage, ...]
    head_channels: int

    @property
    def blocks(self) -> int:
        return sum(stage.repeats for stage in self.stages)


@functools.cache
def _b0_stages() -> tuple[tuple[dict[str, Any], int], ...]:
    """timm's decoding of B0_ARCH: each stage's first block arguments and its repeats (the one decode here)."""
    return tuple((stage[0], len(stage)) for stage in decode_arch_def(B0_ARCH, 1.0))


def stage_repeats(repeats: int, depth: float) -> int:
    """Blocks of a stage of `repeats` B0 blocks at depth multiplier `depth`: rounded up, at least one (TF, timm)."""
    return max(1, math.ceil(repeats * depth))


def scaled_channels(channels: int, width: float) -> int:
    """`channels x width` rounded to a multiple of 8, never below 90% of it (timm's make_divisible)."""
    return make_divisible(min(channels * width, HUGE_CHANNELS), CHANNEL_DIVISOR)


@functools.lru_cache(maxsize=ARCHITECTURES_KEPT)
def architecture(depth: float, width: float) -> Architecture:
    """The stages B0 scaled by (depth, width) builds: block repeats per stage and rounded channels.

    Pure arithmetic on the decoded arch strings (no network): costs microseconds for any depth the memory guard
    lets through. Many multipliers build the same network; this is the key that tells them apart.
    """
    for name, value in (("depth", depth), ("width", width)):
        if not (math.isfinite(value) and value > 0):
            raise sc.ScalingError(f"the {name} multiplier must be a positive finite number, got {value:g}")
    stages = tuple(
        Stage(
            block_type=args["block_type"],
            repeats=stage_repeats(repeats, depth),
            kernel=args["dw_kernel_size"],
            stride=args["stride"],
            expansion=args.get("exp_ratio", 1.0),
            se_ratio=args["se_ratio"],
            out_channels=scaled_channels(args["out_chs"], width),
        )
        for args, repeats in _b0_stages()
    )
    return Architecture(scaled_channels(STEM_CHANNELS, width), stages, scaled_channels(HEAD_CHANNELS, width))


def _block_args(depth: float) -> list[list[dict[str, Any]]]:
    """timm's block arguments for `depth`: each stage's decoded first block, `stage_repeats` times."""
    return [[copy.deepcopy(args) for _ in range(stage_repeats(repeats, depth))] for args, repeats in _b0_stages()]


def create_model(
    scaling: sc.ScalingSpec | sc.Scaling | str = sc.ScalingSpec(),
    *,
    num_classes: int = 1000,
    dropout: float | None = None,
    drop_path_rate: float = DROP_PATH_RATE,
    bn_momentum: float = TORCH_BN_MOMENTUM,
    bn_eps: float = TORCH_BN_EPS,
    in_chans: int = 3,
) -> EfficientNet:
    """A timm EfficientNet scaled as `scaling` says: a spec (variant, φ or multipliers), a resolved Scaling, or a
    variant name ('b0'..'b7').

    `dropout` defaults to the scaling's (0.2 → 0.5 over B0 → B7); `drop_path_rate` is the stochastic-depth rate
    that timm scales linearly over the blocks (block i of N drops rate·i/N). The model carries `.scaling` (depth,
    width, intended resolution).
    """
    if isinstance(scaling, str):
        scaling = sc.ScalingSpec(variant=scaling)
    if isinstance(scaling, sc.ScalingSpec):
        scaling = scaling.resolve()
    if num_classes < 1 or in_chans < 1:
        raise ValueError(f"num_classes and in_chans must be >= 1, got {num_classes} and {in_chans}")
    dropout = scaling.dropout if dropout is None else dropout
    for name, rate in (("dropout", dropout), ("drop_path_rate", drop_path_rate)):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {rate}")

    model = EfficientNet(
        block_args=_block_args(scaling.depth),  # per-stage repeats: max(1, ceil(depth * r))
        num_classes=num_classes,
        num_features=scaled_channels(HEAD_CHANNELS, scaling.width),
        in_chans=in_chans,
        stem_size=STEM_CHANNELS,  # EfficientNet rounds it with round_chs_fn (fix_stem=False)
        round_chs_fn=partial(scaled_channels, width=scaling.width),
        act_layer=nn.SiLU,  # "swish" in the paper
        norm_layer=partial(nn.BatchNorm2d, momentum=bn_momentum, eps=bn_eps),
        drop_rate=dropout,
        drop_path_rate=drop_path_rate,
    )
    if num_classes < CLASSIFIER_INIT_CLASSES:  # timm/TF's U(+-1/sqrt(num_classes)) is set for 1000 classes
        bound = CLASSIFIER_INIT_CLASSES**-0.5
        nn.init.uniform_(model.classifier.weight, -bound, bound)
    model.scaling = scaling
    return model
