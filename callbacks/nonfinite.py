"""NonFiniteLoss: a NaN or infinite loss (or diverged weights) stops the run, or skips that update.

A diverged step writes NaN or inf into the weights and BatchNorm statistics it touches. Two guards keep that out
of the checkpoints:
- `action: stop` (default): every `check_every_n_steps` optimizer steps the flags gathered on the device since
  the last check (every loss finite; the weights and buffers finite) are read in one host sync, reduced over
  the ranks, and a failure raises `NonFiniteLossError` naming the first bad step. `effnet` exits 3. Whatever
  happened since, `LastCheckpoint` and `AtomicCheckpointIO` check the state before every write, so last.ckpt is
  the last *finite* state and "lower the LR and resume" works.
- `action: skip` drops the gradients of that step (the optimizer then skips every parameter, so weights,
  momentum and weight decay stay as they were) and restores the BatchNorm buffers the bad forward pass updated.
  This needs the verdict before every update: one host sync per step. Skipped steps are logged as
  `train/skipped_steps`.
"""

from __future__ import annotations

import logging
from typing import Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only
from typing_extensions import override

from effnet_lightning.callbacks.last_checkpoint import LastCheckpoint
from effnet_lightning.errors import ConfigError
from effnet_lightning.train.finite import all_finite

__all__ = ["Action", "NonFiniteLoss", "NonFiniteLossError"]

log = logging.getLogger(__name__)

Action = Literal["stop", "skip"]


class NonFiniteLossError(RuntimeError):
    """The loss or the model state became NaN or infinite; `effnet` exits 3."""


class NonFiniteLoss(Callback):
    """Stops the run (default) or skips the update when the training loss is not finite."""

    def __init__(self, action: Action = "stop", check_every_n_steps: int = 10) -> None:
        if action not in ("stop", "skip"):
            raise ConfigError(f"nonfinite.action must be 'stop' or 'skip', got {action!r}.")
        if check_every_n_steps < 1:
            raise ConfigError(f"nonfinite.check_every_n_steps must be at least 1, got {check_every_n_steps}.")
        self.action = action
        self.check_every_n_steps = check_every_n_steps  # stop: host syncs per step = 1/this
        self.skipped_steps = 0
        self._finite: torch.Tensor | None = None  # device bool: every loss of this update was finite
        self._first_bad: torch.Tensor | None = None  # device int: first step with a bad loss since the check, or -1
        self._buffers: list[torch.Tensor] = []  # skip: the module's buffers before this update's forward passes

    @override
    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx) -> None:
        if self.action != "skip" or self._finite is not None:  # not the first micro-batch of an update
            return
        buffers = list(pl_module.buffers())
        if [b.shape for b in buffers] != [b.shape for b in self._buffers]:
            self._buffers = [b.detach().clone() for b in buffers]
        elif buffers:
            torch._foreach_copy_(self._buffers, buffers)

    @override
    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        finite = torch.isfinite(loss.detach()).all()  # no sync yet; micro-batches of an accumulation window add up
        self._finite = finite if self._finite is None else self._finite & finite

    @override
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if self._finite is None:
            return
        finite, self._finite = self._finite, None
        if self.action == "skip":
            self._skip_if_bad(trainer, pl_module, optimizer, finite)
            return
        step = trainer.global_step
        if self._first_bad is None:
            self._first_bad = torch.full((), -1, dtype=torch.long, device=finite.device)
        self._first_bad = torch.where((self._first_bad < 0) & ~finite, step, self._first_bad)
        if (step + 1) % self.check_every_n_steps:
            return
        state_finite = all_finite(pl_module.state_dict()).to(finite.device)  # weights and BN buffers, before the update
        verdict = torch.stack([self._first_bad, torch.where(state_finite, -1, step)]).cpu().tolist()  # one sync
        self._first_bad = None
        if trainer.strategy.reduce_boolean_decision(verdict == [-1, -1], all=True):
            return
        bad_loss, bad_state = verdict
        where = f"step {bad_loss if bad_loss >= 0 else bad_state} (epoch {trainer.current_epoch})"
        what = "the training loss" if bad_loss >= 0 else "the weights or BatchNorm statistics"
        raise NonFiniteLossError(
            f"{what} is not finite since {where}; stopped. {self._last_good(trainer)} Lower the learning rate "
            "(--model.lr) or raise the warm-up and resume from it with --ckpt_path, or set nonfinite.action: skip."
        )

    def _skip_if_bad(self, trainer, pl_module, optimizer, finite: torch.Tensor) -> None:
        if trainer.strategy.reduce_boolean_decision(bool(finite), all=True):  # one host sync per step
            return
        where = f"step {trainer.global_step} (epoch {trainer.current_epoch}, batch {trainer.fit_loop.batch_idx})"
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                parameter.grad = None  # torch optimizers leave parameters without gradients untouched
        if self._buffers:
            torch._foreach_copy_(list(pl_module.buffers()), self._buffers)
        self.skipped_steps += 1
        _warn(f"Skipped the update at {where}: the training loss is not finite.")
        pl_module.log("train/skipped_steps", float(self.skipped_steps), rank_zero_only=True)

    @staticmethod
    def _last_good(trainer: pl.Trainer) -> str:
        last = next((c for c in trainer.callbacks if isinstance(c, LastCheckpoint)), None)
        return last.describe_last() if last is not None else "No last.ckpt is kept (no `last:` callback)."

    @override
    def state_dict(self) -> dict[str, int]:
        return {"skipped_steps": self.skipped_steps}

    @override
    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.skipped_steps = state_dict["skipped_steps"]


@rank_zero_only
def _warn(message: str) -> None:
    """One line on stderr under `effnet`, once per run (rank 0), not per process."""
    log.warning(f"effnet: warning: {message}")
