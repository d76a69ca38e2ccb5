"""Whether an arm trained, read from what its fits logged: scaling is compared only between arms that trained.

Between an arm that trained and one that did not, a difference in top-1 measures how fast each network trains
under the recipe, not what its scaling buys. Three rules, each on one seed's logged curves (the fit's TensorBoard
events); an arm is flagged when any of its seeds is. BENCHMARKS.md ("Flagging arms that did not train") has the
curves the thresholds were set from.

- **did not train**: the train loss of the last epoch (mean of its logged steps) came less than a quarter of the way
  from chance to the floor. Chance is ln C, the loss of a uniform prediction whatever the label smoothing; the
  floor is the entropy of the smoothed target, the lowest loss label smoothing ε allows.
- **unstable**: after the LR warm-up, the train loss (mean of `WINDOW` consecutive logged steps) rose more than 10%
  above chance: the optimizer threw away what the network had learnt.
- **not settled**: the selected weights' validation loss rose by more than half in the last epoch.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from effnet_lightning.study import layout

__all__ = [
    "ABOVE_CHANCE",
    "LEARNT_FRACTION",
    "VAL_RISE",
    "WINDOW",
    "Curves",
    "Health",
    "arm_health",
    "chance_loss",
    "floor_loss",
    "judge",
    "read_curves",
    "remedy",
    "unit_health",
]

LEARNT_FRACTION = 0.25  # of the way from chance to the floor the last epoch's train loss must have come
ABOVE_CHANCE = 1.10  # a post-warm-up train loss above chance x this is an excursion
VAL_RISE = 1.5  # last validation loss / the one before above this: still rising steeply
WINDOW = 3  # logged train-loss values averaged for the excursion rule (single batches are noisy)


def chance_loss(num_classes: int) -> float:
    """Cross-entropy of a uniform prediction, with or without label smoothing: ln C."""
    return math.log(num_classes)


def floor_loss(num_classes: int, label_smoothing: float) -> float:
    """The lowest cross-entropy against label-smoothed targets: the targets' own entropy (0 without smoothing)."""
    if label_smoothing <= 0:
        return 0.0
    on = 1.0 - label_smoothing + label_smoothing / num_classes  # the true class's target probability
    off = label_smoothing / num_classes
    return -(on * math.log(on) + (num_classes - 1) * off * math.log(off))


@dataclass(frozen=True)
class Curves:
    """What one fit logged: (step, train loss) pairs, the epoch of each, and one validation loss per epoch."""

    train_loss: Sequence[tuple[int, float]]  # train/loss at its logged steps, in step order
    train_epoch: Sequence[int]  # the epoch of each of those steps
    val_loss: Sequence[float]  # the selected weights' validation loss, one per validated epoch
    steps_per_epoch: float  # optimizer updates per epoch


@dataclass(frozen=True)
class Health:
    """One seed's verdict on its own training: `trained` False with the reasons, in words with their numbers."""

    trained: bool
    reasons: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"


def judge(curves: Curves, num_classes: int, label_smoothing: float, warmup_epochs: float) -> Health:
    """The three rules (module docstring) on one fit's curves."""
    chance, floor = chance_loss(num_classes), floor_loss(num_classes, label_smoothing)
    reasons = []
    last_epoch = max(curves.train_epoch, default=None)
    last = [loss for (_, loss), epoch in zip(curves.train_loss, curves.train_epoch, strict=True) if epoch == last_epoch]
    if last:
        final = statistics.fmean(last)
        if final > chance - LEARNT_FRACTION * (chance - floor):
            reasons.append(f"did not train: final train loss {final:.2f}, chance {chance:.2f}, floor {floor:.2f}")
    after = [(s, loss) for s, loss in curves.train_loss if s >= warmup_epochs * curves.steps_per_epoch]
    values = [loss for _, loss in after]
    windows = [(after[i][0], statistics.fmean(values[i : i + WINDOW])) for i in range(len(after) - WINDOW + 1)]
    if windows:
        step, worst = max(windows, key=lambda w: w[1])
        if worst > ABOVE_CHANCE * chance:
            reasons.append(f"unstable: train loss {worst:.2f} at step {step} after warm-up, above chance {chance:.2f}")
    if len(curves.val_loss) >= 2 and curves.val_loss[-1] > VAL_RISE * curves.val_loss[-2]:
        reasons.append(
            f"not settled: validation loss rose from {curves.val_loss[-2]:.3g} to {curves.val_loss[-1]:.3g} in the "
            "last epoch"
        )
    return Health(not reasons, tuple(reasons))


