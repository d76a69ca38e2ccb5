"""ConfusionMatrix: at each validation, the confusion matrix as a TensorBoard figure and the accuracy of every class.

Counted with torchmetrics' `MulticlassConfusionMatrix` on the raw weights' logits that `validation_step` returns
(no second forward pass; all ranks summed when computed). Logged:
- `val/confusion_matrix` figure, drawn by torchmetrics' own `plot()` (matplotlib): rows = true class, columns =
  predicted class, both axes labelled with the class names, each row normalised to 1 (the share of that class
  predicted as each column) and, up to `MAX_CELL_TEXT_CLASSES` classes, that share written in every cell. With
  more classes the cells stay unlabelled and every k-th class is named, so that no axis carries more than
  `MAX_TICK_LABELS` names;
- the counts as a named markdown table in the text tab, and `val_class_acc1/<class name>` scalars (recall of each
  class), for at most `max_named_classes` classes, written by rank 0 straight to the loggers (not `self.log`: they
  are not in `trainer.callback_metrics`).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure
from torchmetrics.classification import MulticlassConfusionMatrix
from typing_extensions import override

__all__ = ["ConfusionMatrix", "confusion_figure", "table"]

MAX_CELL_TEXT_CLASSES = 20  # classes: above this the cells carry no numbers (they would be under 0.5 in wide)
MAX_TICK_LABELS = 40  # class names per axis at most: 1000 ImageNet names would overprint each other
CELL_INCHES = 0.6  # side of one cell: torchmetrics writes cell text at 15 pt, "0.83" is about 0.45 in wide
MARGIN_INCHES = 2.5  # room for the axis labels, the rotated class names and the colour bar
MIN_INCHES, MAX_INCHES = 5.0, 20.0  # figure side; at DPI: 500 to 2000 px
DPI = 100  # pixels per inch of the logged image


class ConfusionMatrix(Callback):
    """Confusion-matrix figure and per-class accuracy at every validation of a fit.

    Args:
        max_named_classes: per-class scalars and the named text table only up to this many classes (ImageNet's
            1000 would add 1000 scalars per validation); the figure is always logged.
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
        names = [str(n) for n in (getattr(pl_module, "class_names", None) or range(len(per_class)))]
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
                title = f"validation at step {trainer.global_step}"
                figure = confusion_figure(self.matrix, counts, names, title)
                logger.experiment.add_figure("val/confusion_matrix", figure, trainer.global_step)
                if len(per_class) <= self.max_named_classes:
                    logger.experiment.add_text("val/confusion_matrix", table(counts, names), trainer.global_step)


def confusion_figure(metric: MulticlassConfusionMatrix, counts: torch.Tensor, names: list[str], title: str) -> Figure:
    """The row-normalised matrix of `counts` (C, C) drawn by `metric.plot()` on a new matplotlib Figure (no
    pyplot state), with class names on both axes, the shares in the cells up to MAX_CELL_TEXT_CLASSES classes, a
    colour bar and a title that gives the image count."""
    classes = len(counts)
    rates = (counts / counts.sum(dim=1, keepdim=True).clamp(min=1)).cpu()
    side = min(MAX_INCHES, max(MIN_INCHES, classes * CELL_INCHES + MARGIN_INCHES))
    figure = Figure(figsize=(side, side), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    _, axes = metric.plot(val=rates, ax=axes, add_text=classes <= MAX_CELL_TEXT_CLASSES, labels=names)
    figure.colorbar(axes.images[0], ax=axes, shrink=0.8, label="share of the true class")
    if classes > MAX_TICK_LABELS:
        every = -(-classes // MAX_TICK_LABELS)  # ceil: name every k-th class
        ticks = list(range(0, classes, every))
        axes.set_xticks(ticks, [names[i] for i in ticks], rotation=90, fontsize=8)
        axes.set_yticks(ticks, [names[i] for i in ticks], rotation=0, fontsize=8)
        title += f" (every {every}th class named)"
    axes.set_title(f"{title}: {int(counts.sum())} images, each row sums to 1", fontsize=12)
    return figure


def table(counts: torch.Tensor, names: list[Any]) -> str:
    """The counts as a markdown table with class names (TensorBoard's text tab renders it)."""
    header = "| true \\ predicted | " + " | ".join(str(n) for n in names) + " |"
    rule = "|---" * (len(names) + 1) + "|"
    lines = [f"| {names[i]} | " + " | ".join(str(int(v)) for v in row) + " |" for i, row in enumerate(counts)]
    return "\n".join([header, rule, *lines])
