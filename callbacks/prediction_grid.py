"""PredictionGrid: a TensorBoard grid of validation images with the model's predictions, at every validation.

The same images every time (the first `count` of the first validation batch, which an unshuffled loader keeps
fixed), shown as the network sees them (after the on-device resize; the normalisation undone with the
datamodule's mean/std). A green frame marks a correct top-1 prediction, a red one a wrong one; the
`val/predictions` text gives, per image in grid order, the predicted class, its probability and the true class.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from torchvision.utils import make_grid
from typing_extensions import override

from effnet_lightning.errors import ConfigError

FRAME_PX = 2  # width of the correct/wrong frame around each image
CORRECT, WRONG = (0.1, 0.8, 0.1), (0.9, 0.1, 0.1)  # RGB, 0-1


class PredictionGrid(Callback):
    """Grid of `count` fixed validation images, framed green (correct) or red (wrong), plus a text legend.

    Args:
        count: images in the grid (at most the validation batch size).
        per_row: images per grid row.
    """

    def __init__(self, count: int = 16, per_row: int = 8) -> None:
        if count < 1 or per_row < 1:
            raise ConfigError(f"prediction_grid.count and per_row must be at least 1, got {count}, {per_row}.")
        self.count = count
        self.per_row = per_row

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
        if batch_idx != 0 or trainer.sanity_checking or not trainer.is_global_zero:
            return
        if not isinstance(outputs, torch.Tensor):
            return
        loggers = [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
        if not loggers:
            return
        images, targets = batch[0][: self.count], batch[-1][: self.count]
        probabilities = outputs[: self.count].detach().float().softmax(dim=1)
        confidence, predicted = probabilities.max(dim=1)
        pictures = self._unnormalize(trainer, images.detach().float())
        correct = (predicted == targets).tolist()
        framed = torch.stack([frame(p, CORRECT if ok else WRONG) for p, ok in zip(pictures, correct, strict=True)])
        grid = make_grid(framed.cpu(), nrow=self.per_row, padding=2, pad_value=1.0)
        names = list(getattr(pl_module, "class_names", None) or range(probabilities.shape[1]))
        legend = "\n".join(
            f"{i}. predicted **{names[p]}** ({c:.2f}), true {names[t]}"
            for i, (p, c, t) in enumerate(zip(predicted.tolist(), confidence.tolist(), targets.tolist(), strict=True))
        )
        for logger in loggers:
            logger.experiment.add_image("val/predictions", grid, trainer.global_step)
            logger.experiment.add_text("val/predictions", legend, trainer.global_step)

    @staticmethod
    def _unnormalize(trainer: pl.Trainer, images: torch.Tensor) -> torch.Tensor:
        """Normalized (N, 3, H, W) back to 0-1 with the datamodule's mean/std (0-1 scale); clamped."""
        datamodule = trainer.datamodule
        mean, std = getattr(datamodule, "mean", None), getattr(datamodule, "std", None)
        if mean is None or std is None:  # unknown normalisation: stretch each image to 0-1
            low = images.amin(dim=(1, 2, 3), keepdim=True)
            high = images.amax(dim=(1, 2, 3), keepdim=True)
            return (images - low) / (high - low).clamp(min=1e-6)
        mean_t = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
        std_t = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
        return (images * std_t + mean_t).clamp(0, 1)


def frame(image: torch.Tensor, color: tuple[float, float, float]) -> torch.Tensor:
    """(3, H, W) with a FRAME_PX border of `color` drawn over its edge."""
    out = image.clone()
    c = torch.tensor(color, device=image.device).view(3, 1, 1)
    out[:, :FRAME_PX, :] = c
    out[:, -FRAME_PX:, :] = c
    out[:, :, :FRAME_PX] = c
    out[:, :, -FRAME_PX:] = c
    return out
