"""Compound scaling arithmetic (Tan & Le 2019, arXiv 1905.11946 §3.3). Pure numbers: no torch here.

Two families live side by side and must not be confused:
- `compound(phi)` is the paper's rule d = α^φ, w = β^φ, r = γ^φ for any real φ (negative and fractional too);
- `official(variant)` is the hand-set B0-B7 table of the released models, which is close to, but not equal to,
  the rule (B7 has depth 3.1, while 1.2^7 = 3.58).
`explicit(...)` covers single-dimension scaling and arbitrary triples (the paper's Table 7 ablation).

`compound` is the one place the rule's arithmetic is written: `ScalingSpec(phi=...)`, `effnet scale --phi`, the
budget solver (solve.py) and `effnet study` all call it, so φ = 1 from B0 is the same network everywhere (256 px).
Every size a user can ask for that cannot be built raises `ScalingError`: a `UserError`, one line, exit 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from effnet_lightning.errors import UserError

__all__ = [
    "ALPHA",
    "BASE_RESOLUTION",
    "BETA",
    "GAMMA",
    "OFFICIAL_VARIANTS",
    "PHI_MAX_OFFICIAL",
    "RESOLUTION_MULTIPLE",
    "Coefficients",
    "Multipliers",
    "Scaling",
    "ScalingError",
    "ScalingSpec",
    "compound",
    "compound_factors",
    "dropout_for_phi",
    "explicit",
    "official",
    "official_variant",
    "round_resolution",
]

ALPHA = 1.2  # depth coefficient, paper §3.3 grid search on B0
BETA = 1.1  # width coefficient, paper §3.3
GAMMA = 1.15  # resolution coefficient, paper §3.3
BASE_RESOLUTION = 224  # px, B0's input size (paper Table 1)
RESOLUTION_MULTIPLE = 4  # px; every official resolution (224 ... 600) is a multiple of 4

Variant = Literal["b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7"]  # the released family (official table below)

DROPOUT_MIN, DROPOUT_MAX = 0.2, 0.5  # B0 and B7 dropout in the official table
PHI_MAX_OFFICIAL = 7  # B7
MULTIPLIER_TOLERANCE = 1e-6  # multipliers equal to an official variant's up to float noise (a YAML round trip)


class ScalingError(UserError, ValueError):
    """A size that cannot be built or asked for (an unknown variant, a multiplier <= 0, φ = nan, an unreachable
    budget). A ValueError too, for callers that validate numbers generically (jsonargparse, argparse types)."""


@dataclass(frozen=True)
class Scaling:
    """Multipliers relative to B0 and what they imply for the network and its input."""

    name: str
    depth: float  # multiplier on every stage's block repeats (rounded up per stage)
    width: float  # multiplier on every layer's channels (rounded to multiples of 8)
    resolution: int  # px, square input side
    dropout: float  # classifier dropout rate
    phi: float | None = None  # compound coefficient, None for explicit (non-compound) scaling

    def as_spec(self) -> ScalingSpec:
        """The explicit spec that builds this network again: its multipliers and input side."""
        return ScalingSpec.of(self)


class Multipliers(Protocol):
    """Anything sized by multipliers on B0 and an input side: a Scaling, a study arm, a solver's solution."""

    depth: float
    width: float
    resolution: int


@dataclass(frozen=True)
class Coefficients:
    """α, β, γ of the compound rule; the paper constrains α·β²·γ² ≈ 2."""

    alpha: float = ALPHA
    beta: float = BETA
    gamma: float = GAMMA

    def __post_init__(self) -> None:
        for name in ("alpha", "beta", "gamma"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 1.0):
                raise ScalingError(f"{name} must be a finite number >= 1 (the paper's α, β, γ ≥ 1), got {value}")

    @property
    def flops_growth(self) -> float:
        """Factor by which FLOPs grow per unit of φ: FLOPs ∝ d·w²·r², so α·β²·γ² (≈ 1.92 for the defaults)."""
        return self.alpha * self.beta**2 * self.gamma**2


