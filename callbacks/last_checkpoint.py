"""LastCheckpoint: `<run>/checkpoints/last.ckpt`, the file a preempted, interrupted or killed run resumes from.

A long job must lose at most minutes when it is stopped. This callback writes last.ckpt with Lightning's public
`trainer.save_checkpoint` (weights, EMA and other callback states, optimizer, loop counters, RNG states, data
position) into the folder of the run that is training *now* (`trainer.log_dir`), never into a path stored in an
older checkpoint, so a run folder that was moved keeps one last.ckpt at its new place. It writes:
- every `every_n_steps` optimizer steps and/or every `every_minutes` (whichever comes first), after every
  validation, and when training ends: a kill -9 or power cut loses at most that much;
- on SIGINT (Ctrl-C) or SIGTERM (preemption, SLURM, `docker stop`) at the next batch boundary, then stops
  with `signals.Stopped` (`effnet` exits 130 or 75). A second signal during the write is ignored.
No validation is lost to a stop. Lightning validates after a training batch (the epoch's last, or every
`val_check_interval` batches), and a checkpoint written between the end of that batch and the end of its
validation resumes past the validation without running it. So last.ckpt is written at the end of the batch
before, and nothing is written from the end of that batch until its validation ends: a signal or kill -9 then
leaves last.ckpt one step earlier, and the resumed run trains that batch again (exactly: the data position and
RNG states come back) and validates, as an uninterrupted run does. Not covered: a time-based
`val_check_interval` and `check_val_every_n_epoch: null` (validation then keeps the old behaviour and may be
skipped by a resume).
Nothing non-finite is ever written: the weights and buffers are checked right before each write (all ranks
agree), and a diverged state raises `NonFiniteStateError` with last.ckpt left at the last good step.
On start it removes `.last.ckpt.tmp-PID` files that a kill -9 during a write left behind.
Best-k checkpoints are a stock `ModelCheckpoint` (the CLI's `checkpoint:` section).

last.ckpt also carries the ModelCheckpoint's best-k state, so a resumed run knows which files are its best. That
state must include the validation just run: this is a Lightning `Checkpoint`, which Lightning runs after the other
callbacks and in the order given among checkpoint callbacks (it must come after the ModelCheckpoints: checked in
setup), and ModelCheckpoint decides either in on_validation_end or, with validation once per epoch, in
on_train_epoch_end. When a ModelCheckpoint's best files changed after last.ckpt was written at the same step,
last.ckpt is written again (at most once more per validation, only when a new best-k file appeared).
"""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from typing_extensions import override

from effnet_lightning.errors import ConfigError
from effnet_lightning.train import signals
from effnet_lightning.train.checkpoint_io import remove_stale_temporaries
from effnet_lightning.train.finite import NonFiniteStateError, all_finite, nonfinite_names
from effnet_lightning.train.run_layout import last_checkpoint

__all__ = ["LastCheckpoint"]

log = logging.getLogger(__name__)


