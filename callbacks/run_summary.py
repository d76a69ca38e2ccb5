"""RunSummary: what the run is at its start, and what it reached at its end.

- At fit start (rank 0): the scaling (name, φ, depth, width, resolution), parameters and MACs (the module's
  `macs_per_image`: model/flops.py, counted by arithmetic from the architecture: microseconds), printed and
  sent to the logger (`model/params`, `model/macs` scalars; `model/scaling` text in TensorBoard).
- At fit end: the run folder, the best checkpoint, the best raw and EMA top-1 over the validations, the mean
  training img/s (validation time excluded) and the wall time, printed as a closing block; the same best
  metrics go into TensorBoard's hparams tab with the model's hyperparameters.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from typing_extensions import override

from effnet_lightning.console import output
from effnet_lightning.model.flops import count_params

__all__ = ["RunSummary"]

BEST_KEYS = {"val/acc1": "best/val_acc1", "val_ema/acc1": "best/val_ema_acc1"}  # monitored -> hparams metric


class RunSummary(Callback):
    """Model facts at fit start; run folder, best checkpoint, best top-1 (raw, EMA), img/s and wall time at the end.

    Args:
        count_macs: count the MACs at start (flops.py's arithmetic; off for architectures it does not describe).
    """

    def __init__(self, count_macs: bool = True) -> None:
        self.count_macs = count_macs
        self.best: dict[str, float] = {}
        self._start = time.monotonic()
        self._validation_seconds = 0.0
        self._validation_start: float | None = None
        self._images = 0

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.monotonic()
        self._validation_seconds, self._images, self.best = 0.0, 0, {}
        if trainer.is_global_zero:
            self._describe_model(trainer, pl_module)

    def _describe_model(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        scaling = getattr(pl_module, "scaling", None)
        network = getattr(pl_module, "model", pl_module)
        params = count_params(network)
        facts: dict[str, float] = {"model/params": float(params)}
        text = f"{params / 1e6:.2f} M parameters"
        if scaling is not None:
            resolution = pl_module.resolution
            phi = "none" if scaling.phi is None else f"{scaling.phi:g}"
            text = (
                f"scaling {scaling.name}: phi {phi}, depth {scaling.depth:.3f}, width {scaling.width:.3f}, "
                f"resolution {resolution} px; {text}"
            )
            if self.count_macs and hasattr(pl_module, "macs_per_image"):
                macs = pl_module.macs_per_image  # by arithmetic from the architecture: microseconds
                facts["model/macs"] = float(macs)
                text += f", {macs / 1e9:.3f} GMACs per image"
        output().info(f"model: {text}")
        for logger in trainer.loggers:
            logger.log_metrics(facts, step=trainer.global_step)
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_text("model/scaling", text, global_step=trainer.global_step)

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._images += len(batch[-1]) * trainer.world_size  # targets: host shape, no sync

    @override
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._validation_start = time.monotonic()

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._validation_start is not None:
            self._validation_seconds += time.monotonic() - self._validation_start
            self._validation_start = None
        if trainer.sanity_checking:
            return
        for key in BEST_KEYS:
            if key in trainer.callback_metrics:
                value = float(trainer.callback_metrics[key])
                self.best[key] = max(value, self.best.get(key, value))

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        run_folder = trainer.log_dir  # a broadcast under DDP: every rank must ask, not only rank 0
        if not trainer.is_global_zero:
            return
        wall = time.monotonic() - self._start
        train_seconds = max(wall - self._validation_seconds, 1e-9)
        best_path = getattr(trainer.checkpoint_callback, "best_model_path", "") or "none"
        best = "  ".join(f"{key} {value:.4f}" for key, value in self.best.items()) or "no validation ran"
        output().info(
            "\n".join(
                [
                    "run summary:",
                    f"  run folder       {run_folder}",
                    f"  best checkpoint  {best_path}",
                    f"  best top-1       {best}",
                    f"  mean img/s       {self._images / train_seconds:.0f} (training, validation time excluded)",
                    f"  wall time        {datetime.timedelta(seconds=round(wall))}",
                ]
            )
        )
        metrics = {BEST_KEYS[key]: value for key, value in self.best.items()}
        if metrics:
            params = {
                k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in pl_module.hparams.items()
            }
            for logger in trainer.loggers:
                if isinstance(logger, TensorBoardLogger):
                    logger.log_hyperparams(params, metrics)
