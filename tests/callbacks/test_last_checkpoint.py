"""last.ckpt written after a validation carries the best-k state of that validation, not of the one before."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from callbacks_testkit import TinyClassifier, image_loader, make_trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from effnet_lightning.callbacks import LastCheckpoint

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

    saved = torch.load(last.path, weights_only=True, map_location="cpu")
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
