"""A callback that saves, at the end of every validation, each rank's BatchNorm statistics (raw weights and the EMA
copy): what the validation just evaluated with. Named in a config as `batchnorm_dump.DumpBatchNorm`; the DDP test
compares the ranks' files."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from effnet_lightning.callbacks import EMA


def batchnorm_buffers(network: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}{name}.{key}": getattr(module, key).detach().cpu().clone()
        for name, module in network.named_modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm)
        for key in ("running_mean", "running_var")
    }


class DumpBatchNorm(Callback):
    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        buffers = batchnorm_buffers(pl_module, "raw.")
        for callback in trainer.callbacks:
            if isinstance(callback, EMA) and callback.averaged is not None:
                buffers |= batchnorm_buffers(callback.averaged, "ema.")
        self.folder.mkdir(parents=True, exist_ok=True)
        torch.save(buffers, self.folder / f"rank{trainer.global_rank}_step{trainer.global_step}.pt")
