"""RunCheckpoint: Lightning's ModelCheckpoint plus a `last.ckpt` that a preempted or killed job can resume from.

A long job must lose at most minutes when it is stopped:
- SIGTERM (cloud preemption, SLURM before the time limit, `docker stop`): Lightning's signal connector notes
  the signal and raises `SIGTERMException` at the next batch boundary; this callback then writes `last.ckpt` at
  the step reached (weights, EMA and other callback states, optimizer, loop counters with the LR position, RNG
  states and data position) and prints how to resume. The `effnet` command exits with code 75 (EX_TEMPFAIL,
  "try again") so a wrapper or scheduler can requeue it. Saving takes seconds, well within the usual 30-90 s
  grace period; a batch in flight finishes first.
- kill -9 or a power cut: `last.ckpt` is also refreshed every `last_every_n_steps` optimizer steps and/or
  every `last_every_minutes`, whichever comes first, and after every validation (ModelCheckpoint alone
  rewrites it only when a new best-k file is saved). Writes are atomic (effnet_lightning/checkpoint_io.py).

The best-k checkpoints work as in ModelCheckpoint (the `checkpoint:` config section). All saves of `last.ckpt`
go through ModelCheckpoint's own bookkeeping, so resuming keeps writing the same file.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from typing import Any, Literal

import lightning.pytorch as pl
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from typing_extensions import override


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose `last.ckpt` is also written every N steps / M minutes and on SIGTERM.

    Args (beyond ModelCheckpoint's):
        last_every_n_steps: refresh last.ckpt every this many optimizer steps; 0: off.
        last_every_minutes: refresh last.ckpt when this many minutes passed since the previous refresh; 0: off.
        save_on_sigterm: write last.ckpt at the step reached when the process gets SIGTERM.
    """

    def __init__(
        self,
        dirpath: _PATH | None = None,
        filename: str | None = None,
        monitor: str | None = None,
        verbose: bool = False,
        save_last: bool | Literal["link"] | None = True,
        save_top_k: int = 1,
        save_weights_only: bool = False,
        mode: str = "min",
        auto_insert_metric_name: bool = True,
        every_n_train_steps: int | None = None,
        train_time_interval: timedelta | None = None,
        every_n_epochs: int | None = None,
        save_on_train_epoch_end: bool | None = None,
        enable_version_counter: bool = True,
        last_every_n_steps: int = 0,
        last_every_minutes: float = 0.0,
        save_on_sigterm: bool = True,
    ) -> None:
        super().__init__(
            dirpath=dirpath,
            filename=filename,
            monitor=monitor,
            verbose=verbose,
            save_last=save_last,
            save_top_k=save_top_k,
            save_weights_only=save_weights_only,
            mode=mode,
            auto_insert_metric_name=auto_insert_metric_name,
            every_n_train_steps=every_n_train_steps,
            train_time_interval=train_time_interval,
            every_n_epochs=every_n_epochs,
            save_on_train_epoch_end=save_on_train_epoch_end,
            enable_version_counter=enable_version_counter,
        )
        if last_every_n_steps < 0 or last_every_minutes < 0:
            raise ValueError(
                "checkpoint.last_every_n_steps and checkpoint.last_every_minutes must be 0 (off) or positive, "
                f"got {last_every_n_steps} and {last_every_minutes}."
            )
        wants_last = last_every_n_steps or last_every_minutes or save_on_sigterm
        if wants_last and save_last is not True:  # "link" would point last.ckpt at an older best-k file
            raise ValueError(
                "checkpoint.last_every_n_steps, last_every_minutes and save_on_sigterm write last.ckpt; "
                f"set checkpoint.save_last: true (got {save_last!r}) or turn them off."
            )
        self.last_every_n_steps = last_every_n_steps
        self.last_every_minutes = last_every_minutes
        self.save_on_sigterm = save_on_sigterm
        self._step_of_last_refresh = 0
        self._time_of_last_refresh = time.monotonic()

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._step_of_last_refresh = trainer.global_step
        self._time_of_last_refresh = time.monotonic()

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        self._note_parent_save(trainer)
        if trainer.global_step == self._step_of_last_refresh:  # also inside a gradient-accumulation window
            return
        due = bool(self.last_every_n_steps) and trainer.global_step % self.last_every_n_steps == 0
        if self.last_every_minutes:
            late = time.monotonic() - self._time_of_last_refresh >= self.last_every_minutes * 60
            due |= trainer.strategy.broadcast(late)  # rank 0's clock decides, so all ranks save together
        if due:
            self._refresh_if_stale(trainer)

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """ModelCheckpoint rewrites last.ckpt only when it saves a best-k file; keep it current every validation."""
        super().on_validation_end(trainer, pl_module)
        self._note_parent_save(trainer)
        self._refresh_if_stale(trainer)

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._note_parent_save(trainer)
        self._refresh_if_stale(trainer)

    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        super().on_exception(trainer, pl_module, exception)
        if not (isinstance(exception, SIGTERMException) and self.save_on_sigterm):
            return
        if trainer.sanity_checking or trainer.global_step == 0:
            _say(trainer, "effnet: stopped by SIGTERM before the first optimizer step; no checkpoint written.")
            return
        self._refresh_if_stale(trainer)
        run = trainer.log_dir or trainer.default_root_dir
        _say(
            trainer,
            f"effnet: stopped by SIGTERM at step {trainer.global_step} (epoch {trainer.current_epoch}); saved "
            f"{self.last_model_path}. Resume with: effnet fit --config {run}/config.yaml --ckpt_path {run}",
        )

    def _refresh_if_stale(self, trainer: pl.Trainer) -> None:
        """Write last.ckpt if it does not hold the current step yet (only while fitting, never in a sanity check).

        Not counted as this step's save, so a best-k save at the same step still happens."""
        fitting = trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking and not trainer.fast_dev_run
        if not fitting or trainer.global_step == self._step_of_last_refresh:
            return
        saved_step = self._last_global_step_saved
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        self._last_global_step_saved = saved_step
        self._step_of_last_refresh = trainer.global_step
        self._time_of_last_refresh = time.monotonic()

    def _note_parent_save(self, trainer: pl.Trainer) -> None:
        """ModelCheckpoint itself just wrote last.ckpt at this step (after a best-k save)."""
        if self._last_global_step_saved == trainer.global_step and self._last_checkpoint_saved == self.last_model_path:
            self._step_of_last_refresh = trainer.global_step
            self._time_of_last_refresh = time.monotonic()


def _say(trainer: pl.Trainer, message: str) -> None:
    if trainer.is_global_zero:
        print(message, file=sys.stderr, flush=True)
