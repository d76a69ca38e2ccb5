"""ResumeOverrides: the learning rate and weight decay given when resuming win over the checkpoint's.

"Lower the LR and resume" is the standard answer to a diverged run, but a checkpoint restores the optimizer's
param groups (lr, initial_lr, weight_decay) as they were. After the restore (`on_train_start` runs after it) this
callback rescales each group's `lr` and `initial_lr` by new/old `model.lr` (the module scales the LR by the
global batch, so a ratio keeps that scaling) and sets `weight_decay` on the groups that decay (the others,
BatchNorm and biases, stay at 0). It says what it changed in one line.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

__all__ = ["ResumeOverrides"]

log = logging.getLogger(__name__)


class ResumeOverrides(Callback):
    """Applies the module's current `lr` / `weight_decay` hyperparameters to a resumed optimizer."""

    def __init__(self) -> None:
        self._saved: dict[str, float] = {}  # lr/weight_decay the checkpoint was trained with

    @override
    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        saved = checkpoint.get("hyper_parameters", {})
        self._saved = {k: saved[k] for k in ("lr", "weight_decay") if isinstance(saved.get(k), (int, float))}

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        saved, self._saved = self._saved, {}
        lr, weight_decay = pl_module.hparams.get("lr"), pl_module.hparams.get("weight_decay")
        changed = []
        if lr is not None and saved.get("lr") not in (None, lr):
            ratio = lr / saved["lr"]
            for optimizer in trainer.optimizers:
                for group in optimizer.param_groups:
                    group["lr"] *= ratio
                    if "initial_lr" in group:  # the base of the LR schedule
                        group["initial_lr"] *= ratio
            changed.append(f"model.lr {saved['lr']:g} -> {lr:g}")
        if weight_decay is not None and saved.get("weight_decay") not in (None, weight_decay):
            for optimizer in trainer.optimizers:
                for group in optimizer.param_groups:
                    if group.get("weight_decay"):
                        group["weight_decay"] = weight_decay
            changed.append(f"model.weight_decay {saved['weight_decay']:g} -> {weight_decay:g}")
        if changed and trainer.is_global_zero:
            message = f"effnet: resumed with {', '.join(changed)} (the rest of the optimizer state is the checkpoint's)"
            log.info(message)
