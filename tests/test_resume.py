"""Exact resume: training N epochs straight and training with an interruption give the same weights.

CPU, a φ=-4 EfficientNet at 32 px on the CIFAR-10 stand-ins (100 training images, 5 steps of 20 per epoch),
with dropout, drop-path, augmentation, RMSpropTF and EMA all drawing random numbers or carrying state. The
resumed runs are seeded differently on purpose: everything must come from the checkpoint.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from cifar_standin import checksum_constants, write_cifar10
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torchvision.datasets import CIFAR10

from effnet_lightning.callbacks import EMA, NonFiniteLoss, RNGState, RunCheckpoint
from effnet_lightning.checkpoint_io import AtomicCheckpointIO
from effnet_lightning.datamodules.cifar10 import CIFAR10DataModule
from effnet_lightning.module import EfficientNetModule
from effnet_lightning.scaling import ScalingSpec

STEPS_PER_EPOCH = 5  # 100 training images (600 stand-ins, 500 held out) / batch 20
EPOCHS = 2
TOLERANCE = 1e-6  # max abs difference of any weight


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("cifar10")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in checksum_constants(write_cifar10(root)).items():
            patch.setattr(CIFAR10, name, value)
        yield root


class CrashAt(pl.Callback):
    """Dies after optimizer step `step` without saving anything, as under kill -9."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError("simulated kill -9")


class SigtermAt(pl.Callback):
    """Sends this process a real SIGTERM after optimizer step `step` (Lightning's handler is installed)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def train(
    data_dir: Path,
    run_dir: Path,
    seed: int,
    ckpt_path: Path | None = None,
    num_workers: int = 0,
    extra: tuple[pl.Callback, ...] = (),
    last_every_n_steps: int = 0,
    **trainer_kwargs,
) -> tuple[pl.Trainer, EfficientNetModule, EMA]:
    pl.seed_everything(seed, workers=True)
    module = EfficientNetModule(
        ScalingSpec(phi=-4, resolution=32), num_classes=10, dropout=0.2, drop_path_rate=0.2, lr=0.05
    )
    data = CIFAR10DataModule(
        str(data_dir), val_size=500, resolution=32, batch_size=20, num_workers=num_workers, persistent_workers=True
    )
    ema = EMA(decay=0.9)
    checkpoint = RunCheckpoint(
        dirpath=run_dir / "checkpoints", monitor="val/acc1", mode="max", last_every_n_steps=last_every_n_steps
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        limit_val_batches=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[ema, NonFiniteLoss(), *extra, checkpoint, RNGState()],
        plugins=[AtomicCheckpointIO()],
        **{"max_epochs": EPOCHS, **trainer_kwargs},
    )
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    return trainer, module, ema


@pytest.fixture(scope="module")
def straight(cifar_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    """Raw and EMA weights after EPOCHS uninterrupted epochs."""
    trainer, module, ema = train(cifar_dir, tmp_path_factory.mktemp("straight"), seed=0)
    assert trainer.global_step == EPOCHS * STEPS_PER_EPOCH
    return module.state_dict(), ema.average_model.module.state_dict()


def assert_same_weights(resumed: tuple[dict, dict], straight: tuple[dict, dict]) -> None:
    for got, want in zip(resumed, straight, strict=True):
        assert got.keys() == want.keys()
        worst = max((got[k].double() - want[k].double()).abs().max().item() for k in want)
        assert worst <= TOLERANCE, f"max abs weight difference {worst:.3g}"


def last_step(run_dir: Path) -> int:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]


def test_resume_at_an_epoch_boundary(cifar_dir, tmp_path, straight):
    train(cifar_dir, tmp_path, seed=0, max_epochs=1)
    assert last_step(tmp_path) == STEPS_PER_EPOCH
    trainer, module, ema = train(cifar_dir, tmp_path, seed=123, ckpt_path=tmp_path / "checkpoints" / "last.ckpt")
    assert trainer.global_step == EPOCHS * STEPS_PER_EPOCH
    assert_same_weights((module.state_dict(), ema.average_model.module.state_dict()), straight)


def test_resume_mid_epoch_after_sigterm(cifar_dir, tmp_path, straight):
    with pytest.raises(SIGTERMException):
        train(cifar_dir, tmp_path, seed=0, extra=(SigtermAt(7),))
    assert last_step(tmp_path) == 7  # epoch 1, 2 of 5 batches done
    trainer, module, ema = train(cifar_dir, tmp_path, seed=123, ckpt_path=tmp_path / "checkpoints" / "last.ckpt")
    assert trainer.global_step == EPOCHS * STEPS_PER_EPOCH
    assert_same_weights((module.state_dict(), ema.average_model.module.state_dict()), straight)


def test_resume_mid_epoch_from_periodic_checkpoint_with_workers(cifar_dir, tmp_path, straight):
    """Killed after step 7 (kill -9: nothing saved then); last.ckpt from step 6 by last_every_n_steps=3.
    Two loader workers here, none in the straight run: augmentations do not depend on the workers."""
    with pytest.raises(RuntimeError, match="simulated kill -9"):
        train(cifar_dir, tmp_path, seed=0, num_workers=2, last_every_n_steps=3, extra=(CrashAt(7),))
    assert last_step(tmp_path) == 6  # epoch 1, 1 of 5 batches done
    trainer, module, ema = train(
        cifar_dir, tmp_path, seed=123, num_workers=2, ckpt_path=tmp_path / "checkpoints" / "last.ckpt"
    )
    assert trainer.global_step == EPOCHS * STEPS_PER_EPOCH
    assert_same_weights((module.state_dict(), ema.average_model.module.state_dict()), straight)