class LastCheckpoint(Checkpoint):
    """Keeps `<run>/checkpoints/last.ckpt` current (steps, minutes, validation, end of training, signals).

    Args:
        every_n_steps: write every this many optimizer steps; 0: off.
        every_minutes: write when this many minutes passed since the last write; 0: off. The clock is read
            every `check_every_n_steps` steps (under DDP rank 0's clock is broadcast then: one collective).
        on_validation: write after every validation during fit.
        on_signal: on SIGINT/SIGTERM write at the step reached, then stop.
        check_every_n_steps: how often the clock (and, under DDP, a signal on another rank) is consulted.
    """

    def __init__(
        self,
        every_n_steps: int = 0,
        every_minutes: float = 15.0,  # a power cut loses at most ~15 min of training
        on_validation: bool = True,
        on_signal: bool = True,
        check_every_n_steps: int = 20,  # host syncs per step: 1/20 (a broadcast of one flag)
    ) -> None:
        if every_n_steps < 0 or every_minutes < 0 or check_every_n_steps < 1:
            raise ConfigError(
                "last.every_n_steps and last.every_minutes must be 0 (off) or positive and "
                f"last.check_every_n_steps at least 1, got {every_n_steps}, {every_minutes}, {check_every_n_steps}."
            )
        self.every_n_steps = every_n_steps
        self.every_minutes = every_minutes
        self.on_validation = on_validation
        self.on_signal = on_signal
        self.check_every_n_steps = check_every_n_steps
        self.path: Path | None = None  # set in setup from the run folder of this process
        self.saved_step = -1  # the step last.ckpt holds (-1: none written by this run yet)
        self.saved_best_k: list[tuple[str, list[str]]] = []  # the best-k files last.ckpt knows (best_k_files)
        self._saved_at = time.monotonic()
        self._installed_signals: dict[int, object] | None = None
        self._validation_due = False  # a training batch ended that Lightning validates after; not validated yet

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        checkpoints = trainer.checkpoint_callbacks
        if any(isinstance(c, ModelCheckpoint) for c in checkpoints[checkpoints.index(self) + 1 :]):
            raise ConfigError(
                "LastCheckpoint must come after every ModelCheckpoint in the Trainer's callbacks, so that last.ckpt "
                "holds their best-k state of the validation just run: move it to the end of the list."
            )
        self.path = last_checkpoint(trainer.log_dir or trainer.default_root_dir)
        if trainer.is_global_zero:
            remove_stale_temporaries(self.path.parent)
        if self.on_signal and signals.installed():  # under `effnet`: from now on signals are acted on here
            signals.defer()

    def _restore_signals(self) -> None:
        """Give back the handlers this callback installed for a hand-built Trainer (see on_train_start)."""
        if self._installed_signals is not None:
            signals.restore(self._installed_signals)
            self._installed_signals = None

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.saved_step = trainer.global_step if trainer.ckpt_path else -1  # a resumed run: last.ckpt holds it
        self.saved_best_k = self.best_k_files(trainer)  # as restored from the checkpoint (none for a new run)
        self._saved_at = time.monotonic()
        self._validation_due = False
        if self.on_signal and not signals.installed():
            # A hand-built Trainer (outside `effnet`): install here, after Lightning registered its own handlers,
            # and give them back in on_train_end / on_exception, before Lightning restores the ones it found.
            self._installed_signals = signals.install()
            signals.defer()

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.save(trainer, pl_module)
        self._restore_signals()

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        at_check = step % self.check_every_n_steps == 0
        self._validation_due = validates_after(trainer, batch_idx)
        signum = self._pending_signal(trainer, at_check)
        if signum is not None:
            self._stop(trainer, pl_module, signum)
        if self._validation_due:
            return  # last.ckpt keeps the state before this batch until its validation has run
        due = bool(self.every_n_steps) and step % self.every_n_steps == 0
        due |= validates_after(trainer, batch_idx + 1)  # the next batch is validated after: the state before it
        if self.every_minutes and at_check:
            late = time.monotonic() - self._saved_at >= self.every_minutes * 60
            due |= trainer.strategy.broadcast(late) if trainer.world_size > 1 else late
        if due:
            self.save(trainer, pl_module)

    @override
    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            signum = self._pending_signal(trainer, batch_idx % self.check_every_n_steps == 0)
            if signum is not None:
                self._stop(trainer, pl_module, signum)

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._validation_due = False
        if self.on_validation:
            self.save(trainer, pl_module)

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """With validation once per epoch, ModelCheckpoint picks its best-k files here, after on_validation_end."""
        if self.on_validation and self.saved_step == trainer.global_step:
            self.save(trainer, pl_module)  # writes only if a new best-k file appeared since

    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """Lightning's own SIGTERM path (its handler raises SIGTERMException at the next batch)."""
        try:
            if isinstance(exception, SIGTERMException) and self.on_signal:
                self._stop(trainer, pl_module, signals.pending() or signal.SIGTERM)
        except signals.Stopped:
            pass  # the CLI maps SIGTERMException to the same exit code
        finally:
            self._restore_signals()

    @staticmethod
    def best_k_files(trainer: pl.Trainer) -> list[tuple[str, list[str]]]:
        """Each ModelCheckpoint's best file and best-k files, from their public attributes."""
        checkpoints = [c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)]
        return [(c.best_model_path, sorted(c.best_k_models)) for c in checkpoints]

    def save(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Write last.ckpt at this step, if it does not hold this step and these best-k files yet (only while
        fitting)."""
        fitting = trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking and not trainer.fast_dev_run
        if not fitting or self.path is None or trainer.global_step == 0:
            return
        best_k = self.best_k_files(trainer)
        if trainer.global_step == self.saved_step and best_k == self.saved_best_k:
            return
        state = pl_module.state_dict()
        if not trainer.strategy.reduce_boolean_decision(bool(all_finite(state)), all=True):
            bad = nonfinite_names(state)
            raise NonFiniteStateError(
                f"the model state is not finite at step {trainer.global_step} ({len(bad)} tensors, e.g. "
                f"{', '.join(bad[:3])}); {self.describe_last()} Lower the learning rate (--model.lr) and resume "
                "from it with --ckpt_path, or raise the warm-up."
            )
        trainer.save_checkpoint(self.path, weights_only=False)  # the whole state, said explicitly
        self.saved_step, self.saved_best_k = trainer.global_step, best_k
        self._saved_at = time.monotonic()

    def describe_last(self) -> str:
        """What last.ckpt holds, for messages."""
        if self.path is None or not self.path.is_file():
            return "no checkpoint was written yet."
        step = f"step {self.saved_step}" if self.saved_step >= 0 else "an earlier step"
        return (
            f"{self.path} holds the last finite state ({step}); if the run was already diverging then, resume "
            "from an earlier best-k checkpoint instead."
        )

    def _pending_signal(self, trainer: pl.Trainer, at_check: bool) -> int | None:
        if not self.on_signal:
            return None
        if trainer.world_size == 1:
            return signals.pending()  # a Python list: no host sync
        if not at_check:
            return None
        stop = trainer.strategy.reduce_boolean_decision(signals.pending() is not None, all=False)
        return (signals.pending() or signal.SIGTERM) if stop else None

    def _stop(self, trainer: pl.Trainer, pl_module: pl.LightningModule, signum: int) -> None:
        name = signal.Signals(signum).name
        run = self.path.parent.parent if self.path else trainer.default_root_dir
        resume = f"Resume with: effnet fit --config {run}/config.yaml --ckpt_path {run}"
        at = f"at step {trainer.global_step} (epoch {trainer.current_epoch})"
        if self._validation_due and self.saved_step > 0:
            message = (
                f"effnet: stopped by {name} {at} before its validation ended; {self.path} keeps step "
                f"{self.saved_step}: the resumed run trains from there again and validates. {resume}"
            )
        elif trainer.global_step == 0 or self._validation_due:
            message = f"effnet: stopped by {name} {at}; no checkpoint written (none before this validation)."
        else:
            self.save(trainer, pl_module)
            message = f"effnet: stopped by {name} {at}; saved {self.path}. {resume}"
        if trainer.is_global_zero:
            log.warning(message)
        raise signals.Stopped(signum, message, reported=True)


def validates_after(trainer: pl.Trainer, batch_idx: int) -> bool:
    """Whether Lightning validates after training batch `batch_idx` (0-based, in this epoch) of a fit.

    The rule of Lightning 2.6's training epoch loop, read from public Trainer attributes: validation is on,
    this epoch is one of every `check_val_every_n_epoch`, and the batch is the epoch's last or ends a
    `val_check_batch` interval (None for a time-based interval, inf for a loader of unknown length: not covered).
    """
    every, interval, batches = trainer.check_val_every_n_epoch, trainer.val_check_batch, trainer.num_training_batches
    if trainer.sanity_checking or not trainer.enable_validation or every is None or not isinstance(interval, int):
        return False
    if (trainer.current_epoch + 1) % every:
        return False
    return batch_idx + 1 == batches or (batch_idx + 1) % interval == 0
