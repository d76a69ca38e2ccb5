"""Callbacks a test config names by class_path to stop a run the way the world does: a real signal, or a crash."""

from __future__ import annotations

import os
import signal

import lightning.pytorch as pl


class SignalAt(pl.Callback):
    """Sends this process a real signal (default SIGTERM) after each optimizer step in `steps`."""

    def __init__(self, steps: list[int], signum: int = int(signal.SIGTERM)) -> None:
        self.steps = steps
        self.signum = signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step in self.steps:
            os.kill(os.getpid(), self.signum)


class SimulatedKill(Exception):
    """What kill -9 would do: stop with nothing saved."""


class CrashAt(pl.Callback):
    """Raises SimulatedKill after optimizer step `step`: a crash (exit 1), no checkpoint is written then."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise SimulatedKill(f"simulated kill -9 after step {self.step}")


class SignalInValidation(pl.Callback):
    """Sends this process a real signal (default SIGTERM) after validation batch `batch` of epoch `epoch` of a fit
    (not the sanity check): the epoch's training is over, its validation is not."""

    def __init__(self, epoch: int, batch: int = 0, signum: int = int(signal.SIGTERM)) -> None:
        self.epoch, self.batch, self.signum = epoch, batch, signum

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking and trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), self.signum)
