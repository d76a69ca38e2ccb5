"""NonFiniteLoss: a NaN or infinite loss stops the run before it reaches the weights, or skips that update.

A diverged step writes NaN into every weight it touches, and a periodic checkpoint taken afterwards would replace
the last good `last.ckpt` with garbage. The loss is checked before the optimizer step (`on_before_optimizer_step`,
after backward), so:
- `action: stop` raises `NonFiniteLossError` naming the step while the weights and optimizer still hold the last
  good update; nothing is saved, `last.ckpt` stays the last good checkpoint, and `effnet` exits with code 3.
- `action: skip` drops the gradients of that step: the optimizer skips every parameter without a gradient, so
  weights, momentum and weight decay stay exactly as they were (the step still counts for the LR schedule).
  The BatchNorm running statistics that the bad forward pass updated (possibly with NaN) are restored from a
  copy taken before it (buffers only: a few hundred kB even for B7). Skipped steps are logged as
  `train/skipped_steps`.

The check costs one host-device sync per optimizer step (the loss is a device scalar); under DDP the verdict is
reduced over the ranks, so all ranks stop or skip together.
"""

from __future__ import annotations

from typing import Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from typing_extensions import override

Action = Literal["stop", "skip"]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; raised before the optimizer step, so the weights are still good."""


class NonFiniteLoss(Callback):
    """Stops the run (default) or skips the update when the training loss is not finite."""

    def __init__(self, action: Action = "stop") -> None:
        if action not in ("stop", "skip"):
            raise ValueError(f"nonfinite.action must be 'stop' or 'skip', got {action!r}.")
        self.action = action
        self.skipped_steps = 0
        self._finite: torch.Tensor | None = None  # device bool: every loss since the last step was finite
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
        finite = trainer.strategy.reduce_boolean_decision(bool(self._finite), all=True)
        self._finite = None
        if finite:
            return
        where = f"step {trainer.global_step} (epoch {trainer.current_epoch}, batch {trainer.fit_loop.batch_idx})"
        if self.action == "stop":
            last = getattr(trainer.checkpoint_callback, "last_model_path", "") or "none written yet"
            raise NonFiniteLossError(
                f"the training loss is not finite at {where}; stopped before the update, so the weights are the "
                f"last good ones. Last checkpoint: {last}. Lower the learning rate or raise warm-up and resume "
                "from it, or set nonfinite.action: skip to skip such steps."
            )
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                parameter.grad = None  # torch optimizers leave parameters without gradients untouched
        if self._buffers:
            torch._foreach_copy_(list(pl_module.buffers()), self._buffers)
        self.skipped_steps += 1
        rank_zero_warn(f"Skipped the update at {where}: the training loss is not finite.")
        pl_module.log("train/skipped_steps", float(self.skipped_steps), rank_zero_only=True)

    @override
    def state_dict(self) -> dict[str, int]:
        return {"skipped_steps": self.skipped_steps}

    @override
    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.skipped_steps = state_dict["skipped_steps"]
