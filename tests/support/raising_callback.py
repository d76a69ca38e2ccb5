"""A callback that raises at a chosen optimizer step: a bug (ValueError) or a user's mistake (UserError) in the
middle of a fit, for the error contract's tests. Named in a config as `raising_callback.RaiseAtStep`."""

from __future__ import annotations

from typing import Literal

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from effnet_lightning.errors import ConfigError

MESSAGE = "raised on purpose at step {step}"


class RaiseAtStep(Callback):
    def __init__(self, step: int, kind: Literal["bug", "user"] = "bug") -> None:
        self.step = step
        self.kind = kind

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            error = ValueError if self.kind == "bug" else ConfigError
            raise error(MESSAGE.format(step=self.step))
