"""The paper's learning-rate schedule, set per optimizer update from a pure function of the update index.

EfficientNet (arXiv 1905.11946, sec. 5.2) trains with a linear warm-up followed by an exponential decay of
x0.97 every 2.4 epochs. The official code (tensorflow/tpu models/official/efficientnet/utils.py,
`build_learning_rate`) computes the LR from `global_step` alone:

    lr = initial_lr * decay_factor ** floor(global_step / (steps_per_epoch * decay_epochs))   # staircase
    lr = initial_lr * global_step / warmup_steps     if global_step < warmup_steps              # warm-up

Note that the decay counts from update 0, not from the end of the warm-up (so the LR right after a 5-epoch
warm-up is initial_lr * 0.97**2), and the cosine alternative also runs over the whole training. We keep that.

Because the LR is a function of `trainer.global_step` (the number of optimizer updates so far), a resumed run
gets exactly the LR of an uninterrupted one without any callback state. Lightning's own scheduler wiring steps
per epoch, so this callback sets `param_group["lr"]` itself before every update instead.
"""

import math
from typing import Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

Schedule = Literal["exponential", "cosine"]


def lr_at(
    update: int,
    updates_per_epoch: int,
    base_lr: float,
    *,
    schedule: Schedule = "exponential",
    warmup_epochs: float = 5.0,
    warmup_start_factor: float = 0.0,
    decay_rate: float = 0.97,
    decay_epochs: float = 2.4,
    staircase: bool = True,
    max_epochs: float | None = None,
    min_lr: float = 0.0,
) -> float:
    """The LR for optimizer update number `update` (0-based), in the units of `base_lr`.

    The warm-up goes linearly from `warmup_start_factor * base_lr` at update 0 towards `base_lr`; after it the
    exponential (or cosine) schedule applies, both measured from update 0 as in the official TF code.
    """
    if updates_per_epoch < 1:
        raise ValueError(f"updates_per_epoch must be >= 1, got {updates_per_epoch}.")
    if schedule not in ("exponential", "cosine"):
        raise ValueError(f"Unknown schedule {schedule!r}; use 'exponential' or 'cosine'.")
    if schedule == "cosine" and max_epochs is None:
        raise ValueError("The cosine schedule needs max_epochs (the epoch at which the LR reaches min_lr).")
    epoch = update / updates_per_epoch  # fractional epoch at this update
    warmup_updates = warmup_epochs * updates_per_epoch
    if update < warmup_updates:
        return base_lr * (warmup_start_factor + (1.0 - warmup_start_factor) * update / warmup_updates)
    if schedule == "exponential":
        exponent = update / (decay_epochs * updates_per_epoch)
        if staircase:
            # 1e-9 absorbs float error such as 2.4 * 5 == 12.000000000000002, which would delay a step by one.
            exponent = math.floor(exponent + 1e-9)
        return base_lr * decay_rate**exponent
    progress = min(epoch / max_epochs, 1.0)  # cosine
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def updates_per_epoch(trainer: "pl.Trainer") -> int:
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


class LRSchedule(Callback):
    """Sets every param group's LR before each update: warm-up, then x0.97 per 2.4 epochs or cosine.

    The base LR of a group is its `initial_lr` (set by torch schedulers, saved with the optimizer state); if
    absent it is the group's `lr` at the start of training, then stored as `initial_lr` so that resuming from
    a checkpoint finds it. The module is expected to have scaled the LR by the global batch already
    (0.016 per 256 images in the paper); this callback does not scale. It logs the LR of the first param group
    of the first optimizer as `train/lr`, the value actually used for that update.

    Do not also return an `lr_scheduler` from `configure_optimizers`: the two would fight over the LR.
    """

    def __init__(
        self,
        schedule: Schedule = "exponential",
        warmup_epochs: float = 5.0,  # paper / TF main.py: 5 epochs
        warmup_start_factor: float = 0.0,  # TF warms up from 0; a small value makes update 0 count
        decay_rate: float = 0.97,  # paper: x0.97 ...
        decay_epochs: float = 2.4,  # ... every 2.4 epochs
        staircase: bool = True,  # TF `exponential_decay(..., staircase=True)`
        min_lr: float = 0.0,  # cosine only: the LR at max_epochs
        max_epochs: float | None = None,  # cosine only: defaults to trainer.max_epochs (or max_steps)
        log_name: str = "train/lr",
    ) -> None:
        if schedule not in ("exponential", "cosine"):
            raise ValueError(f"Unknown schedule {schedule!r}; use 'exponential' or 'cosine'.")
        if warmup_epochs < 0 or decay_epochs <= 0:
            raise ValueError("warmup_epochs must be >= 0 and decay_epochs > 0.")
        if not 0.0 <= warmup_start_factor <= 1.0:
            raise ValueError(f"warmup_start_factor must be in [0, 1], got {warmup_start_factor}.")
        if not 0.0 < decay_rate <= 1.0:
            raise ValueError(f"decay_rate must be in (0, 1], got {decay_rate}.")
        self.schedule = schedule
        self.warmup_epochs = warmup_epochs
        self.warmup_start_factor = warmup_start_factor
        self.decay_rate = decay_rate
        self.decay_epochs = decay_epochs
        self.staircase = staircase
        self.min_lr = min_lr
        self.max_epochs = max_epochs
        self.log_name = log_name

    def lr(self, update: int, updates_per_epoch: int, base_lr: float, max_epochs: float | None) -> float:
        """`lr_at` with this callback's parameters."""
        return lr_at(
            update,
            updates_per_epoch,
            base_lr,
            schedule=self.schedule,
            warmup_epochs=self.warmup_epochs,
            warmup_start_factor=self.warmup_start_factor,
            decay_rate=self.decay_rate,
            decay_epochs=self.decay_epochs,
            staircase=self.staircase,
            max_epochs=max_epochs,
            min_lr=self.min_lr,
        )

    def _max_epochs(self, trainer: "pl.Trainer", per_epoch: int) -> float | None:
        if self.schedule != "cosine" or self.max_epochs is not None:
            return self.max_epochs
        if trainer.max_steps is not None and trainer.max_steps > 0:
            return trainer.max_steps / per_epoch
        if trainer.max_epochs is not None and trainer.max_epochs > 0:
            return float(trainer.max_epochs)
        raise ValueError(
            "The cosine schedule needs an end: set LRSchedule max_epochs, trainer.max_epochs or max_steps."
        )

    @override
    def on_train_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if trainer.lr_scheduler_configs:
            raise ValueError(
                "LRSchedule sets the learning rate itself; remove the lr_scheduler returned by "
                "configure_optimizers (or drop the LRSchedule callback)."
            )
        # Runs after a checkpoint's optimizer state is restored, so a resumed run keeps its saved initial_lr.
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])

    @override
    def on_train_batch_start(
        self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: object, batch_idx: int
    ) -> None:
        # With gradient accumulation every micro-batch of a window sees the same global_step, the index of the
        # update the window ends in, so all of them set the LR that update uses.
        per_epoch = updates_per_epoch(trainer)
        max_epochs = self._max_epochs(trainer, per_epoch)
        first_lr = None
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = self.lr(trainer.global_step, per_epoch, group["initial_lr"], max_epochs)
                first_lr = group["lr"] if first_lr is None else first_lr
        if first_lr is not None and self.log_name:
            # A CPU scalar: logging it costs no device sync.
            pl_module.log(self.log_name, torch.tensor(first_lr), on_step=True, on_epoch=False, batch_size=1)
