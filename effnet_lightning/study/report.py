"""The verdict in words and results.md: what a study's tables say, worded so that nothing is called a win that its
paired interval does not support (verdict.py computes the intervals).

results.md opens with the verdict, then the arms, the arms that did not train or settle, the comparisons and
how to read the numbers. Memory in decimal units (memory.human_bytes), as every other command prints it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from effnet_lightning.study import trainability as tr
from effnet_lightning.study import verdict as vd

if TYPE_CHECKING:
    from effnet_lightning.study.evaluation import Trained
    from effnet_lightning.study.plan import Plan
    from effnet_lightning.study.results import ArmRow

__all__ = ["judge", "markdown"]


def judge(
    plan: Plan, rows: Sequence[ArmRow], scores: dict[str, dict[int, float]], trained: Trained
) -> tuple[list[vd.Comparison], list[str]]:
    """The comparisons this kind of study makes, and the verdict in sentences (verdict.py)."""
    split = "test" if trained.has_test else "validation"
    untrained = {r.arm: r.untrained_why for r in rows if r.trained == "no"}
    methods = {a.name: a.method for a in plan.arms}
    comparisons, lines = [], []
    if plan.kind == "table7":
        for budget in plan.budgets:
            arms = {a.method: a.name for a in plan.arms if a.budget == budget.label}
            where = f"at {_human(budget.matched)} MACs" if len(plan.budgets) > 1 else "at this budget"
            for method in ("depth", "width", "resolution"):
                if arms.get("compound") in scores and arms.get(method) in scores:
                    c = vd.paired(arms["compound"], arms[method], scores[arms["compound"]], scores[arms[method]])
                    comparisons.append(c)
                    lines.append(vd.sentence(c, "compound", f"{method}-only scaling", where, untrained, methods))
            for method in ("depth", "width", "resolution", "compound"):  # context: every arm against the base
                if arms.get(method) in scores and "baseline" in scores:
                    comparisons.append(vd.paired(arms[method], "baseline", scores[arms[method]], scores["baseline"]))
    elif plan.kind == "family":
        order = sorted(((a.name, a.macs) for a in plan.arms if a.name in scores), key=lambda p: p[1])
        gains = vd.family_gains(order, scores)
        comparisons += gains
        for g in gains:
            pd = g.per_doubling()
            if g.arm in untrained or g.versus in untrained:
                lines.append(vd.trainability_sentence(g, untrained, methods))
                continue
            lines.append(
                f"{g.arm} over {g.versus}: {vd.points(pd.delta)} top-1 points per doubling of MACs "
                f"({vd.CONFIDENCE:.0%} CI {vd.points(pd.ci_low)} … {vd.points(pd.ci_high)}, {g.n} seeds, "
                f"{g.doublings:.2f} doublings)" + ("" if g.significant else ": not distinguishable from no gain")
            )
        changes = vd.diminishing_returns(gains, scores)
        falling = [c for c in changes if c.significant and c.delta < 0]
        for c in falling:
            lines.append(
                f"Returns diminish from {c.versus.split('→')[1]}: the gain per doubling falls by "
                f"{vd.points(-c.delta)} points ({vd.CONFIDENCE:.0%} CI {vd.points(-c.ci_high)} … "
                f"{vd.points(-c.ci_low)}) from {c.versus} to {c.arm}."
            )
        if changes and not falling:
            lines.append("The intervals do not show diminishing returns at these sizes and seeds.")
        if order:
            pick = vd.knee(order[0][0], gains)
            lines.append(
                f"Most cost-effective: {pick}. Criterion: walking up from the cheapest arm ({order[0][0]}), the last "
                "arm reached by steps that each gain top-1 significantly (interval above 0); the first step whose "
                "interval includes 0 ends the walk."
            )
    elif plan.kind == "grid" and rows and rows[0].test_acc1_mean is not None:
        best = rows[0]
        lines.append(
            f"Best point: {best.arm} (alpha {best.alpha:g}, beta {best.beta:g}, gamma {best.gamma:g}), "
            f"{split} top-1 {100 * best.test_acc1_mean:.1f}% over {best.n} seed(s)."
        )
        if len(rows) > 1 and rows[1].arm in scores and best.arm in scores:
            c = vd.paired(best.arm, rows[1].arm, scores[best.arm], scores[rows[1].arm])
            comparisons.append(c)
            lines.append(
                vd.sentence(c, best.arm, f"the runner-up {rows[1].arm}", "at 2x the base's MACs", untrained, methods)
            )
    return comparisons, lines


def _human(macs: float) -> str:
    return f"{macs / 1e9:.3g}G" if macs >= 1e9 else f"{macs / 1e6:.3g}M"


def markdown(
    plan: Plan,
    rows: Sequence[ArmRow],
    comparisons: Sequence[vd.Comparison],
    lines: Sequence[str],
    seeds: int,
    trained: Trained,
    command: str,
) -> str:
    """results.md: the verdict in words first, then the arms, the comparisons and what the numbers mean."""
    from effnet_lightning.model.memory import human_bytes

    split = "test" if trained.has_test else "validation"
    out = [f"# effnet study {plan.kind}", ""]
    if command:
        out += [f"`{command}`", ""]
    out += ["## Verdict", ""]
    if not trained.has_test:
        out += ["**No test split: these are validation numbers (the split that also selected the checkpoints).**", ""]
    out += [*(f"- {line}" for line in lines)] or ["- Not enough finished seeds for a verdict yet."]
    out += ["", "## Arms", ""]
    out += [
        f"| arm | status | trained | depth | width | res | params | MACs | target | deviation | act/img | "
        f"train img/s | peak mem | {split} top-1 % (mean ± sd) | n | device-h |",
        "|" + "---|" * 16,
    ]
    for r in rows:
        acc = "" if r.test_acc1_mean is None else f"{100 * r.test_acc1_mean:.1f}"
        if r.test_acc1_sd is not None:
            acc += f" ± {100 * r.test_acc1_sd:.1f}"
        out.append(
            f"| {r.arm} | {r.status} | {r.trained} | {r.depth:.3g} | {r.width:.3g} | {r.resolution} | "
            f"{r.params / 1e6:.3g}M | "
            f"{_human(r.macs)} | {'' if r.target_macs is None else _human(r.target_macs)} | "
            f"{'' if r.macs_deviation is None else f'{r.macs_deviation:+.2%}'} | {r.activations / 1e6:.3g}M | "
            f"{'' if r.train_img_s is None else f'{r.train_img_s:.0f}'} | "
            f"{'' if r.peak_memory is None else human_bytes(r.peak_memory)} | {acc} | {r.n} | "
            f"{'' if r.device_hours is None else f'{r.device_hours:.3g}'} |"
        )
    flagged = [r for r in rows if r.trained == "no"]
    if flagged:
        out += ["", "## Arms that did not train or settle", ""]
        out += [
            f"- **{r.arm}** (trained: no): {r.untrained_why}. Its comparisons measure trainability under this "
            f"recipe, not scaling: {tr.remedy(r.method)}."
            for r in flagged
        ]
    if comparisons:
        out += ["", "## Comparisons (top-1 points, paired over seeds)", ""]
        out += [f"| arm | versus | delta | {vd.CONFIDENCE:.0%} CI | n | significant |", "|---|---|---|---|---|---|"]
        for c in comparisons:
            caveat = " (trainability)" if {c.arm, c.versus} & {r.arm for r in flagged} else ""
            out.append(
                f"| {c.arm} | {c.versus} | {vd.points(c.delta)} | {vd.points(c.ci_low)} … "
                f"{vd.points(c.ci_high)} | {c.n} | {'yes' if c.significant else 'no'}{caveat} |"
            )
    out += [
        "",
        "## How to read this",
        "",
        f"- Top-1 is on the {split} split, of the checkpoint validation selected (the config's `checkpoint:` "
        "monitor), with the EMA weights where that monitor is val_ema/*.",
        f"- Seeds: {seeds} per arm (seed_everything {trained.base_seed} + k: the same initialisation seed and data "
        "order for every arm). Intervals: paired t over seeds (scipy.stats); a difference whose interval includes "
        "0 is not called a win.",
        f"- MACs and params: counted by arithmetic with a {plan.num_classes}-class head (--num-classes; flops.py, "
        "as `effnet scale` counts); deviation = MACs / target − 1. act/img: conv and linear output elements per "
        "image (pycls).",
        f"- train img/s and peak memory: `effnet benchmark`'s bare step at {trained.precision}, channels_last "
        f"{'on' if trained.channels_last else 'off'}, batch {trained.batch_size}, on {trained.device}. "
        "device-h: fit wall time x devices, summed over seeds.",
        f"- trained: no where a seed's logged curves show it did not train (last epoch's train loss less than "
        f"{tr.LEARNT_FRACTION:.0%} of the way from chance ln C to the label-smoothing floor), was unstable (train "
        f"loss above {tr.ABOVE_CHANCE:.2f} x chance after warm-up) or had not settled (validation loss up more than "
        f"{tr.VAL_RISE:g}x in the last epoch). Comparisons with such an arm get no better/worse.",
    ]
    out += [f"- {note}" for note in plan.notes]
    return "\n".join(out) + "\n"
