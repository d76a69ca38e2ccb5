"""The arms of a study, planned before anything trains: each a network (depth, width, resolution) at a counted cost.

- table7: the base, then depth-only, width-only, resolution-only and compound scaling, all at one budget. The
  budget starts at `--target-macs` (default: the base compound-scaled by φ = 1, the paper's Table 7) and moves
  to the nearest one at which every arm lands within ±MATCH_TOLERANCE of it (solve.matched_budget): resolution
  moves in steps of up to 10% and depth in steps of a block per stage, so a fixed target leaves some arm 4-9%
  off. `--budgets φ ...` (or several `--target-macs`) repeats the four arms at each budget: a scaling curve.
- family: `--variants b0 ... bk` (the official multipliers applied to the base, resolution in proportion) or
  `--phi` values (the compound rule from the base, with `--coefficients FILE` if given).
- grid: the paper's step 1. Each (α, β, γ) from `--grid` with α·β²·γ² within `--tolerance` of 2 is scaled to
  twice the base's counted MACs (φ solved per point, ±MATCH_TOLERANCE); a point that cannot get there is left
  out, and points that build the same network on the same feature maps run once (35 and 36 px give the same
  maps after the stride-2 stem). Where the points collapse to a few networks, the plan says that a grid search
  there cannot tell the coefficients apart.

Costs are flops.py's arithmetic (the counter `effnet scale` prints); activations are pycls's (conv outputs per
image). Pure arithmetic: planning a 75-point grid takes well under a second.
"""

from __future__ import annotations

import csv
import itertools
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from effnet_lightning.model import scaling as sc
from effnet_lightning.model.solve import DIMENSIONS, PAPER, Solution, compound_target, matched_budget, solve

__all__ = [
    "FLOPS_DOUBLING",
    "GRID_STEPS",
    "MATCH_TOLERANCE",
    "PLAN_COLUMNS",
    "Arm",
    "Budget",
    "Plan",
    "family",
    "grid",
    "table7",
    "write_plan",
]

MATCH_TOLERANCE = 0.01  # every arm of one budget within ±1% of its counted MACs
GRID_STEPS = (1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3, 1.35, 1.4)  # α, β, γ candidates: the paper's step 1 range
RESOLUTION_SEARCH = 0.03  # grid: whole-px resolutions within 3% of the rule's, for a point the rule leaves off
FEW_NETWORKS = 0.25  # grid: distinct networks at most this share of the points: the grid cannot resolve them
FLOPS_DOUBLING = 2.0  # α·β²·γ² ≈ 2: one unit of φ doubles the FLOPs (paper §3.3); the grid's cost ratio
PLAN_COLUMNS = (
    "arm",
    "depth",
    "width",
    "resolution",
    "params",
    "macs",
    "target_macs",
    "macs_deviation",
    "activations",
    "method",
    "budget",
    "phi",
    "alpha",
    "beta",
    "gamma",
    "same_as",
)


@dataclass(frozen=True)
class Arm:
    """One network of the study: absolute multipliers on B0 and the input side, as ScalingSpec takes them."""

    name: str  # unique: the arm's folder
    method: str  # baseline, depth, width, resolution, compound; a variant; phiX; a grid point
    depth: float
    width: float
    resolution: int  # px
    macs: int  # forward, one image (flops.cost, `num_classes` head)
    params: int
    activations: int  # conv and linear output elements per image (pycls)
    target_macs: int | None = None  # the budget this arm was solved for; None: not solved for one
    budget: str = ""  # the budget's label (table7 with several budgets)
    phi: float | None = None
    alpha: float | None = None  # grid and coefficient-file arms: the coefficients behind this arm
    beta: float | None = None
    gamma: float | None = None
    same_as: tuple[str, ...] = ()  # grid: other points that build this same network (run once, here)

    @property
    def macs_deviation(self) -> float | None:
        """Counted MACs over the budget, minus 1: -0.004 is 0.4% below it."""
        return None if self.target_macs is None else self.macs / self.target_macs - 1

    def overrides(self) -> list[str]:
        """`effnet fit` options that make the base config this arm."""
        return [
            "--model.scaling.variant=null",
            "--model.scaling.phi=null",
            f"--model.scaling.depth={self.depth!r}",
            f"--model.scaling.width={self.width!r}",
            f"--model.scaling.resolution={self.resolution}",
        ]


@dataclass(frozen=True)
class Budget:
    """A cost every arm of one table7 group is matched to."""

    label: str  # e.g. "phi1" or "macs1.2G"
    asked: int  # MACs the command asked for
    matched: int  # MACs every arm lands within ±MATCH_TOLERANCE of

    @property
    def moved(self) -> float:
        return self.matched / self.asked - 1

    def of_arm(self) -> dict[str, object]:
        """What an arm matched to this budget records of it."""
        return {"target_macs": self.matched, "budget": self.label}


