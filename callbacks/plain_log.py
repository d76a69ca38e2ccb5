"""PlainLog: readable progress lines when stdout is not a terminal (SLURM, nohup, `docker logs`, CI).

Lightning's Rich bar redraws one line in place; redirected to a file it leaves a few lines for a whole run and no
per-epoch record. This callback prints, on rank 0, every `every_n_steps` optimizer steps and at the end of every
training epoch (after its validation), one line:
    epoch 1/4 step 30/60 loss 1.8423 top-1 0.3125 lr 0.00312 img/s 412 ETA 0:00:41 | val/acc1 0.4400 ...
The Rich bar stays for terminals: by default nothing is printed when stdout is a terminal.
Values are read from `trainer.callback_metrics` (one host sync per printed line, not per step).
"""

from __future__ import annotations

import datetime
import math
import sys
import time
from typing import Any, Literal

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from effnet_lightning.console import output
from effnet_lightning.errors import ConfigError

__all__ = ["PlainLog"]

STEP_KEYS = (("train/loss", "loss"), ("train/acc1", "top-1"))  # (logged metric, label in the line)
EPOCH_KEYS = ("val/loss", "val/acc1", "val_ema/acc1")  # appended to the epoch line when logged


class PlainLog(Callback):
    """One plain line every N steps and one per epoch, for logs that are files.

    Args:
        every_n_steps: print a line every this many optimizer steps; 0: only the epoch lines.
        when: "not_tty": only when stdout is not a terminal (the Rich bar serves terminals); "always"; "never".
    """

    def __init__(self, every_n_steps: int = 50, when: Literal["not_tty", "always", "never"] = "not_tty") -> None:
        if every_n_steps < 0:
            raise ConfigError(f"plain_log.every_n_steps must be 0 (epoch lines only) or positive, got {every_n_steps}.")
        self.every_n_steps = every_n_steps
        self.when = when
        self._printed_step = -1
        self._start = self._mark = time.monotonic()
        self._start_step = 0
        self._images = 0  # training images (all ranks) since the last printed line

    def active(self, trainer: pl.Trainer) -> bool:
        if self.when == "never" or not trainer.is_global_zero:
            return False
        return self.when == "always" or not sys.stdout.isatty()

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = self._mark = time.monotonic()
        self._start_step = trainer.global_step  # a resumed run counts its ETA from here
        self._images = 0

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._images += len(batch[-1]) * trainer.world_size  # targets: host shape, no sync
        step = trainer.global_step
        if self.every_n_steps and step % self.every_n_steps == 0 and step != self._printed_step:
            self._printed_step = step
            if self.active(trainer):
                output().info(self.line(trainer))

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.active(trainer):
            return
        metrics = trainer.callback_metrics
        extra = " ".join(f"{key} {float(metrics[key]):.4f}" for key in EPOCH_KEYS if key in metrics)
        output().info(self.line(trainer) + (f" | {extra}" if extra else ""))

    def line(self, trainer: pl.Trainer) -> str:
        """`epoch e/E step s/S loss .. top-1 .. lr .. img/s .. ETA ..` (img/s since the previous line)."""
        now = time.monotonic()
        rate = self._images / max(now - self._mark, 1e-9)
        self._mark, self._images = now, 0
        step, total = trainer.global_step, trainer.estimated_stepping_batches
        done = step - self._start_step
        eta = "?"
        if done > 0 and math.isfinite(total):
            eta = str(datetime.timedelta(seconds=round((now - self._start) / done * max(total - step, 0))))
        epochs = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        steps = f"/{int(total)}" if math.isfinite(total) else ""
        metrics = trainer.callback_metrics
        values = " ".join(f"{label} {float(metrics[key]):.4f}" for key, label in STEP_KEYS if key in metrics)
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
        return (
            f"epoch {trainer.current_epoch}{epochs} step {step}{steps} {values} lr {lr:.5g} img/s {rate:.0f} ETA {eta}"
        ).replace("  ", " ")
