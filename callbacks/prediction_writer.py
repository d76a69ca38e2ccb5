"""Write `effnet predict` outputs to the run directory, since LightningCLI discards what predict returns.

Two files per process (under DDP each rank writes its own shard, `predictions.rank{R}.pt` / `.csv`):
- `predictions.pt`, a dict loadable with `torch.load(path, weights_only=True)`:
  - `probabilities`: float32 (N, num_classes), softmax of the logits, rows in the order they were predicted;
  - `batch_indices`: the dataset indices of the rows as Lightning groups them (per dataloader, per batch);
    flattened, entry r is the predict-split index of row r;
  - `sample_ids`: per row, the sample's file path (image-folder data) or its dataset index as a string;
  - `class_names`: the name of each column (from the checkpoint; "0", "1", ... when no names were stored).
- `predictions.csv`: one row per sample, `sample_id, class_1, prob_1, ..., class_k, prob_k`: the top-k classes
  by name, most probable first.
"""

from __future__ import annotations

import csv
import os
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter

from effnet_lightning.console import output
from effnet_lightning.errors import ConfigError
from effnet_lightning.train.checkpoint_format import default_class_names

__all__ = ["PredictionWriter", "flatten", "write_csv"]


class PredictionWriter(BasePredictionWriter):
    """Saves `predictions.pt` and `predictions.csv` in trainer.log_dir (see the module docstring for the layout).

    Args:
        filename: name of the tensor file; the CSV takes the same name with `.csv`.
        top_k: classes per row in the CSV (at most num_classes).
    """

    def __init__(self, filename: str = "predictions.pt", top_k: int = 5) -> None:
        super().__init__(write_interval="epoch")
        if top_k < 1:
            raise ConfigError(f"prediction_writer.top_k must be at least 1, got {top_k}.")
        self.filename = filename
        self.top_k = top_k

    def write_on_epoch_end(
        self, trainer: Trainer, pl_module: LightningModule, predictions: Any, batch_indices: Any
    ) -> None:
        probabilities = torch.cat([p.float().cpu() for p in predictions]) if predictions else torch.empty(0)
        indices = flatten(batch_indices)
        num_classes = probabilities.shape[1] if probabilities.ndim == 2 else 0
        class_names = list(getattr(pl_module, "class_names", None) or default_class_names(num_classes))
        sample_ids = self._sample_ids(trainer, indices)
        name = self.filename
        if trainer.world_size > 1:
            name = name.replace(".pt", f".rank{trainer.global_rank}.pt")
        path = os.path.join(trainer.log_dir, name)
        os.makedirs(trainer.log_dir, exist_ok=True)
        torch.save(
            {
                "probabilities": probabilities,
                "batch_indices": batch_indices,
                "sample_ids": sample_ids,
                "class_names": class_names,
            },
            path,
        )
        csv_path = os.path.splitext(path)[0] + ".csv"
        write_csv(csv_path, probabilities, sample_ids, class_names, self.top_k)
        output().info(f"wrote {len(probabilities)} predictions to {path} and {csv_path}")

    @staticmethod
    def _sample_ids(trainer: Trainer, indices: list[int]) -> list[str]:
        """The datamodule's id (file path) of each predicted row, or its dataset index."""
        ids_of = getattr(trainer.datamodule, "predict_sample_ids", None)
        ids = ids_of() if callable(ids_of) else None
        if ids is None:
            return [str(i) for i in indices]
        return [str(ids[i]) for i in indices]


def flatten(batch_indices: Any) -> list[int]:
    """Dataset indices in row order; Lightning nests them per batch (and per dataloader)."""
    if isinstance(batch_indices, (list, tuple)):
        return [i for item in batch_indices for i in flatten(item)]
    return [int(batch_indices)]


def write_csv(
    path: str, probabilities: torch.Tensor, sample_ids: list[str], class_names: list[str], top_k: int
) -> None:
    """One row per sample: its id, then the top-k (class name, probability) pairs, most probable first."""
    k = min(top_k, probabilities.shape[1]) if probabilities.ndim == 2 else 0
    header = ["sample_id"] + [f"{column}_{rank}" for rank in range(1, k + 1) for column in ("class", "prob")]
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        if k == 0:
            return
        top = probabilities.topk(k, dim=1)
        for sample_id, values, classes in zip(sample_ids, top.values.tolist(), top.indices.tolist(), strict=True):
            row = [sample_id]
            for value, index in zip(values, classes, strict=True):
                row += [class_names[index], f"{value:.6f}"]
            writer.writerow(row)
