"""CAMImages: a TensorBoard grid of Grad-CAM maps of fixed validation images, every N epochs of a fit.

The same images every time (`count` validation images spread across the classes, picture_sample.py, read once),
the whole model input as the network sees it after the validation preprocessing, each overlaid with the Grad-CAM
map of the predicted class (gradcam.py: by default the deepest stage whose map is at least 7x7 at the input size,
or the module named by `layer`), enlarged to a readable size and captioned with the predicted class, its
probability and the true class. Validation runs under inference mode, so the maps are computed afterwards on a
copy of the network with gradients enabled: the training weights and their gradients are never touched. Off by
default (`every_n_epochs: 0`), and in the debug config; the GPU configs turn it on.
"""

from __future__ import annotations

import copy
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from typing_extensions import override

from effnet_lightning.datamodules.picture_sample import as_model_input, picture_batch
from effnet_lightning.drawing.gradcam import cam_layer, grad_cam, overlay
from effnet_lightning.drawing.pictures import cell_side, labelled, prediction_caption, tile, to_uint8_hwc, unnormalize
from effnet_lightning.errors import ConfigError

__all__ = ["CAMImages"]


class CAMImages(Callback):
    """Grad-CAM grid of `count` fixed validation images every `every_n_epochs` epochs (0: off).

    Args:
        every_n_epochs: log after the validation of every this many epochs; 0: never.
        count: images in the grid (at most the validation set's).
        per_row: images per grid row.
        layer: the module to explain, a name in `model.named_modules()` such as `blocks.4` or `bn2`; None: the
            deepest stage whose map is at least 7x7 at the model's input size.
    """

    def __init__(self, every_n_epochs: int = 0, count: int = 8, per_row: int = 8, layer: str | None = None) -> None:
        if every_n_epochs < 0 or count < 1 or per_row < 1:
            raise ConfigError(
                "cam_images.every_n_epochs must be 0 (off) or positive and count, per_row at least 1; got "
                f"{every_n_epochs}, {count}, {per_row}."
            )
        self.every_n_epochs = every_n_epochs
        self.count = count
        self.per_row = per_row
        self.layer = layer
        self._pictures: Any = None  # the picked validation samples, collated on the host

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """A misspelt `layer` stops the fit at its start (UserError), not after `every_n_epochs` epochs."""
        if self.every_n_epochs > 0 and self.layer is not None:
            cam_layer(network_of(pl_module), resolution_of(pl_module), self.layer)

    def _due(self, trainer: pl.Trainer) -> bool:
        return (
            self.every_n_epochs > 0
            and not trainer.sanity_checking
            and trainer.is_global_zero
            and (trainer.current_epoch + 1) % self.every_n_epochs == 0
        )

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._due(trainer):
            return
        loggers = [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
        if not loggers:
            return
        if self._pictures is None:  # read once: the same images at every validation
            self._pictures = picture_batch(trainer.val_dataloaders, self.count)
        images, targets = as_model_input(self._pictures, trainer.datamodule or pl_module, pl_module.device)
        datamodule = trainer.datamodule
        mean, std = getattr(datamodule, "mean", None), getattr(datamodule, "std", None)
        grid = self.cam_grid(pl_module, images.detach().cpu(), targets.detach().cpu(), mean, std)
        for logger in loggers:
            logger.experiment.add_image("val/cam", grid, trainer.global_step, dataformats="HWC")

    def cam_grid(
        self,
        pl_module: pl.LightningModule,
        images: torch.Tensor,
        targets: torch.Tensor,
        mean: tuple[float, ...] | None,
        std: tuple[float, ...] | None,
    ) -> np.ndarray:
        """(H, W, 3) uint8 grid: each image with its Grad-CAM overlay, enlarged, over its caption."""
        with torch.inference_mode(False):
            network = copy.deepcopy(network_of(pl_module)).float().cpu().eval()
        layer = cam_layer(network, images.shape[-1], self.layer)
        heat, probabilities = grad_cam(network, images.float(), layer)
        confidence, predicted = probabilities.max(dim=1)
        names = class_names_of(pl_module, probabilities.shape[1])
        pictures = to_uint8_hwc(unnormalize(images, mean, std))
        side = cell_side(images.shape[-1])
        cells = [
            labelled(overlay(picture, h), prediction_caption(names[p], c, names[t]), side)
            for picture, h, p, c, t in zip(
                pictures, heat, predicted.tolist(), confidence.tolist(), targets.tolist(), strict=True
            )
        ]
        return tile(cells, self.per_row)


def network_of(pl_module: pl.LightningModule) -> torch.nn.Module:
    """The bare network the module wraps (`model`), or the module itself."""
    return getattr(pl_module, "model", pl_module)


def resolution_of(pl_module: pl.LightningModule) -> int:
    """The side in px of the module's input (EfficientNetModule.resolution); 224 (timm's default) when unknown."""
    return int(getattr(pl_module, "resolution", 224))


def class_names_of(pl_module: pl.LightningModule, num_classes: int) -> list[str]:
    """The module's class names (the datamodule's, stored in checkpoints), else "0", "1", ..."""
    return [str(name) for name in (getattr(pl_module, "class_names", None) or range(num_classes))]
