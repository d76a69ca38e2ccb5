"""What `effnet` adds to the Trainer is visible in `--print_config` and removable from YAML or the command line."""

from __future__ import annotations

import sys

import pytest
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from effnet_lightning.assembly.lightning_cli import EffnetCLI
from effnet_lightning.callbacks import LastCheckpoint, NonFiniteLoss, ResumeOverrides, RNGState
from effnet_lightning.cli import main
from effnet_lightning.train.checkpoint_io import AtomicCheckpointIO


@pytest.fixture
def config(cifar10_root, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["effnet"])
    path = tmp_path / "tiny.yaml"
    path.write_text(
        f"""
trainer: {{accelerator: cpu, max_steps: 1, default_root_dir: {tmp_path / "runs"}}}
model: {{scaling: {{phi: -4, resolution: 32}}}}
data:
  class_path: CIFAR10DataModule
  init_args: {{data_dir: {cifar10_root}, val_size: 500, batch_size: 20, num_workers: 0}}
"""
    )
    return str(path)


def test_print_config_shows_every_trainer_addition(config, capsys):
    assert main(["fit", "--config", config, "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["trainer"]["logger"]["class_path"].endswith("TensorBoardLogger")
    assert printed["checkpoint_io"]["class_path"].endswith("AtomicCheckpointIO")
    assert printed["rng_state"]["class_path"].endswith("RNGState")
    assert printed["resume_overrides"]["class_path"].endswith("ResumeOverrides")
    assert printed["last"]["every_minutes"] == 15 and printed["checkpoint"]["monitor"] == "val/acc1"


def kinds(objects) -> set[type]:
    return {type(o) for o in objects}


def test_the_cli_trainer_has_them_and_null_removes_them(config, tmp_path):
    trainer = EffnetCLI(["--config", config], run=False).trainer
    assert {LastCheckpoint, ModelCheckpoint, NonFiniteLoss, RNGState, ResumeOverrides} <= kinds(trainer.callbacks)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    assert isinstance(trainer.logger, TensorBoardLogger) and trainer.log_dir == str(tmp_path / "runs" / "version_0")

    removed = ["--rng_state", "null", "--resume_overrides", "null"]
    trainer = EffnetCLI(["--config", config, *removed, "--checkpoint_io", "null"], run=False).trainer
    assert not {RNGState, ResumeOverrides} & kinds(trainer.callbacks)
    assert not isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    assert trainer.log_dir == str(tmp_path / "runs" / "version_1")  # a new folder for each command
