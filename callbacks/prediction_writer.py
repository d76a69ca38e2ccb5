"""Write `effnet predict` outputs to the run directory, since LightningCLI discards what predict returns."""

from __future__ import annotations

import os
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter


class PredictionWriter(BasePredictionWriter):
    """Saves `predictions.pt` in trainer.log_dir: class probabilities (N, num_classes) in dataloader order.

    Each process writes its own shard (`predictions.rank{R}.pt`) under DDP, with the dataset indices it saw.
    """

    def __init__(self, filename: str = "predictions.pt") -> None:
        super().__init__(write_interval="epoch")
        self.filename = filename

    def write_on_epoch_end(
        self, trainer: Trainer, pl_module: LightningModule, predictions: Any, batch_indices: Any
    ) -> None:
        probabilities = torch.cat([p.float().cpu() for p in predictions]) if predictions else torch.empty(0)
        name = self.filename
        if trainer.world_size > 1:
            name = name.replace(".pt", f".rank{trainer.global_rank}.pt")
        path = os.path.join(trainer.log_dir, name)
        os.makedirs(trainer.log_dir, exist_ok=True)
        torch.save({"probabilities": probabilities, "batch_indices": batch_indices}, path)
        print(f"wrote {len(probabilities)} predictions to {path}")
