"""ConfusionMatrix: at each validation, the confusion matrix as a TensorBoard image and the accuracy of every class.

Counted with torchmetrics' `MulticlassConfusionMatrix` on the raw weights' logits that `validation_step` returns
(no second forward pass; all ranks summed when computed). Logged:
- `val/confusion_matrix` image: row = true class, column = predicted class, each row normalised to 1 (white 0,
  black 1), enlarged with nearest-neighbour so every class is at least `min_cell_px` pixels; rows and columns are
  in label order (class names in the `val/confusion_matrix` text for at most `max_named_classes` classes);
- `val_class_acc1/<class name>` scalars (recall of each class), for at most `max_named_classes` classes, written by
  rank 0 straight to the loggers (not `self.log`: they are not in `trainer.callback_metrics`).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from torchmetrics.classification import MulticlassConfusionMatrix
from typing_extensions import override

MIN_IMAGE_PX = 256  # side of the matrix image at least (small class counts are enlarged to this)


class ConfusionMatrix(Callback):
    """Confusion-matrix image and per-class accuracy at every validation of a fit.

    Args:
        max_named_classes: per-class scalars and the named text table only up to this many classes (ImageNet's
            1000 would add 1000 scalars per validation); the image is always logged.
    """

    def __init__(self, max_named_classes: int = 100) -> None:
        self.max_named_classes = max_named_classes
        self.matrix: MulticlassConfusionMatrix | None = None

    @override
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        num_classes = pl_module.hparams.num_classes
        if self.matrix is None or self.matrix.num_classes != num_classes:
            self.matrix = MulticlassConfusionMatrix(num_classes).to(pl_module.device)
        self.matrix.reset()

    @override
    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.matrix is not None and isinstance(outputs, torch.Tensor):
            self.matrix.update(outputs.detach(), batch[-1])

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.matrix is None or trainer.sanity_checking or self.matrix.update_count == 0:
            return
        counts = self.matrix.compute().float()  # (C, C), all ranks; row = true, column = predicted
        per_class = counts.diag() / counts.sum(dim=1).clamp(min=1)
        names = list(getattr(pl_module, "class_names", None) or range(len(per_class)))
        if not trainer.is_global_zero:
            return
        if len(per_class) <= self.max_named_classes:
            # Straight to the loggers: the values are already reduced over all ranks (the matrix syncs), so
            # self.log would warn under DDP to pass sync_dist=True, which would all-reduce them once more.
            accuracy = {f"val_class_acc1/{names[i]}": float(v) for i, v in enumerate(per_class.tolist())}
            for logger in trainer.loggers:
                logger.log_metrics(accuracy, step=trainer.global_step)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("val/confusion_matrix", matrix_image(counts), trainer.global_step)
                if len(per_class) <= self.max_named_classes:
                    logger.experiment.add_text("val/confusion_matrix", table(counts, names), trainer.global_step)


def matrix_image(counts: torch.Tensor) -> torch.Tensor:
    """(1, H, W) float image in [0, 1]: each row normalised, dark = frequent, cells enlarged to >= MIN_IMAGE_PX."""
    rows = counts / counts.sum(dim=1, keepdim=True).clamp(min=1)
    cell = max(1, -(-MIN_IMAGE_PX // len(counts)))  # ceil: px per class
    image = 1.0 - rows.repeat_interleave(cell, 0).repeat_interleave(cell, 1)
    return image.unsqueeze(0).cpu()


def table(counts: torch.Tensor, names: list[Any]) -> str:
    """The counts as a markdown table with class names (TensorBoard's text tab renders it)."""
    header = "| true \\ predicted | " + " | ".join(str(n) for n in names) + " |"
    rule = "|---" * (len(names) + 1) + "|"
    lines = [f"| {names[i]} | " + " | ".join(str(int(v)) for v in row) + " |" for i, row in enumerate(counts)]
    return "\n".join([header, rule, *lines])
