"""PredictionGrid: a TensorBoard grid of validation images with the model's predictions, at every validation.

The same images every time: `count` validation images spread across the classes (picture_sample.py), read once
and predicted at the end of each validation with the weights it validated. They are shown as the network sees
them (after the on-device resize; the normalisation undone with the datamodule's mean/std), enlarged to at least
128 px (pictures.py) and captioned with the predicted class and its probability (green when right, red when
wrong) and the true class. The `val/predictions` text repeats the captions as a list, per image in grid order.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from typing_extensions import override

from effnet_lightning.datamodules.picture_sample import as_model_input, picture_batch
from effnet_lightning.drawing.pictures import cell_side, labelled, prediction_caption, tile, to_uint8_hwc, unnormalize
from effnet_lightning.errors import ConfigError

__all__ = ["PredictionGrid"]


class PredictionGrid(Callback):
    """Grid of `count` fixed validation images captioned with predicted and true class, plus a text legend.

    Args:
        count: images in the grid (at most the validation set's).
        per_row: images per grid row.
    """

    def __init__(self, count: int = 16, per_row: int = 8) -> None:
        if count < 1 or per_row < 1:
            raise ConfigError(f"prediction_grid.count and per_row must be at least 1, got {count}, {per_row}.")
        self.count = count
        self.per_row = per_row
        self._pictures: Any = None  # the picked validation samples, collated on the host

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        loggers = [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
        if not loggers:
            return
        if self._pictures is None:  # read once: the same images at every validation
            self._pictures = picture_batch(trainer.val_dataloaders, self.count)
        images, targets = as_model_input(self._pictures, trainer.datamodule or pl_module, pl_module.device)
        with torch.no_grad(), trainer.precision_plugin.val_step_context():
            logits = pl_module(images)
        datamodule = trainer.datamodule
        mean, std = getattr(datamodule, "mean", None), getattr(datamodule, "std", None)
        names = [str(n) for n in (getattr(pl_module, "class_names", None) or range(logits.shape[1]))]
        grid, legend = self.grid(images, targets, logits, names, mean, std)
        for logger in loggers:
            logger.experiment.add_image("val/predictions", grid, trainer.global_step, dataformats="HWC")
            logger.experiment.add_text("val/predictions", legend, trainer.global_step)

    def grid(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        logits: torch.Tensor,
        names: list[str],
        mean: tuple[float, ...] | None,
        std: tuple[float, ...] | None,
    ) -> tuple[np.ndarray, str]:
        """The (H, W, 3) uint8 grid of normalized `images` with their captions, and the markdown legend."""
        confidence, predicted = logits.detach().float().softmax(dim=1).max(dim=1)
        rows = list(zip(predicted.tolist(), confidence.tolist(), targets.tolist(), strict=True))
        pictures = to_uint8_hwc(unnormalize(images, mean, std))
        side = cell_side(images.shape[-1])
        cells = [
            labelled(picture, prediction_caption(names[p], c, names[t]), side)
            for picture, (p, c, t) in zip(pictures, rows, strict=True)
        ]
        legend = "\n".join(
            f"{i}. predicted **{names[p]}** ({c:.2f}), true {names[t]}" for i, (p, c, t) in enumerate(rows)
        )
        return tile(cells, self.per_row), legend
