"""What a study's numbers say, and how sure: paired differences over seeds with confidence intervals, in words.

Seed k gives every arm the same initialisation seed and data order, so arms are compared seed by seed: the
difference of two arms is the mean of their per-seed differences, with the paired t-interval of that mean
(scipy.stats.ttest_rel). A difference is called a win or a loss only when its interval excludes 0; otherwise the
arms are "not distinguishable" at this number of seeds, whatever the means say. A comparison with an arm that did
not train or settle (trainability.py) says so and what it measures instead: never "better" or "worse".

A difference that is the same on every seed has no spread to build an interval from: it gets none (and no verdict),
unless it is 0 on every seed (identical arms), whose interval is [0, 0].

- table7: compound against each single dimension at each budget: "compound − depth = +1.3 points (95% CI +0.4 …
  +2.2, paired over 5 seeds): compound is better than depth-only scaling at this budget."
- family: the top-1 gain per doubling of MACs from each arm to the next larger one, with its interval. "Returns
  diminish from X" only where the gain per doubling after X is lower than before it with an interval below 0.
  The most cost-effective arm is the knee: walking up from the cheapest arm, the last arm reached by steps that
  each gain significantly; the first step whose interval includes 0 ends the walk.
- grid: the best point by mean top-1, and whether the runner-up is distinguishable from it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "CONFIDENCE",
    "COMPARISON_COLUMNS",
    "Comparison",
    "diminishing_returns",
    "family_gains",
    "knee",
    "paired",
    "points",
    "sentence",
    "trainability_sentence",
]

CONFIDENCE = 0.95  # of every interval
SAME = 1e-12  # differences closer than this are equal (top-1 is a ratio of counts: far coarser)
COMPARISON_COLUMNS = ("arm", "versus", "delta", "ci_low", "ci_high", "n", "significant", "doublings")
Scores = Mapping[int, float]  # seed -> top-1 in [0, 1]


@dataclass(frozen=True)
class Comparison:
    """`arm` minus `versus`, paired over the seeds both finished. Accuracies and differences in [0, 1] units."""

    arm: str
    versus: str
    delta: float  # mean of the per-seed differences
    ci_low: float  # CONFIDENCE interval of that mean (paired t); nan with fewer than 2 seeds
    ci_high: float
    n: int  # seeds paired
    doublings: float | None = None  # log2(MACs of arm / MACs of versus), for gains per doubling

    @property
    def significant(self) -> bool:
        """True exactly when the interval excludes 0 (never without an interval)."""
        return self.n >= 2 and (self.ci_low > 0 or self.ci_high < 0)

    def per_doubling(self) -> Comparison:
        """The same comparison divided by its doublings of MACs (interval scaled alike)."""
        assert self.doublings is not None and self.doublings > 0
        d = self.doublings
        return Comparison(self.arm, self.versus, self.delta / d, self.ci_low / d, self.ci_high / d, self.n, d)


def paired(arm: str, versus: str, a: Scores, b: Scores, doublings: float | None = None) -> Comparison:
    """`arm` − `versus` over the seeds both have; the paired t-interval (scipy.stats.ttest_rel)."""
    seeds = sorted(set(a) & set(b))
    differences = [a[s] - b[s] for s in seeds]
    if not differences:
        return Comparison(arm, versus, math.nan, math.nan, math.nan, 0, doublings)
    mean = sum(differences) / len(differences)
    if len(differences) < 2:
        return Comparison(arm, versus, mean, math.nan, math.nan, 1, doublings)
    if max(differences) - min(differences) < SAME:  # no spread between seeds: nothing to build an interval from
        if abs(mean) < SAME:  # identical on every seed: the difference is 0, exactly
            return Comparison(arm, versus, 0.0, 0.0, 0.0, len(differences), doublings)
        return Comparison(arm, versus, mean, math.nan, math.nan, len(differences), doublings)
    from scipy.stats import ttest_rel

    interval = ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).confidence_interval(CONFIDENCE)
    return Comparison(arm, versus, mean, float(interval.low), float(interval.high), len(differences), doublings)


def points(value: float) -> str:
    """A difference in [0, 1] units as signed top-1 points: +1.3."""
    return "n/a" if math.isnan(value) else f"{100 * value:+.1f}"


def sentence(
    c: Comparison,
    arm_words: str,
    versus_words: str,
    where: str,
    untrained: Mapping[str, str] | None = None,
    methods: Mapping[str, str] | None = None,
) -> str:
    """`arm − versus = +1.3 points (95% CI +0.4 … +2.2, paired over 5 seeds): A is better than B <where>.`

    `untrained`: arm -> why, for arms that did not train or settle (trainability.py): a comparison with one of them
    says what it measures instead, never better or worse."""
    if untrained and (c.arm in untrained or c.versus in untrained):
        return trainability_sentence(c, untrained, methods or {})
    if c.n < 2:
        return (
            f"{c.arm} − {c.versus} = {points(c.delta)} points from {c.n} seed(s): no interval, so no verdict "
            f"({arm_words} against {versus_words}); run --seeds 3 or more."
        )
    if math.isnan(c.ci_low):
        return (
            f"{c.arm} − {c.versus} = {points(c.delta)} points on every one of {c.n} seeds: no spread to build an "
            f"interval from, so {arm_words} is not called different from {versus_words} {where}; run more seeds."
        )
    if not c.significant:
        verdict = f"{arm_words} is not distinguishable from {versus_words} {where}"
    elif c.delta > 0:
        verdict = f"{arm_words} is better than {versus_words} {where}"
    else:
        verdict = f"{arm_words} is worse than {versus_words} {where}"
    return (
        f"{c.arm} − {c.versus} = {points(c.delta)} points ({CONFIDENCE:.0%} CI {points(c.ci_low)} … "
        f"{points(c.ci_high)}, paired over {c.n} seeds): {verdict}."
    )


def trainability_sentence(c: Comparison, untrained: Mapping[str, str], methods: Mapping[str, str]) -> str:
    """`compound − depth = +76.0 points (3 seeds, 95% CI ...): depth did not train or settle under this recipe
    (seed 0: did not train: final train loss 2.10, chance 2.30, ...): this comparison measures trainability, not
    scaling; try ...`"""
    from effnet_lightning.study.trainability import remedy

    names = [name for name in (c.versus, c.arm) if name in untrained]
    what = "; ".join(f"{name} did not train or settle under this recipe ({untrained[name]})" for name in names)
    interval = ""
    if c.n >= 2 and not math.isnan(c.ci_low):
        interval = f", {CONFIDENCE:.0%} CI {points(c.ci_low)} … {points(c.ci_high)}"
    return (
        f"{c.arm} − {c.versus} = {points(c.delta)} points ({c.n} seeds{interval}): {what}: this comparison measures "
        f"trainability, not scaling; {remedy(methods.get(names[0], ''))}."
    )


def family_gains(order: Sequence[tuple[str, int]], scores: Mapping[str, Scores]) -> list[Comparison]:
    """For arms (name, MACs) sorted by MACs: each arm against the next cheaper one, with its doublings of MACs."""
    gains = []
    for (cheaper, macs_lo), (arm, macs_hi) in zip(order, order[1:], strict=False):
        if arm in scores and cheaper in scores and macs_hi > macs_lo:
            gains.append(paired(arm, cheaper, scores[arm], scores[cheaper], math.log2(macs_hi / macs_lo)))
    return gains


def diminishing_returns(gains: Sequence[Comparison], scores: Mapping[str, Scores]) -> list[Comparison]:
    """For consecutive steps A→B→C: (gain per doubling B→C) − (gain per doubling A→B), paired over seeds, named
    after B. An interval below 0 says returns diminish from B."""
    changes = []
    for before, after in zip(gains, gains[1:], strict=False):
        if before.arm != after.versus:
            continue
        a, b, c = scores[before.versus], scores[before.arm], scores[after.arm]
        seeds = set(a) & set(b) & set(c)
        first = {s: (b[s] - a[s]) / before.doublings for s in seeds}  # type: ignore[operator]
        second = {s: (c[s] - b[s]) / after.doublings for s in seeds}  # type: ignore[operator]
        changes.append(paired(f"{after.versus}→{after.arm}", f"{before.versus}→{before.arm}", second, first))
    return changes


def knee(cheapest: str, gains: Sequence[Comparison]) -> str:
    """The last arm reached from the cheapest by steps (to the next larger arm) that each gain significantly."""
    reached = cheapest
    for step in gains:
        if step.versus != reached or not (step.significant and step.delta > 0):
            break
        reached = step.arm
    return reached
