"""A study's tables, from the files its units and arms wrote so far (evaluation.py): rewritten after every unit, so
an interrupted study has its tables.

Files: results.csv (one row per arm: costs, test top-1 mean/sd over n seeds, wall time and device-hours),
runs.csv (one row per unit), comparisons.csv (verdict.py's paired differences) and results.md (report.py), which
opens with the verdict in words.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from effnet_lightning.study import layout
from effnet_lightning.study import trainability as tr
from effnet_lightning.study import verdict as vd
from effnet_lightning.study.evaluation import Trained
from effnet_lightning.study.plan import Arm, Plan
from effnet_lightning.study.report import judge, markdown

__all__ = ["ArmRow", "Tables", "collect", "scores_by_arm", "unit_status", "write_coefficients", "write_results"]

SECONDS_PER_HOUR = 3600
RESULT_FIELDS = ("selected_by", "val_score", "acc1", "acc5", "split", "epochs")  # result.json's, in runs.csv


@dataclass(frozen=True)
class ArmRow:
    """One line of results.csv. Accuracies in [0, 1] on `split`; None where nothing finished."""

    arm: str
    method: str
    budget: str
    status: str  # done, pending k/n, or failed (seed k: exit N)
    depth: float
    width: float
    resolution: int
    params: int
    macs: int
    target_macs: int | None
    macs_deviation: float | None  # macs / target_macs - 1
    activations: int
    precision: str
    channels_last: bool
    batch_size: int
    train_img_s: float | None
    infer_img_s: float | None
    peak_memory: int | None  # bytes
    n: int  # seeds evaluated
    test_acc1_mean: float | None
    test_acc1_sd: float | None  # sample standard deviation over the n seeds
    test_acc5_mean: float | None
    val_score_mean: float | None  # the selection metric at the selected checkpoints
    split: str  # "test", or "validation" (no test split: validation numbers, labelled as such)
    epochs: int | None  # validated epochs of the first seed
    wall_s: float | None  # fit seconds summed over seeds and resumes
    device_hours: float | None  # wall time x devices per arm
    phi: float | None
    alpha: float | None
    beta: float | None
    gamma: float | None
    error: str  # a measurement that failed
    trained: str  # "yes", "no" (a seed did not train or settle: trainability.py), "" before any seed finished
    untrained_why: str  # the flagged seeds' reasons, with their logged numbers


def unit_status(unit: Path) -> str:
    """done, pending, or failed (exit N) / failed (why it is not done)."""
    if (unit / layout.RESULT).is_file():
        return "done"
    if (unit / layout.FAILED).is_file():
        reason = (unit / layout.FAILED).read_text().strip()  # an exit code, or why the unit is not done
        return f"failed (exit {reason})" if reason.lstrip("-").isdigit() else f"failed ({reason})"
    return "pending"


def _wall(unit: Path) -> float | None:
    """The unit's fit seconds, summed over its fits (a resumed unit ran several)."""
    path = unit / layout.WALL
    return sum(float(w) for w in path.read_text().split()) if path.is_file() else None


def _arm_status(statuses: Sequence[tuple[int, str]], seeds: int) -> str:
    """done when every seed is, else the failed seeds' reasons, else how many are done."""
    failed = [
        f"seed {k}: {s.removeprefix('failed (').removesuffix(')')}" for k, s in statuses if s.startswith("failed")
    ]
    done = sum(s == "done" for _, s in statuses)
    if done == seeds:
        return "done"
    return f"failed ({'; '.join(failed)})" if failed else f"pending {done}/{seeds}"


def collect(folder: Path, plan: Plan, seeds: int, trained: Trained) -> tuple[list[ArmRow], list[dict[str, Any]]]:
    """Every arm's row and every unit's, from the files the study wrote so far."""
    rows, units = [], []
    for arm in plan.arms:
        results, walls, statuses, healths = [], [], [], {}
        for k in range(seeds):
            unit = layout.unit_folder(folder, arm.name, k)
            status = unit_status(unit)
            statuses.append((k, status))
            wall = _wall(unit)
            walls += [wall] if wall is not None else []
            result = json.loads((unit / layout.RESULT).read_text()) if status == "done" else None
            if result is not None:
                results.append(result)
                prefix = str(result.get("selected_by", "")).split("/")[0] + "/"
                healths[k] = tr.unit_health(unit, prefix if prefix.startswith("val") else "val/", trained.num_classes)
            seed = trained.base_seed + k
            numbers = {f: (result or {}).get(f) for f in RESULT_FIELDS}
            units.append({"arm": arm.name, "seed_index": k, "seed": seed, "status": status, "wall_s": wall, **numbers})
        rows.append(_arm_row(folder, arm, _arm_status(statuses, seeds), results, walls, healths, trained))
    return rows, units


