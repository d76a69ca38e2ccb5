"""The study's plots, as PNG files and as TensorBoard figures in the study folder.

- accuracy vs MACs, vs params and vs train img/s, with the Pareto front (no other arm is both cheaper and more
  accurate; for img/s: faster and more accurate) drawn as a line;
- the marginal gain per doubling of MACs between consecutive arms by MACs (where returns diminish);
- the most cost-effective arm, marked on the MACs plot. Criterion: the largest accuracy gain over the cheapest
  finished arm per doubling of MACs, (acc - acc_cheapest) / log2(MACs / MACs_cheapest); the cheapest arm itself
  is the answer only when nothing pays for its cost.
Accuracy is best EMA top-1 where the run had EMA, else raw top-1 (study.Row.accuracy).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from effnet_lightning.study.main import Row

COSTS = (("macs", "MACs per image"), ("params", "parameters"), ("train_img_s", "train img/s (higher is better)"))


def pareto(points: list[tuple[float, float]], cheaper_is_lower: bool = True) -> list[int]:
    """Indices of the points no other point dominates (at most the cost, at least the accuracy, one strictly)."""
    front = []
    for i, (cost_i, acc_i) in enumerate(points):
        sign = 1 if cheaper_is_lower else -1
        dominated = any(
            sign * c <= sign * cost_i and a >= acc_i and (sign * c < sign * cost_i or a > acc_i)
            for j, (c, a) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return front


def marginal_gains(rows: list[Row]) -> list[tuple[str, float]]:
    """(arm, accuracy gained per doubling of MACs from the next cheaper arm), along the arms sorted by MACs."""
    done = sorted((r for r in rows if r.accuracy is not None), key=lambda r: r.macs)
    gains = []
    for prev, cur in zip(done, done[1:], strict=False):
        doublings = math.log2(cur.macs / prev.macs)
        if doublings > 0:
            gains.append((cur.arm, (cur.accuracy - prev.accuracy) / doublings))  # type: ignore[operator]
    return gains


def most_cost_effective(rows: list[Row]) -> Row | None:
    """The arm with the largest accuracy gain over the cheapest finished arm per doubling of MACs."""
    done = [r for r in rows if r.accuracy is not None]
    if not done:
        return None
    cheapest = min(done, key=lambda r: r.macs)
    gains = [
        ((r.accuracy - cheapest.accuracy) / math.log2(r.macs / cheapest.macs), r)  # type: ignore[operator]
        for r in done
        if r.macs > cheapest.macs
    ]
    best = max(gains, key=lambda pair: pair[0], default=(0.0, cheapest))
    return best[1] if best[0] > 0 else cheapest


def plot(folder: Path, rows: list[Row], kind: str) -> list[Path]:
    """Write the PNG files and the TensorBoard figures; returns the PNG paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from torch.utils.tensorboard import SummaryWriter

    done = [r for r in rows if r.accuracy is not None]
    written = []
    pick = most_cost_effective(done)
    with SummaryWriter(str(folder / "tensorboard")) as writer:
        for field, label in COSTS:
            points = [(getattr(r, field), r) for r in done if getattr(r, field) is not None]
            if not points:
                continue
            figure, axes = plt.subplots(figsize=(6, 4))
            xs, accs = [p[0] for p in points], [100 * p[1].accuracy for p in points]
            axes.scatter(xs, accs)
            for x, acc, (_, r) in zip(xs, accs, points, strict=True):
                axes.annotate(r.arm, (x, acc), fontsize=8)
            front = sorted(pareto(list(zip(xs, accs, strict=True)), cheaper_is_lower=field != "train_img_s"))
            front_xy = sorted((xs[i], accs[i]) for i in front)
            axes.plot([p[0] for p in front_xy], [p[1] for p in front_xy], "r--", label="Pareto front")
            if field == "macs" and pick is not None:
                axes.scatter([pick.macs], [100 * pick.accuracy], s=200, facecolors="none", edgecolors="g",
                             label=f"most cost-effective: {pick.arm}")  # fmt: skip
            axes.set_xscale("log")
            axes.set_xlabel(label)
            axes.set_ylabel("val top-1 % (EMA where present)")
            axes.set_title(f"{kind}: accuracy vs {field}")
            axes.legend(fontsize=8)
            path = folder / f"accuracy_vs_{field}.png"
            figure.savefig(path, dpi=100, bbox_inches="tight")
            writer.add_figure(f"study/accuracy_vs_{field}", figure)  # closes the figure
            written.append(path)
        gains = marginal_gains(done)
        if gains:
            figure, axes = plt.subplots(figsize=(6, 4))
            axes.bar([g[0] for g in gains], [100 * g[1] for g in gains])
            axes.set_ylabel("top-1 points per doubling of MACs")
            axes.set_title(f"{kind}: marginal gain per doubling of MACs (vs next cheaper arm)")
            path = folder / "marginal_gain.png"
            figure.savefig(path, dpi=100, bbox_inches="tight")
            writer.add_figure("study/marginal_gain", figure)
            written.append(path)
    if pick is not None:
        (folder / "most_cost_effective.txt").write_text(
            f"{pick.arm}: largest top-1 gain over the cheapest arm per doubling of MACs\n"
        )
    return written