def round_resolution(pixels: float) -> int:
    """Nearest multiple of RESOLUTION_MULTIPLE (ties go up), never below it.

    The official table uses multiples of 4 (224, 240, 260, 300, 380, 456, 528, 600), so we keep that grid;
    e.g. 224·1.15 = 257.6 → 256 and 224·1.15⁻² = 169.4 → 168.
    """
    if not (math.isfinite(pixels) and pixels > 0):
        raise ScalingError(f"resolution must be a positive number of pixels, got {pixels}")
    steps = math.floor(pixels / RESOLUTION_MULTIPLE + 0.5)
    return max(RESOLUTION_MULTIPLE, steps * RESOLUTION_MULTIPLE)


def dropout_for_phi(phi: float) -> float:
    """Interpolate the official 0.2 (B0) → 0.5 (B7) dropout linearly in φ, clamped to that range."""
    rate = DROPOUT_MIN + (DROPOUT_MAX - DROPOUT_MIN) * phi / PHI_MAX_OFFICIAL
    return min(DROPOUT_MAX, max(DROPOUT_MIN, rate))


def compound_factors(phi: float, coefficients: Coefficients) -> tuple[float, float, float]:
    """α^φ, β^φ, γ^φ: the rule's multipliers on depth, width and resolution, before any rounding. The one place
    the rule's arithmetic is written; `compound` rounds what it returns."""
    if not math.isfinite(phi):
        raise ScalingError(f"phi must be a finite real number, got {phi}")
    c = coefficients
    try:
        return c.alpha**phi, c.beta**phi, c.gamma**phi
    except OverflowError:  # e.g. 1.2 ** 1e308: no float holds it
        raise ScalingError(f"phi={phi:g} scales depth, width and resolution beyond any number a float holds") from None


def compound(
    phi: float,
    alpha: float = ALPHA,
    beta: float = BETA,
    gamma: float = GAMMA,
    base_resolution: int = BASE_RESOLUTION,
    base_depth: float = 1.0,
    base_width: float = 1.0,
) -> Scaling:
    """The paper's rule from a base: depth base_depth·α^φ, width base_width·β^φ, resolution base_resolution·γ^φ
    rounded by `round_resolution`. The base is B0 (1, 1, 224 px) unless given, e.g. a study's base config."""
    if base_resolution <= 0:
        raise ScalingError(f"base_resolution must be a positive number of pixels, got {base_resolution}")
    depth, width, side = compound_factors(phi, Coefficients(alpha, beta, gamma))
    return Scaling(
        name=f"phi{phi:g}",
        depth=base_depth * depth,
        width=base_width * width,
        resolution=round_resolution(base_resolution * side),
        dropout=dropout_for_phi(phi),
        phi=float(phi),
    )


def explicit(
    depth: float = 1.0,
    width: float = 1.0,
    resolution: float = 1.0,
    base_resolution: int = BASE_RESOLUTION,
    dropout: float = DROPOUT_MIN,
) -> Scaling:
    """Any (depth, width, resolution) multipliers on B0, e.g. Table 7's d=4, w=2, r=2 or (1.4, 1.2, 1.3)."""
    for name, value in (("depth", depth), ("width", width), ("resolution", resolution)):
        if not (math.isfinite(value) and value > 0):
            raise ScalingError(f"{name} multiplier must be a positive number, got {value}")
    return Scaling(
        name=f"d{depth:g}-w{width:g}-r{resolution:g}",
        depth=float(depth),
        width=float(width),
        resolution=round_resolution(base_resolution * resolution),
        dropout=dropout,
    )


# The released models' hand-set table: (width, depth, resolution px, dropout).
# Source: tensorflow/tpu efficientnet_builder.py `efficientnet_params`, identical in timm's _gen_efficientnet.
_OFFICIAL_TABLE = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
}
OFFICIAL_VARIANTS = tuple(_OFFICIAL_TABLE)


def official(variant: str) -> Scaling:
    """The released B-family member `variant` ('b0'..'b7'; 'efficientnet_b3' and 'B3' are accepted too)."""
    key = variant.lower().removeprefix("efficientnet_").removeprefix("efficientnet-")
    if key not in _OFFICIAL_TABLE:
        raise ScalingError(f"unknown variant {variant!r}; choose one of {', '.join(OFFICIAL_VARIANTS)}")
    width, depth, resolution, dropout = _OFFICIAL_TABLE[key]
    return Scaling(
        name=key,
        depth=depth,
        width=width,
        resolution=resolution,
        dropout=dropout,
        phi=float(OFFICIAL_VARIANTS.index(key)),
    )