@dataclass(frozen=True)
class Plan:
    kind: str
    arms: tuple[Arm, ...]
    budgets: tuple[Budget, ...] = ()
    notes: tuple[str, ...] = field(default=())  # what the plan changed or left out, one sentence each
    num_classes: int = 1000  # the classifier MACs and params were counted with


def _arm(name: str, method: str, depth: float, width: float, px: int, num_classes: int, **extra: object) -> Arm:
    from effnet_lightning.model.flops import cost
    from effnet_lightning.model.memory import check_size

    check_size(sc.Scaling(name, depth, width, px, sc.DROPOUT_MIN), num_classes)  # refuses what no device trains
    counted = cost(depth, width, px, num_classes)
    return Arm(name, method, depth, width, px, counted.macs, counted.params, counted.activations, **extra)  # type: ignore[arg-type]


def _solved(name: str, s: Solution, budget: Budget, num_classes: int) -> Arm:
    phi = s.multiplier if s.scale == "compound" else None
    return _arm(name, s.scale, s.depth, s.width, s.resolution, num_classes, phi=phi, **budget.of_arm())


def _human(macs: float) -> str:
    return f"{macs / 1e9:.4g}G" if macs >= 1e9 else f"{macs / 1e6:.4g}M"


def table7(
    base: sc.Scaling,
    num_classes: int = 1000,
    phis: list[float] | None = None,
    target_macs: list[float] | None = None,
) -> Plan:
    """The baseline, then depth, width, resolution and compound at each budget (default φ = 1 from the base)."""
    spec = base.as_spec()
    asked: list[tuple[str, float]] = [(f"macs{_human(t)}", t) for t in target_macs or []]
    if phis or not asked:
        asked += [(f"phi{phi:g}", compound_target(spec, phi, num_classes)) for phi in phis or [1.0]]
    arms = [_arm("baseline", "baseline", base.depth, base.width, base.resolution, num_classes)]
    budgets, notes = [], []
    for label, macs in asked:
        matched, solutions = matched_budget(macs, DIMENSIONS, spec, MATCH_TOLERANCE, num_classes)
        same = [b.label for b in budgets if b.matched == matched]
        if same:
            notes.append(
                f"budget {label} ({_human(macs)}) matches the same MACs as {same[0]} ({_human(matched)}): "
                "run once, as that budget"
            )
            continue
        budget = Budget(label, round(macs), matched)
        budgets.append(budget)
        if matched != budget.asked:
            notes.append(
                f"budget {label}: asked {_human(macs)} MACs, matched {_human(matched)} ({budget.moved:+.1%}), the "
                f"nearest budget at which depth, width, resolution and compound all land within "
                f"±{MATCH_TOLERANCE:.0%}"
            )
        for s in solutions:
            arms.append(_solved(f"{label}-{s.scale}", s, budget, num_classes))
    if len(budgets) == 1:  # one budget: the arms are simply depth, width, resolution, compound
        arms = [replace(a, name=a.method) for a in arms]
    return Plan("table7", tuple(arms), tuple(budgets), tuple(notes), num_classes)


def family(
    base: sc.Scaling,
    num_classes: int = 1000,
    variants: list[str] | None = None,
    phis: list[float] | None = None,
    coefficients: sc.Coefficients = PAPER,
) -> Plan:
    """Official variants applied to the base (resolution in proportion to B0's 224 px), or the compound rule."""
    arms = []
    for name in variants or []:
        v = sc.official(name)
        px = sc.round_resolution(base.resolution * v.resolution / sc.BASE_RESOLUTION)
        arms.append(_arm(v.name, v.name, base.depth * v.depth, base.width * v.width, px, num_classes))
    c = coefficients
    for phi in phis or []:
        s = sc.compound(phi, c.alpha, c.beta, c.gamma, base.resolution, base.depth, base.width)
        arms.append(_arm(s.name, "compound", s.depth, s.width, s.resolution, num_classes, phi=phi, **asdict(c)))
    return Plan("family", tuple(arms), num_classes=num_classes)


