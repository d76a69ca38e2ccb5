"""Solve for a budget: the multiplier of one scaling dimension (or φ) that meets a target MACs or params count.

A fair scaling study compares models of equal cost. The paper's own Table 7 rows are not equal on timm's blocks
(compound 1.80 GMACs, d=4 1.58, w=2 1.45, r=2 1.54), so each arm is solved for the same target.

Every dimension is discrete once built: depth rounds repeats up per stage (`ceil`), width rounds channels to
multiples of 8, resolution is whole pixels, and compound follows the rule's own rounding (scaling.compound:
multiples of 4 px). MACs and params never decrease as a multiplier grows, so bisection brackets the target
between two achievable models, and the nearer one is returned with its deviation. `matched_budget` moves the
target itself to the nearest budget that every dimension reaches within a tolerance: resolution alone moves in
steps of up to 10% (352 -> 353 px adds a pixel to the stride-32 stages), so no fixed target suits every arm.
Costs are flops.py's arithmetic: the same count `effnet scale` prints.

torch and timm are imported by the functions that count, not here: `effnet scale --help` imports this module for
its dimension names and count parser, and starts without them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from effnet_lightning.model import scaling as sc

__all__ = [
    "DIMENSIONS",
    "PAPER",
    "Dimension",
    "Solution",
    "bracket",
    "compound_target",
    "matched_budget",
    "measure",
    "parse_count",
    "solve",
]

Dimension = Literal["depth", "width", "resolution", "compound"]
DIMENSIONS: tuple[Dimension, ...] = ("depth", "width", "resolution", "compound")
MIN_MULTIPLIER = 1e-3  # depth: one block per stage; width: 8 channels everywhere (make_divisible's floor)
MIN_RESOLUTION = 8  # px: three stride-2 stages still see more than one pixel
MIN_PHI = -30.0  # compound: α^-30 ≈ 0.004, below which every dimension is at its floor anyway
BISECTION_STEPS = 30  # halvings of the bracket: 2^-30 of a multiplier is far below any rounding step
PAPER = sc.Coefficients()  # α 1.2, β 1.1, γ 1.15 (paper §3.3)
MAX_DOUBLINGS = 30  # growth of the upper bracket before the memory guard must have refused
BUDGETS_TRIED = 200  # matched_budget: candidate budgets solved before giving up (each costs ~1 ms)


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
        return sc.ScalingSpec.of(self)


def measure(depth: float, width: float, resolution: int, num_classes: int = 1000) -> tuple[int, int]:
    """(MACs, params) of B0 scaled by (depth, width) at `resolution` px; the memory guard refuses first what no
    device could train (memory.check_size, arithmetic)."""
    from effnet_lightning.model.flops import cost
    from effnet_lightning.model.memory import check_size

    check_size(sc.Scaling("solve", depth, width, resolution, sc.DROPOUT_MIN), num_classes)
    counted = cost(depth, width, resolution, num_classes)
    return counted.macs, counted.params


def _point(base: sc.Scaling, scale: Dimension, m: float, coefficients: sc.Coefficients) -> tuple[float, float, int]:
    """(depth, width, resolution px) of the base scaled by multiplier `m` along `scale` (φ for compound)."""
    if scale == "depth":
        return base.depth * m, base.width, base.resolution
    if scale == "width":
        return base.depth, base.width * m, base.resolution
    if scale == "resolution":
        return base.depth, base.width, max(MIN_RESOLUTION, round(base.resolution * m))
    c = coefficients
    s = sc.compound(m, c.alpha, c.beta, c.gamma, base.resolution, base.depth, base.width)
    return s.depth, s.width, s.resolution


def bracket(
    target_macs: float | None = None,
    scale: Dimension = "compound",
    base: sc.ScalingSpec = sc.ScalingSpec(),
    target_params: float | None = None,
    num_classes: int = 1000,
    coefficients: sc.Coefficients = PAPER,
) -> tuple[Solution | None, Solution]:
    """The two achievable models around the target along `scale`: the largest below it (None when the smallest
    model already reaches it) and the smallest at or above it.

    Raises ScalingError (a UserError) with one sentence when the target cannot be met: below the smallest model
    this dimension can make, beyond what memory.check_size lets any device train, or params asked of resolution
    (which adds no parameters).
    """
    if (target_macs is None) == (target_params is None):
        raise sc.ScalingError("give exactly one of a target MACs or a target params count")
    if scale not in DIMENSIONS:
        raise sc.ScalingError(f"unknown dimension {scale!r}; choose one of {', '.join(DIMENSIONS)}")
    metric: Literal["macs", "params"] = "macs" if target_macs is not None else "params"
    target = float(target_macs if target_macs is not None else target_params)  # type: ignore[arg-type]
    if not (math.isfinite(target) and target > 0):
        raise sc.ScalingError(f"the target {metric} must be a positive number, got {target:g}")
    if metric == "params" and scale == "resolution":
        raise sc.ScalingError("resolution adds no parameters: solve a params target with depth, width or compound")
    resolved = base.resolve()
    index = 3 if metric == "macs" else 4

    def at(m: float) -> tuple[float, float, int, int, int]:
        depth, width, px = _point(resolved, scale, m, coefficients)
        return (depth, width, px, *measure(depth, width, px, num_classes))

    def solution(m: float) -> Solution:
        depth, width, px, macs, params = at(m)
        multiplier = px / resolved.resolution if scale == "resolution" else m
        achieved = macs if metric == "macs" else params
        return Solution(scale, multiplier, depth, width, px, macs, params, round(target), metric, achieved / target - 1)

    lo = MIN_PHI if scale == "compound" else MIN_MULTIPLIER
    if scale == "resolution":
        lo = MIN_RESOLUTION / resolved.resolution
    smallest = at(lo)[index]
    if smallest > target:
        raise sc.ScalingError(
            f"{metric} target {target:.4g} is below the smallest model {scale} scaling can make from this base "
            f"({smallest:.4g}); lower another dimension of the base or raise the target"
        )
    hi = 1.0 if scale != "compound" else 0.0
    for _ in range(MAX_DOUBLINGS):
        try:
            reached = at(hi)[index] >= target
        except sc.ScalingError as err:  # memory.check_size refused the model this multiplier makes
            raise sc.ScalingError(
                f"{metric} target {target:.4g} needs a model beyond the memory guard when scaling {scale} ({err})"
            ) from None
        if reached:
            break
        lo, hi = hi, (hi * 2 if scale != "compound" else hi + 2)
    else:
        raise sc.ScalingError(f"{metric} target {target:.4g} is out of reach by scaling {scale}")
    if at(lo)[index] >= target:  # the smallest model meets the target already
        return None, solution(lo)
    for _ in range(BISECTION_STEPS):  # invariant: value(lo) < target <= value(hi)
        mid = (lo + hi) / 2
        if at(mid)[index] < target:
            lo = mid
        else:
            hi = mid
    return solution(lo), solution(hi)


def solve(
    target_macs: float | None = None,
    scale: Dimension = "compound",
    base: sc.ScalingSpec = sc.ScalingSpec(),
    target_params: float | None = None,
    num_classes: int = 1000,
    coefficients: sc.Coefficients = PAPER,
) -> Solution:
    """Scale `base` along `scale` until it costs `target_macs` (or has `target_params`); the nearest achievable
    model (see `bracket` for the errors)."""
    below, above = bracket(target_macs, scale, base, target_params, num_classes, coefficients)
    if below is None or abs(above.deviation) <= abs(below.deviation):
        return above
    return below


def compound_target(
    base: sc.ScalingSpec = sc.ScalingSpec(),
    phi: float = 1.0,
    num_classes: int = 1000,
    coefficients: sc.Coefficients = PAPER,
) -> int:
    """MACs of the base compound-scaled by φ (scaling.compound: Table 7's budget is φ = 1 from B0)."""
    depth, width, px = _point(base.resolve(), "compound", phi, coefficients)
    return measure(depth, width, px, num_classes)[0]


def matched_budget(
    target_macs: float,
    scales: tuple[Dimension, ...] = DIMENSIONS,
    base: sc.ScalingSpec = sc.ScalingSpec(),
    tolerance: float = 0.01,
    num_classes: int = 1000,
    coefficients: sc.Coefficients = PAPER,
) -> tuple[int, list[Solution]]:
    """The budget nearest `target_macs` at which every dimension in `scales` lands within ±`tolerance` of it,
    and those solutions.

    Candidates are the MACs the dimensions can actually reach: starting from the target, every arm that misses
    proposes the two achievable models around it (`bracket`), nearest first, until one budget suits all arms.
    Raises ScalingError when no budget within `BUDGETS_TRIED` candidates does, or a target cannot be met at all.
    """
    tried: set[int] = set()
    queue: list[float] = [target_macs]
    while queue and len(tried) < BUDGETS_TRIED:
        queue.sort(key=lambda budget: abs(math.log(budget / target_macs)))
        budget = queue.pop(0)
        if round(budget) in tried:
            continue
        tried.add(round(budget))
        solutions = [solve(budget, s, base, num_classes=num_classes, coefficients=coefficients) for s in scales]
        missing = [s for s in solutions if abs(s.deviation) > tolerance]
        if not missing:
            return round(budget), solutions
        for s in missing:
            below, above = bracket(budget, s.scale, base, num_classes=num_classes, coefficients=coefficients)
            queue += [found.macs for found in (below, above) if found is not None and found.macs not in tried]
    raise sc.ScalingError(
        f"no budget near {target_macs:.4g} MACs lets {', '.join(scales)} all land within ±{tolerance:.0%} "
        f"({len(tried)} tried); choose another target or a base with finer steps (a larger resolution)"
    )


def parse_count(text: str) -> float:
    """'1.8G', '700M', '5.3e6' or '390000000' as a number (SI suffixes K, M, G, T)."""
    suffixes = {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    cleaned = text.strip().upper().removesuffix("MACS").removesuffix("FLOPS")
    factor = suffixes.get(cleaned[-1:], 1.0)
    number = cleaned[:-1] if cleaned[-1:] in suffixes else cleaned
    try:
        value = float(number) * factor
    except ValueError:
        raise sc.ScalingError(f"expected a count such as 1.8G, 700M or 5.3e6, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise sc.ScalingError(f"expected a positive count such as 1.8G, got {text!r}")
    return value
