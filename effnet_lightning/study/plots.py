"""The study's plots, as PNG files and as TensorBoard figures in the study folder; made to be read by eye.

- accuracy_by_arm.png: every arm's top-1, each seed a dot, the mean with ±1 sd (spread over seeds); arm names
  on the vertical axis, one line each, so no label runs into another.
- differences.png (table7): compound minus each single dimension, paired over seeds, with its 95% interval and
  the 0 line: the verdict at a glance.
- accuracy_vs_macs.png (family, and table7 with several budgets): top-1 against counted MACs per method, error
  bars ±1 sd over seeds (the paper's Figure 3/8 at matched cost).
- accuracy_vs_train_img_s.png and accuracy_vs_activations.png: top-1 against measured training img/s and against
  activations per image (pycls), error bars ±1 sd; a legend names each arm instead of labels at the points.
- marginal_gain.png (family only, where the arms differ in MACs): top-1 points per doubling of MACs from each
  arm to the next larger one, with the 95% interval. Arms at one budget have no doubling to divide by.
An arm that did not train or settle (results.csv `trained: no`) is drawn hollow and named so; a difference
involving one is grey and named "(trainability)", whatever its interval.
Axes use plain engineering labels (1.2 M, 150) on linear scales, a few ticks each.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from effnet_lightning.study import layout

if TYPE_CHECKING:
    from effnet_lightning.study.plan import Plan
    from effnet_lightning.study.results import ArmRow
    from effnet_lightning.study.verdict import Comparison

__all__ = ["plot"]

METHOD_COLOURS = {"baseline": "0.45", "depth": "C0", "width": "C1", "resolution": "C2", "compound": "C3"}
MARKERS = "osD^vP*Xhp<>"  # one per arm (few arms) or per method (many)
LEGEND_MAX = 12  # arms named in a legend; a larger study (a grid) leaves the points unnamed there
INCH_PER_ARM = 0.32  # accuracy_by_arm.png: height per arm, so that names never overlap
DPI = 110


def _figure(width: float = 6.4, height: float = 4.2) -> tuple[Any, Any]:
    from matplotlib.figure import Figure  # object-oriented: no pyplot state, no backend switch

    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.subplots()


def _ticks(axis: Any, engineering: bool = True) -> None:
    """At most ~5 ticks; counts in engineering units (1.2 M), rates as plain numbers (150)."""
    from matplotlib.ticker import EngFormatter, FormatStrFormatter, MaxNLocator

    axis.set_major_locator(MaxNLocator(nbins=5))
    axis.set_major_formatter(EngFormatter(sep=" ") if engineering else FormatStrFormatter("%g"))


def _colour(row: ArmRow) -> str:
    return METHOD_COLOURS.get(row.method, "C4")


def plot(
    folder: Path,
    plan: Plan,
    rows: Sequence[ArmRow],
    comparisons: Sequence[Comparison],
    scores: Mapping[str, Mapping[int, float]],
) -> list[Path]:
    """Write the PNG files and their TensorBoard figures; returns the PNG paths."""
    from torch.utils.tensorboard import SummaryWriter

    done = [r for r in rows if r.test_acc1_mean is not None]
    split = done[0].split if done else "test"
    figures: dict[str, Any] = {}
    if done:
        figures["accuracy_by_arm"] = _by_arm(done, scores, split, plan.kind)
        single = [c for c in comparisons if c.versus != "baseline" and plan.kind == "table7"]
        if single:
            figures["differences"] = _differences(single, split, {r.arm for r in rows if r.trained == "no"})
        if plan.kind == "family" or len(plan.budgets) > 1:
            figures["accuracy_vs_macs"] = _versus(done, "macs", "MACs per image", split, plan.kind, len(plan.budgets))
        if any(r.train_img_s for r in done):
            figures["accuracy_vs_train_img_s"] = _versus(
                done, "train_img_s", "train img/s (measured)", split, plan.kind, len(plan.budgets)
            )
        figures["accuracy_vs_activations"] = _versus(
            done, "activations", "activations per image", split, plan.kind, len(plan.budgets)
        )
        gains = [c for c in comparisons if c.doublings]
        if plan.kind == "family" and gains:
            figures["marginal_gain"] = _gains(gains)
    written = []
    with SummaryWriter(str(folder / layout.TENSORBOARD)) as writer:
        for name, figure in figures.items():
            path = layout.picture(folder, name)
            figure.savefig(path, dpi=DPI)
            writer.add_figure(f"study/{name}", figure)
            written.append(path)
    return written


def _by_arm(rows: Sequence[ArmRow], scores: Mapping[str, Mapping[int, float]], split: str, kind: str) -> Any:
    figure, axes = _figure(6.4, max(2.4, 1.2 + INCH_PER_ARM * len(rows)))
    ordered = list(reversed(rows))  # first row at the top
    for y, row in enumerate(ordered):
        seeds = list(scores.get(row.arm, {}).values())
        axes.scatter([100 * s for s in seeds], [y] * len(seeds), s=14, color=_colour(row), alpha=0.5, zorder=2)
        sd = 0.0 if row.test_acc1_sd is None else 100 * row.test_acc1_sd
        face = "white" if row.trained == "no" else _colour(row)  # hollow: did not train or settle
        axes.errorbar(100 * row.test_acc1_mean, y, xerr=sd, fmt="D", color=_colour(row), mfc=face, capsize=4, zorder=3)
    names = [f"{r.arm} (did not train or settle)" if r.trained == "no" else r.arm for r in ordered]
    axes.set_yticks(range(len(ordered)), names)
    axes.set_ylim(-0.7, len(ordered) - 0.3)
    axes.set_xlabel(f"{split} top-1 % (dots: seeds; diamond: mean ± 1 sd)")
    axes.set_title(f"{kind}: top-1 per arm, {max(r.n for r in rows)} seeds")
    axes.grid(axis="x", alpha=0.3)
    return figure


def _differences(comparisons: Sequence[Comparison], split: str, untrained: set[str]) -> Any:
    from effnet_lightning.study.verdict import CONFIDENCE

    figure, axes = _figure(6.4, max(2.4, 1.3 + 0.45 * len(comparisons)))
    ordered = list(reversed(comparisons))
    caveat = [bool({c.arm, c.versus} & untrained) for c in ordered]
    for y, c in enumerate(ordered):
        if c.n < 2 or math.isnan(c.ci_low):
            axes.plot([100 * c.delta], [y], "o", color="0.5")
            continue
        colour = "0.5" if not c.significant or caveat[y] else ("C2" if c.delta > 0 else "C3")
        axes.errorbar(
            100 * c.delta,
            y,
            xerr=[[100 * (c.delta - c.ci_low)], [100 * (c.ci_high - c.delta)]],
            fmt="o",
            color=colour,
            capsize=5,
        )
    axes.axvline(0, color="black", linewidth=0.8)
    labels = [
        f"{c.arm} − {c.versus}" + (" (trainability)" if bad else "") for c, bad in zip(ordered, caveat, strict=True)
    ]
    axes.set_yticks(range(len(ordered)), labels)
    axes.set_ylim(-0.7, len(ordered) - 0.3)
    axes.set_xlabel(
        f"{split} top-1 difference, points\n({CONFIDENCE:.0%} CI over paired seeds; grey: it includes 0,\n"
        "or an arm did not train)"
    )
    axes.set_title("compound against each single dimension")
    axes.grid(axis="x", alpha=0.3)
    return figure


def _versus(rows: Sequence[ArmRow], field: str, label: str, split: str, kind: str, budgets: int) -> Any:
    """Top-1 against one cost. A few arms: each its own marker in the legend. Many arms, or several budgets: one
    colour and marker per method. Family and several budgets: a line joins each method's arms in cost order."""
    figure, axes = _figure()
    points = sorted((r for r in rows if getattr(r, field)), key=lambda r: getattr(r, field))
    by_arm = len(points) <= LEGEND_MAX and budgets <= 1
    methods = list(dict.fromkeys(r.method for r in points if r.method != "baseline"))
    if field == "macs" and (kind == "family" or budgets > 1):  # the baseline starts every method's line
        base = [r for r in points if r.method == "baseline"]
        series = (
            {"family": points}
            if kind == "family"
            else {m: base + [r for r in points if r.method == m] for m in methods}
        )
        for name, line in series.items():
            axes.plot(
                [getattr(r, field) for r in line],
                [100 * r.test_acc1_mean for r in line],
                "-",
                alpha=0.5,
                color=METHOD_COLOURS.get(name, "0.5"),
                zorder=1,
            )
    named: set[str] = set()
    place = {r.arm: i for i, r in enumerate(rows)}  # an arm keeps its marker and colour in every plot
    for r in points:
        key = r.arm if by_arm else r.method
        index = place[r.arm] if by_arm else (methods.index(r.method) + 1 if r.method in methods else 0)
        colour = _colour(r) if kind == "table7" or not by_arm else f"C{place[r.arm] % 10}"
        sd = 0.0 if r.test_acc1_sd is None else 100 * r.test_acc1_sd
        show = key not in named and (by_arm or len(methods) > 1 or r.method == "baseline")
        axes.errorbar(
            getattr(r, field),
            100 * r.test_acc1_mean,
            yerr=sd,
            fmt=MARKERS[index % len(MARKERS)],
            color=colour,
            capsize=3,
            label=key if show else None,
            zorder=2,
        )
        named.add(key)
    if field == "macs" and points and getattr(points[-1], field) > 1.5 * getattr(points[0], field):
        from matplotlib.ticker import EngFormatter, LogLocator, NullFormatter

        axes.set_xscale("log")
        axes.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axes.xaxis.set_major_formatter(EngFormatter(sep=" "))
        axes.xaxis.set_minor_formatter(NullFormatter())
    else:
        _ticks(axes.xaxis, engineering=field != "train_img_s")
    axes.set_xlabel(label)
    axes.set_ylabel(f"{split} top-1 % (mean ± 1 sd)")
    axes.set_title(f"top-1 against {label}")
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8, loc="best")
    return figure


def _gains(gains: Sequence[Comparison]) -> Any:
    from effnet_lightning.study.verdict import CONFIDENCE

    figure, axes = _figure()
    per = [g.per_doubling() for g in gains]
    xs = range(len(per))
    lows = [100 * (p.delta - p.ci_low) if p.n >= 2 else 0.0 for p in per]
    highs = [100 * (p.ci_high - p.delta) if p.n >= 2 else 0.0 for p in per]
    axes.bar(
        xs,
        [100 * p.delta for p in per],
        yerr=[lows, highs],
        capsize=5,
        color=["C2" if p.significant and p.delta > 0 else "0.6" for p in per],
    )
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set_xticks(
        list(xs),
        [f"{g.versus}→{g.arm}" for g in gains],
        rotation=30 if len(gains) > 4 else 0,
        ha="right" if len(gains) > 4 else "center",
    )
    axes.set_ylabel("top-1 points per doubling of MACs")
    axes.set_title(f"gain per doubling from the next smaller arm ({CONFIDENCE:.0%} CI; green: above 0)")
    axes.grid(axis="y", alpha=0.3)
    return figure