def _arm_row(
    folder: Path,
    arm: Arm,
    status: str,
    results: Sequence[dict[str, Any]],
    walls: Sequence[float],
    healths: dict[int, tr.Health | None],
    trained: Trained,
) -> ArmRow:
    """The arm's line: its plan, its measured cost (cost.json) and its finished seeds' results."""
    cost_file = layout.arm_folder(folder, arm.name) / layout.COST
    cost = json.loads(cost_file.read_text()) if cost_file.is_file() else {}
    acc1 = [r["acc1"] for r in results]
    acc5 = [r["acc5"] for r in results if r.get("acc5") is not None]
    scores = [r["val_score"] for r in results if r.get("val_score") is not None]
    wall = sum(walls) if walls else None
    trained_flag, why = tr.arm_health(healths)
    return ArmRow(
        arm=arm.name,
        method=arm.method,
        budget=arm.budget,
        status=status,
        depth=arm.depth,
        width=arm.width,
        resolution=arm.resolution,
        params=arm.params,
        macs=arm.macs,
        target_macs=arm.target_macs,
        macs_deviation=arm.macs_deviation,
        activations=arm.activations,
        precision=cost.get("precision", trained.precision),
        channels_last=cost.get("channels_last", trained.channels_last),
        batch_size=cost.get("batch_size", trained.batch_size),
        train_img_s=cost.get("train_img_s"),
        infer_img_s=cost.get("infer_img_s"),
        peak_memory=cost.get("peak_memory"),
        n=len(acc1),
        test_acc1_mean=statistics.fmean(acc1) if acc1 else None,
        test_acc1_sd=statistics.stdev(acc1) if len(acc1) > 1 else None,
        test_acc5_mean=statistics.fmean(acc5) if acc5 else None,
        val_score_mean=statistics.fmean(scores) if scores else None,
        split=results[0]["split"] if results else ("test" if trained.has_test else "validation"),
        epochs=results[0].get("epochs") if results else None,
        wall_s=wall,
        device_hours=None if wall is None else wall * trained.devices / SECONDS_PER_HOUR,
        phi=arm.phi,
        alpha=arm.alpha,
        beta=arm.beta,
        gamma=arm.gamma,
        error=cost.get("error", ""),
        trained=trained_flag,
        untrained_why=why,
    )


def scores_by_arm(units: Sequence[dict[str, Any]]) -> dict[str, dict[int, float]]:
    """arm -> {seed index: top-1} of the finished units: what verdict.py pairs."""
    scores: dict[str, dict[int, float]] = {}
    for u in units:
        if u["status"] == "done":
            scores.setdefault(u["arm"], {})[u["seed_index"]] = u["acc1"]
    return scores


# ------------------------------------------------------------------------------------------------------ the files
def _csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    with open(path, "w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([["" if v is None else v for v in row] for row in rows])


@dataclass(frozen=True)
class Tables:
    rows: list[ArmRow]
    scores: dict[str, dict[int, float]]  # arm -> {seed index: top-1}
    comparisons: list[vd.Comparison]
    verdict: list[str]  # sentences


def write_results(folder: Path, plan: Plan, seeds: int, trained: Trained, command: str = "") -> Tables:
    """results.csv, runs.csv, comparisons.csv and results.md from what has finished."""
    rows, units = collect(folder, plan, seeds, trained)
    if plan.kind == "grid":
        rows = sorted(rows, key=lambda r: -(r.test_acc1_mean if r.test_acc1_mean is not None else -1.0))
    _csv(folder / layout.RESULTS, [f.name for f in fields(ArmRow)], [list(asdict(r).values()) for r in rows])
    unit_columns = list(units[0]) if units else []
    _csv(folder / layout.RUNS, unit_columns, [list(u.values()) for u in units])
    scores = scores_by_arm(units)
    comparisons, lines = judge(plan, rows, scores, trained)
    _csv(folder / layout.COMPARISONS, vd.COMPARISON_COLUMNS, [_comparison_row(c) for c in comparisons])
    (folder / layout.REPORT).write_text(markdown(plan, rows, comparisons, lines, seeds, trained, command))
    return Tables(rows, scores, comparisons, lines)


def _comparison_row(c: vd.Comparison) -> list[Any]:
    """One line of comparisons.csv, in vd.COMPARISON_COLUMNS' order; no interval (NaN) is an empty cell."""
    doublings = "" if c.doublings is None else round(c.doublings, 6)
    return [c.arm, c.versus, _num(c.delta), _num(c.ci_low), _num(c.ci_high), c.n, str(c.significant).lower(), doublings]


def _num(value: float) -> float | str:
    return "" if math.isnan(value) else round(value, 6)


def write_coefficients(folder: Path, rows: Sequence[ArmRow]) -> None:
    """coefficients.yaml: the best grid point's alpha, beta, gamma, for `family --phi ... --coefficients` (or
    `--model.scaling.alpha ... --model.scaling.beta ... --model.scaling.gamma ...`)."""
    best = next((r for r in rows if r.test_acc1_mean is not None), None)
    if best is None:
        return
    path = folder / layout.COEFFICIENTS
    lines = [
        f"# effnet study grid: the best point by mean top-1 ({best.arm}, {100 * best.test_acc1_mean:.1f}% over "
        f"{best.n} seed(s)); results.md says whether it is distinguishable from the runner-up.",
        f"# Use: effnet study family --config BASE.yaml --phi 0 1 2 --coefficients {path}",
        f"#  or: --model.scaling.alpha={best.alpha:g} --model.scaling.beta={best.beta:g} "
        f"--model.scaling.gamma={best.gamma:g}",
        f"alpha: {best.alpha:g}",
        f"beta: {best.beta:g}",
        f"gamma: {best.gamma:g}",
    ]
    path.write_text("\n".join(lines) + "\n")
