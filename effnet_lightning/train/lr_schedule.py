"""The paper's learning-rate schedule, built from timm's schedulers and stepped once per optimizer update.

EfficientNet (arXiv 1905.11946, sec. 5.2) warms up linearly for 5 epochs, then decays the LR x0.97 every
2.4 epochs. The official code (tensorflow/tpu efficientnet/utils.py, `build_learning_rate`) computes it from
`global_step` alone, staircase, and counts the decay from update 0, not from the end of the warm-up (the LR
right after a 5-epoch warm-up is lr * 0.97**2); its cosine alternative also runs over the whole training.
timm's `StepLRScheduler` / `CosineLRScheduler` with `warmup_prefix=False` compute exactly that.

The time timm's `step_update(num_updates=t)` receives is the fractional epoch, update / updates_per_epoch
(so warm-up, decay period and cosine length are in epochs, as the paper gives them). Updates per epoch are
only known once the training loader exists, after `configure_optimizers` has returned the scheduler; asking
earlier (`trainer.estimated_stepping_batches`) would build the loader before Lightning restores its position.
The LR is thus a pure function of `trainer.global_step` and the module's settings: a resumed run gets the LR
of an uninterrupted one, and the schedulers keep nothing in checkpoints. timm's would save their base LRs, and
Lightning would restore them over a `--model.lr` given at resume ("lower the LR and resume" would not lower it).
"""

from __future__ import annotations

import math
from typing import Literal

import lightning.pytorch as pl
import torch
from timm.scheduler import CosineLRScheduler, StepLRScheduler
from timm.scheduler.scheduler import Scheduler

__all__ = ["PaperCosineLR", "PaperStepLR", "Schedule", "create_lr_scheduler", "epochs_done", "updates_per_epoch"]

Schedule = Literal["step", "cosine", "constant"]
EPOCH_EPSILON = 1e-9  # epochs; a time on a decay boundary (12 / 5 == 2.4) stays past it despite float rounding


class FromSettings:
    """Mixin for a timm scheduler rebuilt from the module's settings on every start: no state in checkpoints."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state_dict: dict) -> None:
        """Nothing to restore (and a checkpoint from before this change is ignored the same way)."""


class PaperStepLR(FromSettings, StepLRScheduler):
    """timm's StepLRScheduler, stateless in checkpoints."""


class PaperCosineLR(FromSettings, CosineLRScheduler):
    """timm's CosineLRScheduler, stateless in checkpoints."""


def create_lr_scheduler(
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
    warmup_epochs: float,
    warmup_lr: float,
    decay_rate: float,
    decay_epochs: float,
    cosine_epochs: float,
    min_lr: float,
) -> Scheduler | None:
    """timm's scheduler for `schedule` (None for "constant"); times in epochs, LRs absolute."""
    if schedule == "step":
        return PaperStepLR(
            optimizer,
            decay_t=decay_epochs,
            decay_rate=decay_rate,
            warmup_t=warmup_epochs,
            warmup_lr_init=warmup_lr,
            warmup_prefix=False,  # TF: the decay counts from update 0
            t_in_epochs=False,  # stepped per update through step_update
        )
    if schedule == "cosine":
        return PaperCosineLR(
            optimizer,
            t_initial=cosine_epochs,
            lr_min=min_lr,
            warmup_t=warmup_epochs,
            warmup_lr_init=warmup_lr,
            warmup_prefix=False,
            t_in_epochs=False,
        )
    return None


def epochs_done(update: int, updates_per_epoch: int) -> float:
    """The fractional epoch at optimizer update `update` (0-based): the time the schedulers above take."""
    return update / updates_per_epoch + EPOCH_EPSILON


def updates_per_epoch(trainer: pl.Trainer) -> int:
    """Optimizer updates per epoch on this rank, as Lightning steps them (also on an epoch's last batch).

    `num_training_batches` already honours `limit_train_batches` and the distributed sampler.
    """
    batches = trainer.num_training_batches
    if math.isinf(batches):
        raise ValueError(
            "The training dataloader has no length, so updates per epoch are unknown; "
            "give the dataset a __len__ or set trainer.limit_train_batches to an integer."
        )
    return max(1, math.ceil(batches / trainer.accumulate_grad_batches))