def read_curves(unit: Path, val_prefix: str) -> Curves | None:
    """The curves of a unit's fit from its TensorBoard events (every version_* of a resumed fit, in order);
    None when it logged no train loss."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from effnet_lightning.train.run_layout import VERSION_GLOB

    train: dict[int, float] = {}
    epochs: dict[int, int] = {}
    val: dict[int, float] = {}
    for run in sorted(unit.glob(VERSION_GLOB)):
        events = EventAccumulator(str(run), size_guidance={"scalars": 0})  # 0: keep every value
        events.Reload()
        tags = set(events.Tags()["scalars"])
        if "train/loss" in tags:
            train |= {e.step: e.value for e in events.Scalars("train/loss")}
        if "epoch" in tags:
            epochs |= {e.step: int(e.value) for e in events.Scalars("epoch")}
        tag = f"{val_prefix}loss" if f"{val_prefix}loss" in tags else "val/loss"
        if tag in tags:
            val |= {e.step: e.value for e in events.Scalars(tag)}
    if not train:
        return None
    steps = sorted(train)
    epoch_of = [epochs.get(s, _nearest(epochs, s)) for s in steps]
    validated = sorted(val)
    per_epoch = validated[0] + 1 if validated else steps[-1] + 1  # validation logs at the epoch's last step
    return Curves([(s, train[s]) for s in steps], epoch_of, [val[s] for s in validated], float(per_epoch))


def _nearest(by_step: dict[int, int], step: int) -> int:
    before = [s for s in by_step if s <= step]
    return by_step[max(before)] if before else 0


def unit_health(unit: Path, val_prefix: str, num_classes: int) -> Health | None:
    """A finished unit's Health, kept in its folder once computed (`trained.json`, newer than its result.json)."""
    cached, result = unit / layout.HEALTH, unit / layout.RESULT
    if cached.is_file() and result.is_file() and cached.stat().st_mtime >= result.stat().st_mtime:
        data = json.loads(cached.read_text())
        return Health(bool(data["trained"]), tuple(data["reasons"]))
    curves = read_curves(unit, val_prefix)
    if curves is None:
        return None
    hparams = _hparams(unit)
    health = judge(
        curves, num_classes, float(hparams.get("label_smoothing", 0.0)), float(hparams.get("warmup_epochs", 0.0))
    )
    cached.write_text(health.to_json())
    return health


def _hparams(unit: Path) -> dict:
    """The module's hyperparameters as the fit saved them (the newest version_*'s hparams.yaml)."""
    import yaml

    from effnet_lightning.train.run_layout import VERSION_GLOB

    files = sorted(unit.glob(f"{VERSION_GLOB}/hparams.yaml"))
    return (yaml.safe_load(files[-1].read_text()) or {}) if files else {}


def arm_health(healths: dict[int, Health | None]) -> tuple[str, str]:
    """An arm's `trained` ("yes", "no", or "" before any seed finished) and why: each flagged seed's reasons."""
    known = {k: h for k, h in healths.items() if h is not None}
    if not known:
        return "", ""
    flagged = {k: h for k, h in known.items() if not h.trained}
    why = "; ".join(f"seed {k}: {', '.join(h.reasons)}" for k, h in sorted(flagged.items()))
    return ("no", why) if flagged else ("yes", "")


def remedy(method: str) -> str:
    """What a user can change so that the arm trains."""
    deep = " or, for a deep arm on small maps, a larger base resolution" if method in ("depth", "compound") else ""
    return f"try more epochs, a lower model.lr{deep}"
