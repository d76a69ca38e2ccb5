"""last.ckpt written after a validation carries the best-k state of that validation, not of the one before; a
stop between the end of a validated training batch and the end of its validation loses no validation."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
from callbacks_testkit import TinyClassifier, image_loader, make_trainer
from interrupts import SignalAt, SignalInValidation
from lightning.pytorch.callbacks import ModelCheckpoint

from effnet_lightning.callbacks import LastCheckpoint
from effnet_lightning.train import signals
from effnet_lightning.train.checkpoint_format import load_checkpoint

STEPS_PER_EPOCH = 4


@pytest.mark.parametrize(
    "val_check_interval",
    [1.0, 2],  # at epoch end (ModelCheckpoint decides in on_train_epoch_end), every 2 steps (in on_validation_end)
)
def test_last_checkpoint_holds_the_best_k_state_of_the_last_validation(
    tmp_path: Path, val_check_interval: float
) -> None:
    best = ModelCheckpoint(monitor="step", mode="max")  # every validation is a new best: the state always moves
    last = LastCheckpoint(every_minutes=0)
    trainer = make_trainer(
        tmp_path,
        [best, last],  # the order of the CLI (train/lightning_cli.py)
        enable_checkpointing=True,
        max_epochs=2,
        limit_train_batches=STEPS_PER_EPOCH,
        limit_val_batches=1,
        val_check_interval=val_check_interval,
    )
    trainer.fit(TinyClassifier(), image_loader(8 * STEPS_PER_EPOCH, 2), image_loader(2, 2))

    saved = load_checkpoint(last.path)
    state = saved["callbacks"][best.state_key]
    assert saved["global_step"] == trainer.global_step == 2 * STEPS_PER_EPOCH
    assert state["best_model_path"] == best.best_model_path and Path(best.best_model_path).is_file()
    assert "step=8" in Path(best.best_model_path).name  # the last validation's file
    assert state["best_model_score"] == best.best_model_score == 2 * STEPS_PER_EPOCH
    assert state["best_k_models"].keys() == best.best_k_models.keys()


def test_last_checkpoint_before_a_model_checkpoint_is_refused(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, [LastCheckpoint(), ModelCheckpoint()], enable_checkpointing=True, max_steps=1)
    with pytest.raises(ValueError, match="LastCheckpoint must come after every ModelCheckpoint"):
        trainer.fit(TinyClassifier(), image_loader(4, 2))


class Validations(pl.Callback):
    """The global step of every validation a fit ran (not the sanity check)."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.steps.append(trainer.global_step)


@pytest.mark.parametrize(
    ("val_check_interval", "validated"),
    [(1.0, [4]), (2, [2, 4])],  # once, after the epoch's last batch; every 2 steps (4 batches per epoch)
)
@pytest.mark.parametrize("where", ["after-the-validated-batch", "inside-validation"])
def test_a_stop_before_the_validation_ended_resumes_into_that_validation(
    tmp_path: Path, val_check_interval: float, validated: list[int], where: str
) -> None:
    """Stopped by SIGTERM right after the first training batch that is validated after, or inside that validation:
    last.ckpt holds the step before, and the resumed run validates at that step as the straight run did."""

    def fit(callbacks: list[pl.Callback], ckpt_path: Path | None = None) -> list[int]:
        validations = Validations()
        trainer = make_trainer(
            tmp_path,
            [validations, *callbacks, LastCheckpoint(every_minutes=0)],
            enable_checkpointing=True,
            max_epochs=1,
            limit_val_batches=1,
            val_check_interval=val_check_interval,
        )
        trainer.fit(TinyClassifier(), image_loader(8, 2), image_loader(2, 2), ckpt_path=ckpt_path)
        return validations.steps

    assert fit([]) == validated
    step = validated[0]
    stop = SignalAt([step]) if where == "after-the-validated-batch" else SignalInValidation(epoch=0)
    with pytest.raises(signals.Stopped, match=f"before its validation ended; .* keeps step {step - 1}:"):
        fit([stop])
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert load_checkpoint(last)["global_step"] == step - 1
    assert fit([], ckpt_path=last) == validated
