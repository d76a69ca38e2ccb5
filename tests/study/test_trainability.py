"""trainability.py: the rules that flag an arm that did not train or settle, on synthetic logged curves."""

from __future__ import annotations

import math

import pytest

from effnet_lightning.study import trainability as tr
from effnet_lightning.study import verdict as vd

CLASSES, SMOOTHING, WARMUP = 10, 0.1, 1.0
CHANCE = math.log(CLASSES)  # 2.303


def curves(train: list[float], val: list[float], per_epoch: int = 10) -> tr.Curves:
    """`train`: one logged loss per step 0, 1, ...; `per_epoch` steps per epoch."""
    return tr.Curves([(s, v) for s, v in enumerate(train)], [s // per_epoch for s in range(len(train))], val, per_epoch)


def test_the_label_smoothing_floor_is_the_entropy_of_the_smoothed_target() -> None:
    assert tr.floor_loss(CLASSES, 0.0) == 0.0
    assert tr.floor_loss(CLASSES, SMOOTHING) == pytest.approx(0.5003, abs=1e-4)  # 0.91 on the class, 0.01 off
    assert tr.chance_loss(CLASSES) == pytest.approx(CHANCE)


@pytest.mark.parametrize(
    ("train", "val", "reason"),
    [
        ([2.3] * 20 + [2.12] * 10, [2.3, 2.2, 2.1], "did not train: final train loss 2.12"),  # the depth arm's
        ([2.3] * 10 + [1.0, 2.9, 2.8, 2.7, 1.0] + [0.7] * 15, [1.0, 0.9, 0.8], "unstable: train loss 2.80"),
        ([2.3] * 10 + [0.8] * 20, [0.5, 0.6, 1.2], "not settled: validation loss rose from 0.6 to 1.2"),
    ],
)
def test_each_rule_flags_its_curve(train: list[float], val: list[float], reason: str) -> None:
    health = tr.judge(curves(train, val), CLASSES, SMOOTHING, WARMUP)
    assert not health.trained
    assert [r for r in health.reasons if r.startswith(reason)], health.reasons


def test_a_run_that_learnt_is_not_flagged_and_warm_up_excursions_do_not_count() -> None:
    train = [2.3, 3.0, 3.1, 2.9, 2.6, 2.2, 2.0, 1.8, 1.6, 1.5] + [1.2] * 10 + [0.9] * 10  # above chance in warm-up
    health = tr.judge(curves(train, [1.6, 1.1, 0.8]), CLASSES, SMOOTHING, WARMUP)
    assert health == tr.Health(True, ())


def test_a_comparison_with_an_untrained_arm_says_what_it_measures_instead_of_better() -> None:
    c = vd.Comparison("compound", "depth", 0.76, 0.73, 0.79, 3)
    why = {"depth": "seed 0: did not train: final train loss 2.10, chance 2.30, floor 0.50"}
    text = vd.sentence(c, "compound", "depth-only scaling", "at this budget", why, {"depth": "depth"})
    assert text.startswith("compound − depth = +76.0 points (3 seeds, 95% CI +73.0 … +79.0): depth did not train or")
    assert "(seed 0: did not train: final train loss 2.10" in text and "measures trainability, not scaling" in text
    assert "larger base resolution" in text
    assert "better" not in text and "worse" not in text
    assert tr.arm_health({0: tr.Health(True, ()), 1: tr.Health(False, ("did not train: x",))}) == (
        "no",
        "seed 1: did not train: x",
    )
