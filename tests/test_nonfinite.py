"""A non-finite loss: `stop` keeps the last good weights and checkpoint and exits 3; `skip` drops that update."""

from __future__ import annotations

import copy
import sys

import lightning.pytorch as pl
import pytest
import torch

from effnet_lightning.callbacks import NonFiniteLoss, NonFiniteLossError, RunCheckpoint
from effnet_lightning.cli import EXIT_NONFINITE, main
from effnet_lightning.datamodules.cifar10 import CIFAR10DataModule
from effnet_lightning.module import EfficientNetModule
from effnet_lightning.scaling import ScalingSpec

POISONED_STEP = 3  # the loss of the batch trained at global_step 3 (the 4th update) is NaN


class Snapshots(pl.Callback):
    """Weights and optimizer state after every update, by global step."""

    def __init__(self) -> None:
        self.weights: dict[int, dict[str, torch.Tensor]] = {}
        self.optimizer: dict[int, dict] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.weights[trainer.global_step] = copy.deepcopy(pl_module.state_dict())
        self.optimizer[trainer.global_step] = copy.deepcopy(trainer.optimizers[0].state_dict()["state"])


@pytest.fixture
def poisoned(monkeypatch):
    """The module's loss is NaN for the batch trained at global step POISONED_STEP."""
    original = EfficientNetModule.training_step

    def training_step(self, batch, batch_idx):
        loss = original(self, batch, batch_idx)
        return loss * float("nan") if self.trainer.global_step == POISONED_STEP else loss

    monkeypatch.setattr(EfficientNetModule, "training_step", training_step)


def fit(cifar10_root, tmp_path, action: str) -> tuple[pl.Trainer, EfficientNetModule, Snapshots]:
    pl.seed_everything(0)
    module = EfficientNetModule(ScalingSpec(phi=-4, resolution=32), num_classes=10, optimizer="sgd")
    data = CIFAR10DataModule(str(cifar10_root), val_size=500, resolution=32, batch_size=20, num_workers=0)
    snapshots = Snapshots()
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=6,
        limit_val_batches=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[NonFiniteLoss(action), snapshots, RunCheckpoint(dirpath=tmp_path, last_every_n_steps=1)],
    )
    trainer.fit(module, datamodule=data)
    return trainer, module, snapshots


def all_finite(state: dict[str, torch.Tensor]) -> bool:
    return all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())


def test_stop_names_the_step_and_keeps_the_last_good_state(cifar10_root, tmp_path, poisoned):
    with pytest.raises(NonFiniteLossError, match=rf"not finite at step {POISONED_STEP} \(epoch 0, batch 3\)"):
        fit(cifar10_root, tmp_path, "stop")
    last = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert last["global_step"] == POISONED_STEP and all_finite(last["state_dict"])


def test_skip_leaves_weights_and_optimizer_untouched_for_that_step(cifar10_root, tmp_path, poisoned):
    with pytest.warns(UserWarning, match=f"Skipped the update at step {POISONED_STEP}"):
        trainer, module, snapshots = fit(cifar10_root, tmp_path, "skip")
    assert trainer.global_step == 6  # the skipped step still counts (the LR schedule moves on)
    before, after = POISONED_STEP, POISONED_STEP + 1
    for name, tensor in snapshots.weights[before].items():
        assert torch.equal(snapshots.weights[after][name], tensor), name
    for index, state in snapshots.optimizer[before].items():
        assert torch.equal(snapshots.optimizer[after][index]["momentum_buffer"], state["momentum_buffer"])
    assert all_finite(module.state_dict())
    assert trainer.callback_metrics["train/skipped_steps"] == 1


def test_cli_exits_3_with_one_line(cifar10_root, tmp_path, capsys, monkeypatch, poisoned):
    monkeypatch.setattr(sys, "argv", ["effnet"])
    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"""
trainer: {{accelerator: cpu, max_steps: 6, default_root_dir: {tmp_path / "runs"}, enable_progress_bar: false}}
model: {{scaling: {{phi: -4, resolution: 32}}}}
data:
  class_path: CIFAR10DataModule
  init_args: {{data_dir: {cifar10_root}, val_size: 500, batch_size: 20, num_workers: 0}}
"""
    )
    assert main(["fit", "--config", str(config)]) == EXIT_NONFINITE
    error = capsys.readouterr().err
    assert error.startswith(f"effnet fit: error: the training loss is not finite at step {POISONED_STEP}")
    assert error.count("\n") == 1 and "nonfinite.action: skip" in error
