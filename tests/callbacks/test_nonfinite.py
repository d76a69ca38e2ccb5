"""A non-finite loss or state: `stop` exits 3 with last.ckpt the last finite state, and resuming it with a lower
LR works; `skip` drops that update. No checkpoint with a NaN/inf weight or buffer is ever written."""

from __future__ import annotations

import copy
import signal
import sys

import lightning.pytorch as pl
import pytest
import torch

from effnet_lightning.callbacks import LastCheckpoint, NonFiniteLoss, NonFiniteLossError
from effnet_lightning.cli import main
from effnet_lightning.datamodules.cifar10 import CIFAR10DataModule
from effnet_lightning.errors import EXIT_NONFINITE
from effnet_lightning.model.scaling import ScalingSpec
from effnet_lightning.train.checkpoint_format import load_checkpoint
from effnet_lightning.train.finite import NonFiniteStateError, nonfinite_names
from effnet_lightning.train.module import EfficientNetModule

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


def fit(cifar10_root, tmp_path, action: str, every: int = 1) -> tuple[pl.Trainer, EfficientNetModule, Snapshots]:
    pl.seed_everything(0)
    module = EfficientNetModule(ScalingSpec(phi=-4, resolution=32), num_classes=10, optimizer="sgd")
    data = CIFAR10DataModule(str(cifar10_root), val_size=500, resolution=32, batch_size=20, num_workers=0)
    snapshots = Snapshots()
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=6,
        limit_val_batches=1,
        logger=False,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[NonFiniteLoss(action, check_every_n_steps=every), snapshots, LastCheckpoint(every_n_steps=1)],
    )
    trainer.fit(module, datamodule=data)
    return trainer, module, snapshots


def all_finite(state: dict) -> bool:
    return not nonfinite_names(state)


def test_stop_names_the_step_and_keeps_the_last_good_state(cifar10_root, tmp_path, poisoned):
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(NonFiniteLossError, match=rf"loss is not finite since step {POISONED_STEP} \(epoch 0\)"):
        fit(cifar10_root, tmp_path, "stop")
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # LastCheckpoint gave its handlers back
    last = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert last["global_step"] == POISONED_STEP and all_finite(last["state_dict"])


def test_a_later_check_still_never_saves_a_nonfinite_state(cifar10_root, tmp_path, poisoned):
    """Checked every 10 steps only: the NaN update at step 3 goes through, but the write at step 4 is refused."""
    with pytest.raises(NonFiniteStateError, match="model state is not finite at step 4"):
        fit(cifar10_root, tmp_path, "stop", every=10)
    last = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert last["global_step"] == POISONED_STEP and all_finite(last["state_dict"])


def test_skip_leaves_weights_and_optimizer_untouched_for_that_step(cifar10_root, tmp_path, poisoned, caplog):
    trainer, module, snapshots = fit(cifar10_root, tmp_path, "skip", every=1)
    assert f"effnet: warning: Skipped the update at step {POISONED_STEP}" in caplog.text
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
    assert main(["fit", "--config", str(config), "--nonfinite.check_every_n_steps", "1"]) == EXIT_NONFINITE
    (error,) = [line for line in capsys.readouterr().err.splitlines() if "error" in line]  # after the run's notes
    assert error.startswith(f"effnet fit: error: the training loss is not finite since step {POISONED_STEP}")
    assert "nonfinite.action: skip" in error


def tiny_config(path, cifar10_root, runs, max_steps: int) -> str:
    path.write_text(
        f"""
trainer:
  {{accelerator: cpu, max_steps: {max_steps}, default_root_dir: {runs}, limit_val_batches: 1,
    enable_progress_bar: false}}
model: {{scaling: {{phi: -4, resolution: 32}}, optimizer: sgd, bn_momentum: 0.1}}
data:
  class_path: CIFAR10DataModule
  init_args: {{data_dir: {cifar10_root}, val_size: 500, batch_size: 20, num_workers: 0}}
"""
    )
    return str(path)


def test_divergence_never_writes_a_nonfinite_checkpoint(cifar10_root, tmp_path, capsys, monkeypatch):
    """A diverging run: sgd, lr 1e6, last.ckpt every step. Before, the run exited 3 saying the weights were
    the last good ones while last.ckpt held inf BatchNorm running_var and weights up to 3.6e35."""
    monkeypatch.setattr(sys, "argv", ["effnet"])
    runs = tmp_path / "runs"
    config = tiny_config(tmp_path / "tiny.yaml", cifar10_root, runs, max_steps=30)
    assert main(["fit", "--config", config, "--model.lr", "1e6", "--last.every_n_steps", "1"]) == EXIT_NONFINITE
    assert "not finite" in capsys.readouterr().err.splitlines()[-1]
    checkpoints = sorted((runs / "version_0" / "checkpoints").glob("*.ckpt"))
    assert [c.name for c in checkpoints] == ["last.ckpt"]  # written (every step) until the state diverged
    for checkpoint in checkpoints:
        state = load_checkpoint(checkpoint)
        assert state["global_step"] >= 1
        assert all_finite({"weights": state["state_dict"], "optimizer": state["optimizer_states"]}), checkpoint


def test_lower_the_lr_and_resume_works(cifar10_root, tmp_path, capsys, monkeypatch):
    """A sane run at lr 0.01, then a resume at lr 1e6 diverges (exit 3, last.ckpt untouched), then the advice:
    resume with a lower LR, here 0.001. The optimizer's param groups then hold the LR given at resume, not the
    checkpoint's (constant schedule: the LR of every update is the base LR, scaled by the batch)."""
    monkeypatch.setattr(sys, "argv", ["effnet"])
    runs = tmp_path / "runs"
    run = runs / "version_0"
    constant = "--model.lr_schedule=constant"
    config = tiny_config(tmp_path / "tiny.yaml", cifar10_root, runs, max_steps=5)  # one epoch of 5 steps
    assert main(["fit", "--config", config, "--model.lr", "0.01", constant]) == 0
    before = load_checkpoint(run / "checkpoints" / "last.ckpt")["optimizer_states"][0]["param_groups"]
    config = tiny_config(tmp_path / "tiny.yaml", cifar10_root, runs, max_steps=12)
    rc = main(["fit", "--config", config, "--model.lr", "1e6", constant, "--ckpt_path", str(run)])
    assert rc == EXIT_NONFINITE
    error = capsys.readouterr().err.splitlines()[-1]
    assert (
        "not finite" in error and f"{run / 'checkpoints' / 'last.ckpt'} holds the last finite state (step 5)" in error
    )
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 5

    assert main(["fit", "--config", config, "--model.lr", "0.001", constant, "--ckpt_path", str(run)]) == 0
    assert "resumed with model.lr 0.01 -> 0.001" in capsys.readouterr().err
    done = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert done["global_step"] == 12 and all_finite(done["state_dict"])
    after = done["optimizer_states"][0]["param_groups"]
    assert len(after) == len(before) and all(group["lr"] > 0 for group in before)
    for old, now in zip(before, after, strict=True):
        assert now["lr"] == pytest.approx(old["lr"] / 10)
    assert done["hyper_parameters"]["lr"] == 0.001
