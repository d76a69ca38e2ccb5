"""AutoBatchSize: the largest per-device batch that fits a memory budget, with the global batch kept.

The configured `data.batch_size` x `trainer.accumulate_grad_batches` (per device) is the batch the recipe and
its LR scaling were written for. When a fit starts this callback finds the largest per-device batch within
`memory_budget_gb` and splits that global batch into `per_device x accumulate_grad_batches`, so the LR (scaled
per 256 images of global batch), the number of updates per epoch and the schedule stay exactly the same.

- CUDA: Lightning's own `BatchSizeFinder` runs its trial steps (mode `binsearch`, capped at the global batch)
  with `torch.cuda.set_per_process_memory_fraction` holding it to the budget, which stays set for the run.
- CPU (nothing runs out of memory there, the machine swaps): the largest batch by the counted estimate of
  memory.py (weights, gradients, optimizer state, EMA and the activations saved for backward).
What it chose is printed once on stderr and logged as `auto_batch/per_device` and `auto_batch/accumulate`.
Single device only (BatchSizeFinder does not support distributed strategies).
"""

from __future__ import annotations

import logging
from typing import Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import BatchSizeFinder, Callback
from lightning.pytorch.utilities import rank_zero_only

from effnet_lightning.errors import ConfigError
from effnet_lightning.model import memory

__all__ = ["AutoBatchSize", "split_batch"]

log = logging.getLogger(__name__)
GB = 10**9  # decimal, as device makers quote memory


class AutoBatchSize(Callback):
    def __init__(
        self,
        memory_budget_gb: float | None = None,  # None: the device's memory (CUDA total, or the machine's RAM)
        mode: Literal["power", "binsearch"] = "binsearch",  # BatchSizeFinder's search (CUDA)
        steps_per_trial: int = 3,  # training steps per tried batch size (CUDA)
        max_trials: int = 12,  # BatchSizeFinder's limit on tried sizes (CUDA)
        margin: float = 0.05,  # BatchSizeFinder: keep this fraction below the largest size that ran (CUDA)
    ) -> None:
        if memory_budget_gb is not None and memory_budget_gb <= 0:
            raise ConfigError(f"memory_budget_gb must be > 0 (GB of device memory), got {memory_budget_gb}")
        self.memory_budget_gb = memory_budget_gb
        self.mode, self.steps_per_trial, self.max_trials, self.margin = mode, steps_per_trial, max_trials, margin
        self.per_device: int | None = None  # what was chosen
        self.accumulate: int | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        data = trainer.datamodule
        if data is None or not hasattr(data, "batch_size"):
            raise ConfigError("AutoBatchSize needs a datamodule with a `batch_size` attribute")
        global_batch = data.batch_size * trainer.accumulate_grad_batches  # per device; devices do not change
        on_cuda = pl_module.device.type == "cuda"
        budget = self._budget_bytes(pl_module.device)
        if on_cuda:
            total = torch.cuda.get_device_properties(pl_module.device).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, budget / total), pl_module.device)
            largest = self._search(trainer, pl_module, global_batch)
        else:
            largest = self._estimate(pl_module, budget, global_batch)
        self.per_device, self.accumulate = split_batch(global_batch, largest)
        data.batch_size, trainer.accumulate_grad_batches = self.per_device, self.accumulate
        self._report(trainer, global_batch, budget, "measured" if on_cuda else "estimated")

    def _budget_bytes(self, device: torch.device) -> int:
        if self.memory_budget_gb is not None:
            return int(self.memory_budget_gb * GB)
        return memory.device_memory_bytes("cuda" if device.type == "cuda" else "cpu")

    def _estimate(self, pl_module: pl.LightningModule, budget: int, global_batch: int) -> int:
        """The largest batch whose counted training memory (memory.py) is within `budget`, at most the global."""
        checkpointing = bool(pl_module.hparams.get("grad_checkpointing", False))
        result = memory.estimate(pl_module.scaling, pl_module.hparams.num_classes)
        per_image = result.training_bytes(1, checkpointing) - result.state_bytes
        largest = (budget - result.state_bytes) // per_image
        if largest < 1:
            raise ConfigError(
                f"{pl_module.scaling.name} needs about {memory.human_bytes(result.training_bytes(1, checkpointing))} "
                f"to train on one image; the memory budget is {memory.human_bytes(budget)}: raise "
                "memory_budget_gb, turn on model.grad_checkpointing or choose a smaller model"
            )
        return min(largest, global_batch)

    def _search(self, trainer: pl.Trainer, pl_module: pl.LightningModule, global_batch: int) -> int:
        """Lightning's BatchSizeFinder, configured: trial steps from 2 images up to the global batch."""
        finder = BatchSizeFinder(
            mode=self.mode,
            steps_per_trial=self.steps_per_trial,
            init_val=min(2, global_batch),
            max_trials=self.max_trials,
            batch_arg_name="batch_size",
            margin=self.margin,
            max_val=global_batch,
        )
        finder.setup(trainer, pl_module, stage="fit")
        finder.scale_batch_size(trainer, pl_module)
        return min(int(finder.optimal_batch_size), global_batch)

    @rank_zero_only
    def _report(self, trainer: pl.Trainer, global_batch: int, budget: int, how: str) -> None:
        log.info(
            f"effnet fit: auto batch: {self.per_device} images per device x accumulate_grad_batches "
            f"{self.accumulate} = {global_batch} per device per update, as configured (largest batch {how} within "
            f"{memory.human_bytes(budget)})"
        )
        if trainer.logger is not None:
            trainer.logger.log_metrics(
                {"auto_batch/per_device": float(self.per_device), "auto_batch/accumulate": float(self.accumulate)},
                step=trainer.global_step,
            )


def split_batch(global_batch: int, largest: int) -> tuple[int, int]:
    """(per_device, accumulate) with per_device x accumulate == global_batch exactly and per_device <= largest,
    per_device as large as possible."""
    for accumulate in range(-(-global_batch // max(1, largest)), global_batch + 1):
        if global_batch % accumulate == 0:
            return global_batch // accumulate, accumulate
    return 1, global_batch
