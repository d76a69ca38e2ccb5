"""verdict.py on fixed numbers: a clear win, a clear loss, an overlap, identical arms, family gains and the knee."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from effnet_lightning.study import verdict as vd

BASE = {0: 0.70, 1: 0.72, 2: 0.71, 3: 0.69, 4: 0.73}


def shifted(by: dict[int, float]) -> dict[int, float]:
    return {seed: BASE[seed] + by[seed] for seed in BASE}


def test_a_clear_win() -> None:
    c = vd.paired("compound", "depth", shifted({0: 0.012, 1: 0.014, 2: 0.011, 3: 0.015, 4: 0.013}), BASE)
    assert c.delta == pytest.approx(0.013) and c.n == 5
    low, high = stats.t.interval(0.95, 4, loc=0.013, scale=stats.sem([0.012, 0.014, 0.011, 0.015, 0.013]))
    assert (c.ci_low, c.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert c.significant and c.ci_low > 0
    words = vd.sentence(c, "compound", "depth-only scaling", "at this budget")
    assert words.startswith("compound − depth = +1.3 points (95% CI +1.1 … +1.5, paired over 5 seeds)")
    assert words.endswith("compound is better than depth-only scaling at this budget.")


def test_a_clear_loss() -> None:
    c = vd.paired("compound", "width", shifted({0: -0.02, 1: -0.025, 2: -0.018, 3: -0.022, 4: -0.021}), BASE)
    assert c.significant and c.ci_high < 0
    assert "compound is worse than width-only scaling" in vd.sentence(c, "compound", "width-only scaling", "here")


def test_an_overlap_is_never_called_a_win() -> None:
    """Mean +0.4 points, but the seeds disagree in sign: the interval includes 0."""
    c = vd.paired("compound", "resolution", shifted({0: 0.02, 1: -0.01, 2: 0.015, 3: -0.012, 4: 0.007}), BASE)
    assert c.delta > 0 and c.ci_low < 0 < c.ci_high and not c.significant
    assert "is not distinguishable from resolution-only scaling" in vd.sentence(
        c, "compound", "resolution-only scaling", ""
    )


def test_identical_arms_are_not_distinguishable_with_a_zero_interval() -> None:
    c = vd.paired("a", "b", BASE, dict(BASE))
    assert (c.delta, c.ci_low, c.ci_high, c.significant) == (0.0, 0.0, 0.0, False)
    assert "a is not distinguishable from b" in vd.sentence(c, "a", "b", "at this budget")


def test_a_constant_difference_has_no_interval_and_no_verdict() -> None:
    """The same +1 point on every seed: no spread to estimate, so neither a degenerate [1, 1] nor a win."""
    c = vd.paired("a", "b", shifted(dict.fromkeys(BASE, 0.01)), BASE)
    assert c.delta == pytest.approx(0.01) and math.isnan(c.ci_low) and not c.significant
    assert "no spread" in vd.sentence(c, "a", "b", "")


def test_one_seed_gives_no_verdict() -> None:
    c = vd.paired("a", "b", {0: 0.8}, {0: 0.7, 1: 0.7})
    assert c.n == 1 and not c.significant and "no interval" in vd.sentence(c, "a", "b", "")


def test_family_gains_diminishing_returns_and_the_knee() -> None:
    """b0 → b1 gains ~4 points per doubling on every seed, b1 → b2 ~0.5 with mixed signs, b2 → b3 ~0."""
    scores = {
        "b0": {0: 0.60, 1: 0.61, 2: 0.59},
        "b1": {0: 0.64, 1: 0.655, 2: 0.63},  # +4.0, +4.5, +4.0 over one doubling
        "b2": {0: 0.65, 1: 0.65, 2: 0.64},  # +1.0, -0.5, +1.0
        "b3": {0: 0.645, 1: 0.655, 2: 0.64},
    }
    order = [("b0", 100), ("b1", 200), ("b2", 400), ("b3", 800)]
    gains = vd.family_gains(order, scores)
    assert [(g.arm, g.versus, g.doublings) for g in gains] == [("b1", "b0", 1.0), ("b2", "b1", 1.0), ("b3", "b2", 1.0)]
    assert gains[0].significant and not gains[1].significant
    changes = vd.diminishing_returns(gains, scores)
    assert changes[0].arm == "b1→b2" and changes[0].significant and changes[0].delta < 0  # diminish from b1
    assert vd.knee("b0", gains) == "b1"
    assert vd.knee("b0", gains[1:]) == "b0"  # the walk starts at the cheapest: nothing pays, the cheapest


def test_gain_per_doubling_scales_the_interval() -> None:
    c = vd.paired("big", "small", {0: 0.7, 1: 0.75}, {0: 0.6, 1: 0.62}, doublings=2.0)
    per = c.per_doubling()
    assert (per.delta, per.ci_low, per.ci_high) == pytest.approx((c.delta / 2, c.ci_low / 2, c.ci_high / 2))


def test_a_table7_verdict_on_fixed_numbers() -> None:
    """report.judge on a planned table7: one sentence per single dimension, identical arms not distinguishable."""
    from effnet_lightning.model import scaling as sc
    from effnet_lightning.study.evaluation import Trained
    from effnet_lightning.study.plan import table7
    from effnet_lightning.study.report import judge

    plan = table7(sc.ScalingSpec(phi=-4.0, resolution=32).resolve(), num_classes=10)
    scores = {
        "baseline": BASE,
        "depth": shifted({0: -0.03, 1: -0.032, 2: -0.028, 3: -0.031, 4: -0.029}),
        "width": dict(BASE),  # the same accuracy as compound on every seed
        "resolution": shifted({0: 0.02, 1: 0.025, 2: 0.018, 3: 0.022, 4: 0.021}),
        "compound": dict(BASE),
    }
    trained = Trained("32-true", False, False, 32, "cpu", 1, True, 10, 0)
    comparisons, lines = judge(plan, [], scores, trained)
    assert lines[0].endswith("compound is better than depth-only scaling at this budget.")
    assert lines[1] == (
        "compound − width = +0.0 points (95% CI +0.0 … +0.0, paired over 5 seeds): compound is not distinguishable "
        "from width-only scaling at this budget."
    )
    assert lines[2].endswith("compound is worse than resolution-only scaling at this budget.")
    assert [(c.arm, c.versus, c.significant) for c in comparisons[:3]] == [
        ("compound", "depth", True),
        ("compound", "width", False),
        ("compound", "resolution", True),
    ]