def grid(
    base: sc.Scaling,
    num_classes: int = 1000,
    values: tuple[float, ...] = GRID_STEPS,
    tolerance: float = 0.05,
) -> Plan:
    """Every (α, β, γ) of `values`³ with α·β²·γ² within `tolerance` of 2, scaled to 2x the base's counted MACs."""
    from effnet_lightning.model.flops import stem_side
    from effnet_lightning.model.network import architecture

    spec = base.as_spec()
    target = FLOPS_DOUBLING * _arm("base", "base", base.depth, base.width, base.resolution, num_classes).macs
    budget = Budget("2x", round(target), round(target))
    points = [
        (a, b, g)
        for a, b, g in itertools.product(values, repeat=3)
        if abs(sc.Coefficients(a, b, g).flops_growth - FLOPS_DOUBLING) <= tolerance * FLOPS_DOUBLING
    ]
    kept: dict[tuple, Arm] = {}
    missed, adjusted, merged = [], [], 0
    for a, b, g in points:
        name = f"a{a:g}-b{b:g}-g{g:g}"
        c = sc.Coefficients(a, b, g)
        s = solve(target, "compound", spec, num_classes=num_classes, coefficients=c)
        if abs(s.deviation) > MATCH_TOLERANCE:
            near = _nearest_at_cost(target, base, s.multiplier, c, num_classes)
            if near is None:
                missed.append(f"{name} ({s.deviation:+.1%})")
                continue
            adjusted.append(
                f"{name} (width {near.width / (base.width * sc.compound_factors(s.multiplier, c)[1]) - 1:+.1%}, "
                f"{near.resolution} px)"
            )
            s = replace(near, scale="compound", multiplier=s.multiplier)
        key = (architecture(s.depth, s.width), stem_side(s.resolution))  # the network, and the maps it runs on
        if key in kept:
            merged += 1
            same = name if s.resolution == kept[key].resolution else f"{name}@{s.resolution}px"
            kept[key] = replace(kept[key], same_as=(*kept[key].same_as, same))
            continue
        at = {"phi": s.multiplier, **budget.of_arm(), **asdict(c)}
        kept[key] = _arm(name, "grid", s.depth, s.width, s.resolution, num_classes, **at)
    notes = [
        f"{len(points)} points have alpha*beta^2*gamma^2 within {tolerance:.0%} of 2; each is scaled to 2x the "
        f"base's counted MACs ({_human(target)}): phi solved per point on the rule"
    ]
    if adjusted:
        notes.append(
            f"{len(adjusted)} points miss ±{MATCH_TOLERANCE:.0%} on the rule alone (depth adds a block per stage, "
            "resolution a pixel per stride-32 stage at once): their width, the finest dimension, absorbs the step, "
            f"at the whole-px resolution within {RESOLUTION_SEARCH:.0%} of the rule's that needs the least: "
            + ", ".join(adjusted)
        )
    if missed:
        notes.append(f"{len(missed)} cannot land within ±{MATCH_TOLERANCE:.0%} and are left out: " + ", ".join(missed))
    if merged:
        notes.append(
            f"{merged} build the same network on the same feature maps as another point (resolutions with one stem "
            "output side give the same maps) and run once with it (same_as in plan.csv)"
        )
    if points and len(kept) <= len(points) * FEW_NETWORKS:
        notes.append(
            f"the {len(points)} points build only {len(kept)} distinct networks: at this base, neighbouring "
            "coefficients round to the same blocks, channels and feature maps, so a grid search here cannot tell "
            "them apart; a larger base (phi, resolution) lets each step of the grid change the network"
        )
    return Plan("grid", tuple(kept.values()), (budget,), tuple(notes), num_classes)


def _nearest_at_cost(
    target: float, base: sc.Scaling, phi: float, c: sc.Coefficients, num_classes: int
) -> Solution | None:
    """The network at `target` ±MATCH_TOLERANCE nearest the rule's continuous point (α^φ, β^φ, base·γ^φ): depth
    as the rule rounds it, a whole-px resolution within RESOLUTION_SEARCH of the rule's, and the width solved for
    the target. Nearest in cost terms: 2·|log width ratio| + 2·|log resolution ratio| (MACs ∝ w²·r²)."""
    d, w, r = sc.compound_factors(phi, c)
    depth, width, side = base.depth * d, base.width * w, base.resolution * r
    found: list[tuple[float, Solution]] = []
    for px in range(max(8, math.floor(side * (1 - RESOLUTION_SEARCH))), math.ceil(side * (1 + RESOLUTION_SEARCH)) + 1):
        try:
            s = solve(target, "width", sc.ScalingSpec(depth=depth, width=width, resolution=px), num_classes=num_classes)
        except sc.ScalingError:  # this resolution alone is past the target, or beyond the guard
            continue
        if abs(s.deviation) <= MATCH_TOLERANCE:
            found.append((2 * abs(math.log(s.width / width)) + 2 * abs(math.log(px / side)), s))
    return min(found, key=lambda pair: pair[0])[1] if found else None


def plan_rows(plan: Plan) -> list[dict[str, object]]:
    """plan.csv's rows: PLAN_COLUMNS of every arm, plain numbers (None as empty)."""
    rows = []
    for arm in plan.arms:
        values = {c: getattr(arm, "name" if c == "arm" else c) for c in PLAN_COLUMNS}
        values["macs_deviation"] = None if arm.macs_deviation is None else round(arm.macs_deviation, 6)
        values["same_as"] = " ".join(arm.same_as)
        rows.append({k: "" if v is None else v for k, v in values.items()})
    return rows


def write_plan(plan: Plan, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=PLAN_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(plan_rows(plan))
