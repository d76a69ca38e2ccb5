"""What a study records per unit (arm x seed) and per arm: the test evaluation, the measured cost, the failures.

Per unit, once its fit finished: the checkpoint validation selected (the `checkpoint:` ModelCheckpoint's best,
as the unit's last.ckpt records it) is evaluated on the datamodule's test split with the trained config
(`Trainer.test`, so `--trainer.limit_test_batches` applies) and written to `<arm>/seed<k>/result.json`.
Validation only selects. A datamodule without a test split is evaluated on its validation images, and every
table says so. A unit that failed gets `failed` (its exit code, or why it is not done) and `error.log` (its
traceback, or the code and the end of its output). Per arm, once: train and inference img/s and peak memory
from `effnet benchmark`'s bare step at the arm's own precision, memory format and batch size on this machine's
device (`<arm>/cost.json`); a failure there is recorded in the arm's row and the study goes on.
"""

from __future__ import annotations

import json
import traceback
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from effnet_lightning.study import layout
from effnet_lightning.study.plan import Arm
from effnet_lightning.train.run_layout import VERSION_GLOB, last_checkpoints

__all__ = [
    "NeverValidated",
    "Trained",
    "UnitResult",
    "bench_setting",
    "best_checkpoint",
    "clear_failure",
    "evaluate_unit",
    "has_test_split",
    "measure_arm",
    "record_failure",
    "record_not_validated",
    "record_output",
    "record_wall",
    "validated_epochs",
]

BENCH_WARMUP = 1  # untimed benchmark steps before the timed ones


@dataclass(frozen=True)
class Trained:
    """How the arms train, read from the base config and overrides by fit's own parser (launch.check_fit)."""

    precision: str  # Lightning's, resolved ("32-true" for `auto` on a CPU)
    channels_last: bool
    grad_checkpointing: bool
    batch_size: int  # per device
    device: str  # "cuda" or "cpu"
    devices: int  # per arm: trainer devices x nodes
    has_test: bool  # the datamodule has a test split of its own
    num_classes: int  # the datamodule's
    base_seed: int  # seed k trains with base_seed + k


@dataclass(frozen=True)
class UnitResult:
    """result.json of one arm x seed: the selected checkpoint's numbers."""

    seed: int  # the seed_everything value it trained with
    selected_by: str  # the monitored metric (e.g. val_ema/acc1); "last" where nothing was monitored
    val_score: float | None  # the monitored metric at the selected checkpoint
    acc1: float  # top-1 of the selected weights (EMA where selected on val_ema) on the evaluation split
    acc5: float | None
    split: str  # "test", or "validation" for a datamodule without a test split
    checkpoint: str
    epochs: int | None


# ------------------------------------------------------------------------------------------------------ per unit
def best_checkpoint(unit: Path) -> tuple[Path, str, float | None]:
    """(checkpoint, monitored metric, its score) that validation selected, from the newest last.ckpt's
    ModelCheckpoint state; last.ckpt itself where nothing was monitored."""
    from effnet_lightning.train.checkpoint_format import load_checkpoint, selected_checkpoint

    lasts = last_checkpoints(unit, VERSION_GLOB)
    if not lasts:
        raise FileNotFoundError(f"{unit} has no version_*/checkpoints/last.ckpt")
    last = lasts[-1]
    selected = selected_checkpoint(load_checkpoint(last))
    if selected is None:
        return last, "last", None
    path = selected.path
    if not path.is_file():  # the study folder moved since: the same file beside last.ckpt
        path = last.parent / path.name
    return path, selected.monitor, selected.score


class NeverValidated(Exception):
    """A unit's fit finished, validation was on, and none ran: nothing selected a checkpoint, so it is not done."""


def evaluate_unit(unit: Path, cli_args: list[str], seed: int) -> UnitResult:
    """Evaluate the unit's selected checkpoint with the trained config (fit's options in `cli_args`, without
    the subcommand) on the test split; writes and returns its result.json."""
    from effnet_lightning.assembly.in_process import build
    from effnet_lightning.assembly.run import PYTREE_MODULE

    checkpoint, monitor, score = best_checkpoint(unit)
    # the best-k folder as the fit recorded it: ModelCheckpoint then restores its state without a warning
    test_root = unit / layout.TEST_DIR
    cli = build([*cli_args, f"--trainer.default_root_dir={test_root}", f"--checkpoint.dirpath={checkpoint.parent}"])
    if cli.trainer.limit_val_batches and validated_epochs(unit) is None:
        raise NeverValidated(
            f"its fit ended without a validation (no val/acc1 under {unit}), so no checkpoint was selected; not "
            "evaluated. Let the fit validate at least once (trainer.check_val_every_n_epoch at most max_epochs), "
            f"or, for a fit resumed past its validation by an older version, delete {unit} and run the study again."
        )
    with warnings.catch_warnings():  # the same FutureWarning of Lightning's own helper that `effnet fit` ignores
        warnings.filterwarnings("ignore", category=FutureWarning, module=PYTREE_MODULE)  # private: see run.py
        tested = cli.trainer.test(
            cli.model, datamodule=cli.datamodule, ckpt_path=str(checkpoint), verbose=False, weights_only=True
        )
    (metrics,) = tested
    prefix = "test_ema/" if monitor.startswith("val_ema/") and "test_ema/acc1" in metrics else "test/"
    if monitor == "last" and "test_ema/acc1" in metrics:
        prefix = "test_ema/"  # no selection: the EMA weights, as `effnet predict` uses them
    result = UnitResult(
        seed=seed,
        selected_by=monitor,
        val_score=score,
        acc1=float(metrics[f"{prefix}acc1"]),
        acc5=float(metrics[f"{prefix}acc5"]) if f"{prefix}acc5" in metrics else None,
        split="validation" if _test_is_validation(cli.datamodule) else "test",
        checkpoint=str(checkpoint),
        epochs=validated_epochs(unit),
    )
    (unit / layout.RESULT).write_text(json.dumps(asdict(result), indent=1) + "\n")
    return result