def official_variant(sized: Multipliers) -> Variant | None:
    """The official variant whose depth and width multipliers `sized` has (its resolution may differ), else None:
    such a network is timm's `efficientnet_bN`, layer for layer (model/network.py)."""
    for variant in OFFICIAL_VARIANTS:
        width, depth, _, _ = _OFFICIAL_TABLE[variant]
        if abs(depth - sized.depth) < MULTIPLIER_TOLERANCE and abs(width - sized.width) < MULTIPLIER_TOLERANCE:
            return variant
    return None


# Paper Table 7: scaling B0 by one dimension or compound, all at about 1.8B FLOPs.
TABLE7 = {
    "depth": explicit(depth=4.0),
    "width": explicit(width=2.0),
    "resolution": explicit(resolution=2.0),
    "compound": explicit(depth=1.4, width=1.2, resolution=1.3),
}


@dataclass(frozen=True)
class ScalingSpec:
    """How a config asks for a network size: exactly one of a variant, φ, or depth/width multipliers.

    This is the one typed definition of the scaling arguments: the `model.scaling:` section of a config, the
    argument of `create_model`, and what the CLI links into the datamodule's resolution. `resolution` (px)
    overrides the input size the scaling implies, whichever way was used; nothing given means B0.

    Args:
        variant: an official model, b0..b7 (the paper's hand-set table).
        phi: compound coefficient φ: depth α^φ, width β^φ, resolution base_resolution·γ^φ; may be negative.
        depth: explicit depth multiplier on B0 (width left out: 1.0).
        width: explicit width multiplier on B0 (depth left out: 1.0).
        resolution: input side in px; overrides the size the variant, φ or multipliers imply.
        alpha: depth base of the compound rule; paper 1.2.
        beta: width base of the compound rule; paper 1.1.
        gamma: resolution base of the compound rule; paper 1.15.
        base_resolution: the input side in px that φ = 0 (or multiplier 1) stands for; B0's 224.
    """

    variant: Variant | None = None
    phi: float | None = None  # compound coefficient: depth α^φ, width β^φ, resolution base·γ^φ
    depth: float | None = None  # explicit multipliers on B0 (either may be left out: 1.0)
    width: float | None = None
    resolution: int | None = None  # px; overrides the implied input size
    alpha: float = ALPHA
    beta: float = BETA
    gamma: float = GAMMA
    base_resolution: int = BASE_RESOLUTION  # px, the resolution φ = 0 (or multiplier 1) stands for

    @classmethod
    def of(cls, sized: Multipliers) -> ScalingSpec:
        """The explicit spec (depth, width, resolution) of a network sized by multipliers: the one way a study arm,
        a solution or a resolved Scaling is turned back into the config's form."""
        return cls(depth=sized.depth, width=sized.width, resolution=sized.resolution)

    def resolve(self) -> Scaling:
        """The multipliers and input size this spec stands for; a one-sentence ScalingError if it is ambiguous or
        cannot be built (a multiplier of 0 is refused, never read as "left out")."""
        explicit_given = self.depth is not None or self.width is not None
        asked = {"variant": self.variant is not None, "phi": self.phi is not None, "depth/width": explicit_given}
        ways = [name for name, given in asked.items() if given]
        if len(ways) > 1:
            raise ScalingError(f"give only one of variant, phi or depth/width multipliers, got {' and '.join(ways)}")
        if self.variant is not None:
            result = official(self.variant)
        elif self.phi is not None:
            result = compound(self.phi, self.alpha, self.beta, self.gamma, self.base_resolution)
        elif explicit_given:
            depth = 1.0 if self.depth is None else self.depth  # 0 is refused by explicit(), not taken for 1.0
            width = 1.0 if self.width is None else self.width
            result = explicit(depth=depth, width=width, base_resolution=self.base_resolution)
        else:
            result = official("b0")
        if self.resolution is None:
            return result
        if self.resolution <= 0:
            raise ScalingError(f"resolution must be a positive number of pixels, got {self.resolution}")
        return replace(result, resolution=int(self.resolution))
