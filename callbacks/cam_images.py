"""CAMImages: a TensorBoard grid of Grad-CAM maps of fixed validation images, every N epochs of a fit.

The same images every time (the first `count` of the first validation batch), as the network sees them after the
validation preprocessing, each overlaid with pytorch-grad-cam's `GradCAM` map of the predicted class on the last
convolutional stage (`bn2`), as `effnet cam` draws them. Validation runs under inference mode, so the maps are
computed afterwards on a copy of the network with gradients enabled: the training weights and their gradients are
never touched. Off by default (`every_n_epochs: 0`), and in the debug config; the GPU configs turn it on.
"""

from __future__ import annotations

import copy
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from torchvision.utils import make_grid
from typing_extensions import override

from effnet_lightning.errors import ConfigError


class CAMImages(Callback):
    """Grad-CAM grid of `count` fixed validation images every `every_n_epochs` epochs (0: off).

    Args:
        every_n_epochs: log after the validation of every this many epochs; 0: never.
        count: images in the grid (at most the validation batch size).
        per_row: images per grid row.
    """

    def __init__(self, every_n_epochs: int = 0, count: int = 8, per_row: int = 8) -> None:
        if every_n_epochs < 0 or count < 1 or per_row < 1:
            raise ConfigError(
                "cam_images.every_n_epochs must be 0 (off) or positive and count, per_row at least 1; got "
                f"{every_n_epochs}, {count}, {per_row}."
            )
        self.every_n_epochs = every_n_epochs
        self.count = count
        self.per_row = per_row
        self._images: torch.Tensor | None = None

    def _due(self, trainer: pl.Trainer) -> bool:
        return (
            self.every_n_epochs > 0
            and not trainer.sanity_checking
            and trainer.is_global_zero
            and (trainer.current_epoch + 1) % self.every_n_epochs == 0
        )

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
        if batch_idx == 0 and self._due(trainer):
            self._images = batch[0][: self.count].detach().cpu().clone()  # normalized model input

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._images is None or not self._due(trainer):
            return
        loggers = [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
        images, self._images = self._images, None
        if not loggers:
            return
        grid = self.cam_grid(pl_module, images, trainer)
        for logger in loggers:
            logger.experiment.add_image("val/cam", grid, trainer.global_step)

    def cam_grid(self, pl_module: pl.LightningModule, images: torch.Tensor, trainer: pl.Trainer) -> torch.Tensor:
        """(3, H, W) grid in [0, 1] of the images with their Grad-CAM overlays."""
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.image import show_cam_on_image

        with torch.inference_mode(False), torch.enable_grad():
            network = copy.deepcopy(getattr(pl_module, "model", pl_module)).float().cpu().eval()
            x = images.float().clone().requires_grad_(False)
            with GradCAM(model=network, target_layers=[network.bn2]) as cam:
                heat = cam(input_tensor=x, targets=None)  # (N, H, W) in [0, 1]
        pictures = unnormalize(x, trainer).permute(0, 2, 3, 1).numpy()  # (N, H, W, 3) in [0, 1]
        overlays = [
            show_cam_on_image(p.astype(np.float32), h, use_rgb=True) for p, h in zip(pictures, heat, strict=True)
        ]
        stacked = torch.from_numpy(np.stack(overlays)).permute(0, 3, 1, 2).float() / 255
        return make_grid(stacked, nrow=self.per_row, padding=2, pad_value=1.0)


def unnormalize(images: torch.Tensor, trainer: pl.Trainer) -> torch.Tensor:
    """Normalized (N, 3, H, W) back to 0-1 with the datamodule's mean/std; min-max per image when unknown."""
    mean, std = getattr(trainer.datamodule, "mean", None), getattr(trainer.datamodule, "std", None)
    if mean is None or std is None:
        low = images.amin(dim=(1, 2, 3), keepdim=True)
        return (images - low) / (images.amax(dim=(1, 2, 3), keepdim=True) - low).clamp(min=1e-6)
    return (images * torch.tensor(std).view(1, -1, 1, 1) + torch.tensor(mean).view(1, -1, 1, 1)).clamp(0, 1)
