"""Solve for a budget: the multiplier of one scaling dimension (or φ) that meets a target MACs or params count.

A fair scaling study compares models of equal cost. The paper's own Table 7 rows are not equal on timm's blocks
(compound 1.80 GMACs, d=4 1.58, w=2 1.45, r=2 1.54; DESIGN.md), so each arm is solved for the same target.

Every dimension is discrete once built: depth rounds repeats up per stage (`ceil`), width rounds channels to
multiples of 8, resolution is whole pixels. MACs and params never decrease as a multiplier grows, so bisection
brackets the target between two achievable models, and the nearer one is returned with its deviation.
Counts come from flops.py on the meta device (no memory, no arithmetic), cached per model.

torch and timm are imported by the functions that count, not here: `effnet scale --help` imports this module for
its dimension names and count parser, and starts without them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from effnet_lightning.model import scaling as sc

Dimension = Literal["depth", "width", "resolution", "compound"]
DIMENSIONS: tuple[Dimension, ...] = ("depth", "width", "resolution", "compound")
MIN_MULTIPLIER = 1e-3  # depth: one block per stage; width: 8 channels everywhere (timm's round_channels floor)
MIN_RESOLUTION = 8  # px: three stride-2 stages still see more than one pixel
MIN_PHI = -30.0  # compound: α^-30 ≈ 0.004, below which every dimension is at its floor anyway
BISECTION_STEPS = 30  # halvings of the bracket: 2^-30 of a multiplier is far below any rounding step
PAPER = sc.Coefficients()  # α 1.2, β 1.1, γ 1.15 (paper §3.3)
MAX_DOUBLINGS = 30  # growth of the upper bracket before the memory guard must have refused


@dataclass(frozen=True)
class Solution:
    """The achievable model nearest the target, and how far from it."""

    scale: Dimension
    multiplier: float  # on the base's depth, width or resolution; φ for compound
    depth: float  # absolute multipliers on B0, as ScalingSpec takes them
    width: float
    resolution: int  # px
    macs: int  # forward, one image
    params: int
    target: int
    metric: Literal["macs", "params"]
    deviation: float  # achieved / target - 1

    @property
    def spec(self) -> sc.ScalingSpec:
        return sc.ScalingSpec(depth=self.depth, width=self.width, resolution=self.resolution)


def architecture(depth: float, width: float) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """What (depth, width) builds: block repeats per stage (timm: max(1, ceil(r·d))) and rounded channels.

    Many multipliers build the same network; counting is keyed on this, so a bisection counts each network once.
    """
    from timm.models.efficientnet import round_channels

    from effnet_lightning.model.network import B0_ARCH, HEAD_CHANNELS, STEM_CHANNELS

    repeats = tuple(max(1, math.ceil(int(re.search(r"_r(\d+)_", s[0]).group(1)) * depth)) for s in B0_ARCH)
    channels = [STEM_CHANNELS, *(int(re.search(r"_c(\d+)_", s[0]).group(1)) for s in B0_ARCH), HEAD_CHANNELS]
    return repeats, tuple(round_channels(c, width, divisor=8) for c in channels)


def cost(depth: float, width: float, resolution: int, num_classes: int = 1000) -> tuple[int, int]:
    """(MACs, params) of B0 scaled by (depth, width) at `resolution` px, counted on the meta device."""
    import torch

    from effnet_lightning.model.flops import count_macs, count_params
    from effnet_lightning.model.memory import check_size
    from effnet_lightning.model.network import create_model

    scaling = sc.Scaling(name="solve", depth=depth, width=width, resolution=resolution, dropout=sc.DROPOUT_MIN)
    check_size(scaling, num_classes)  # arithmetic only: refuses a model no device could train
    key = (architecture(depth, width), resolution, num_classes)
    if key not in _COUNTED:
        with torch.device("meta"):
            model = create_model(scaling, num_classes=num_classes)
        _COUNTED[key] = count_macs(model, resolution), count_params(model)
    return _COUNTED[key]


_COUNTED: dict[tuple, tuple[int, int]] = {}  # (architecture, px, classes) -> (MACs, params); a few KB per study


def _point(base: sc.Scaling, scale: Dimension, m: float, coefficients: sc.Coefficients) -> tuple[float, float, int]:
    """(depth, width, resolution px) of the base scaled by multiplier `m` along `scale` (φ for compound)."""
    if scale == "depth":
        return base.depth * m, base.width, base.resolution
    if scale == "width":
        return base.depth, base.width * m, base.resolution
    if scale == "resolution":
        return base.depth, base.width, max(MIN_RESOLUTION, round(base.resolution * m))
    c = coefficients
    return base.depth * c.alpha**m, base.width * c.beta**m, max(MIN_RESOLUTION, round(base.resolution * c.gamma**m))


def solve(
    target_macs: float | None = None,
    scale: Dimension = "compound",
    base: sc.ScalingSpec = sc.ScalingSpec(),
    target_params: float | None = None,
    num_classes: int = 1000,
    coefficients: sc.Coefficients = PAPER,
) -> Solution:
    """Scale `base` along `scale` until it costs `target_macs` (or has `target_params`); the nearest achievable.

    Raises ValueError with one sentence when the target cannot be met: below the smallest model this dimension
    can make, beyond what memory.check_size lets any device train, or params asked of resolution (which adds no
    parameters).
    """
    if (target_macs is None) == (target_params is None):
        raise ValueError("give exactly one of a target MACs or a target params count")
    if scale not in DIMENSIONS:
        raise ValueError(f"unknown dimension {scale!r}; choose one of {', '.join(DIMENSIONS)}")
    metric: Literal["macs", "params"] = "macs" if target_macs is not None else "params"
    target = float(target_macs if target_macs is not None else target_params)  # type: ignore[arg-type]
    if not (math.isfinite(target) and target > 0):
        raise ValueError(f"the target {metric} must be a positive number, got {target:g}")
    if metric == "params" and scale == "resolution":
        raise ValueError("resolution adds no parameters: solve a params target with depth, width or compound")
    resolved = base.resolve()

    def measure(m: float) -> tuple[float, float, int, int, int]:
        depth, width, px = _point(resolved, scale, m, coefficients)
        macs, params = cost(depth, width, px, num_classes)
        return depth, width, px, macs, params

    def value(m: float) -> int:
        return measure(m)[3 if metric == "macs" else 4]

    lo = MIN_PHI if scale == "compound" else MIN_MULTIPLIER
    if scale == "resolution":
        lo = MIN_RESOLUTION / resolved.resolution
    if value(lo) > target:
        raise ValueError(
            f"{metric} target {target:.4g} is below the smallest model {scale} scaling can make from this base "
            f"({value(lo):.4g}); lower another dimension of the base or raise the target"
        )
    hi = 1.0 if scale != "compound" else 0.0
    for _ in range(MAX_DOUBLINGS):
        try:
            reached = value(hi) >= target
        except ValueError as err:  # memory.check_size refused the model this multiplier makes
            raise ValueError(
                f"{metric} target {target:.4g} needs a model beyond the memory guard when scaling {scale} ({err})"
            ) from None
        if reached:
            break
        lo, hi = hi, (hi * 2 if scale != "compound" else hi + 2)
    else:
        raise ValueError(f"{metric} target {target:.4g} is out of reach by scaling {scale}")
    for _ in range(BISECTION_STEPS):  # invariant: value(lo) < target <= value(hi)
        mid = (lo + hi) / 2
        if value(mid) < target:
            lo = mid
        else:
            hi = mid
    below, above = measure(lo), measure(hi)
    index = 3 if metric == "macs" else 4
    m, (depth, width, px, macs, params) = min(((lo, below), (hi, above)), key=lambda pair: abs(pair[1][index] - target))
    if scale == "resolution":
        m = px / resolved.resolution
    achieved = macs if metric == "macs" else params
    return Solution(scale, m, depth, width, px, macs, params, round(target), metric, achieved / target - 1)


def compound_target(
    base: sc.ScalingSpec = sc.ScalingSpec(),
    phi: float = 1.0,
    num_classes: int = 1000,
    coefficients: sc.Coefficients = PAPER,
) -> int:
    """MACs of the base compound-scaled by φ, resolution rounded to whole px as `solve` does (Table 7: φ = 1)."""
    depth, width, px = _point(base.resolve(), "compound", phi, coefficients)
    return cost(depth, width, px, num_classes)[0]


def parse_count(text: str) -> float:
    """'1.8G', '700M', '5.3e6' or '390000000' as a number (SI suffixes K, M, G, T)."""
    suffixes = {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    cleaned = text.strip().upper().removesuffix("MACS").removesuffix("FLOPS")
    factor = suffixes.get(cleaned[-1:], 1.0)
    number = cleaned[:-1] if cleaned[-1:] in suffixes else cleaned
    try:
        value = float(number) * factor
    except ValueError:
        raise ValueError(f"expected a count such as 1.8G, 700M or 5.3e6, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"expected a positive count such as 1.8G, got {text!r}")
    return value