def _test_is_validation(datamodule: Any) -> bool:
    from lightning.pytorch import LightningDataModule

    if hasattr(datamodule, "test_is_validation"):
        return bool(datamodule.test_is_validation())
    return type(datamodule).test_dataloader is LightningDataModule.test_dataloader


def has_test_split(datamodule: Any) -> bool:
    return not _test_is_validation(datamodule)


def validated_epochs(unit: Path) -> int | None:
    """How many validations the unit's fit logged (val/acc1 in every version_*); None for none."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    count = 0
    for run in sorted(unit.glob(VERSION_GLOB)):
        events = EventAccumulator(str(run))
        events.Reload()
        if "val/acc1" in events.Tags()["scalars"]:
            count += len(events.Scalars("val/acc1"))
    return count or None


def record_failure(unit: Path, code: int, error: BaseException | None = None, what: str = "fit") -> None:
    """`failed` holds the exit code; error.log the traceback (or the code, where the failure printed its own line)."""
    unit.mkdir(parents=True, exist_ok=True)
    (unit / layout.FAILED).write_text(f"{code}\n")
    text = "".join(traceback.format_exception(error)) if error is not None else f"{what} exited with code {code}\n"
    (unit / layout.ERROR_LOG).write_text(f"{what}: {text}")


def record_output(unit: Path, output: str) -> None:
    """The end of a failed fit's own output, after the exit code in error.log."""
    with open(unit / layout.ERROR_LOG, "a") as log:
        log.write(output)


def record_not_validated(unit: Path, error: NeverValidated) -> None:
    """The unit is flagged, not done: `failed` says why (its status: "failed (never validated)")."""
    (unit / layout.FAILED).write_text("never validated\n")
    (unit / layout.ERROR_LOG).write_text(f"test: {error}\n")


def clear_failure(unit: Path) -> None:
    (unit / layout.FAILED).unlink(missing_ok=True)


def record_wall(unit: Path, seconds: float) -> None:
    """One more line of wall_s.txt: a resumed unit's fits add up."""
    with open(unit / layout.WALL, "a") as out:
        out.write(f"{seconds:.3f}\n")


# ------------------------------------------------------------------------------------------------------- per arm
def measure_arm(folder: Path, arm: Arm, trained: Trained, bench_steps: int) -> dict[str, Any]:
    """Train/inference img/s and peak memory of the arm at its training setting, once per arm (cost.json)."""
    path = layout.arm_folder(folder, arm.name) / layout.COST
    if path.is_file():
        return json.loads(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "precision": trained.precision,
        "channels_last": trained.channels_last,
        "batch_size": trained.batch_size,
        "device": trained.device,
    }
    if bench_steps > 0:
        from effnet_lightning.model import scaling as sc
        from effnet_lightning.tools.measure import run

        try:
            bench = run(sc.ScalingSpec.of(arm), bench_setting(trained, bench_steps))
            record |= {
                "train_img_s": bench.train_img_s,
                "infer_img_s": bench.infer_img_s,
                "peak_memory": bench.peak_memory,
                "memory_source": bench.memory_source,
            }
        except Exception as err:  # a fault while measuring is the arm's row, not the study's end
            record["error"] = f"{type(err).__name__}: {err}"
            error_log = layout.arm_folder(folder, arm.name) / layout.ERROR_LOG
            error_log.write_text("measure: " + "".join(traceback.format_exception(err)))
    path.write_text(json.dumps(record, indent=1) + "\n")
    return record


def bench_setting(trained: Trained, steps: int) -> Any:
    """`effnet benchmark`'s setting for an arm trained as `trained`: `steps` timed steps after BENCH_WARMUP."""
    from effnet_lightning.tools.measure import Setting

    return Setting(
        batch_size=trained.batch_size,
        device=trained.device,
        precision=trained.precision,
        channels_last=trained.channels_last,
        grad_checkpointing=trained.grad_checkpointing,
        steps=steps,
        warmup=BENCH_WARMUP,
        num_classes=trained.num_classes,
    )
