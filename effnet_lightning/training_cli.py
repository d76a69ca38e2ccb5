"""EffnetCLI: LightningCLI wired for scaled EfficientNets.

- `model:` is always EfficientNetModule; `data:` is any LightningDataModule named by `class_path` (subclass
  mode), so a user's own datamodule plugs in. Datamodules take `resolution` and expose `num_classes`.
- Links: resolution from the model's scaling into `data.init_args.resolution` at parse time (computed from
  variant/φ/multipliers, or `model.resolution` when given); `data.num_classes` into `model.num_classes` when
  the datamodule is built.
- One run directory per run: runs/version_N/ holds config.yaml, checkpoints/ and the TensorBoard events.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger

from effnet_lightning.callbacks.prediction_writer import PredictionWriter
from effnet_lightning.module import EfficientNetModule, resolution_of

RUNS_DIR = "runs"
SUBCOMMANDS = ("fit", "validate", "test", "predict")
SCALING_KEYS = ("variant", "phi", "depth", "width", "resolution", "alpha", "beta", "gamma", "base_resolution")


class EffnetCLI(LightningCLI):
    def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
        super().__init__(
            EfficientNetModule,
            LightningDataModule,
            subclass_mode_data=True,
            auto_configure_optimizers=False,  # the module scales its LR by the global batch itself
            trainer_defaults={"default_root_dir": RUNS_DIR},
            seed_everything_default=True,
            # raise parse errors instead of printing a 100-line usage: `effnet` reports them in one line
            parser_kwargs={"exit_on_error": False, **{c: {"exit_on_error": False} for c in SUBCOMMANDS}},
            args=args,
            run=run,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments(tuple(f"model.{k}" for k in SCALING_KEYS), "data.init_args.resolution", resolution_of)
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/acc1",
                "checkpoint.mode": "max",
                "checkpoint.save_last": True,
                "checkpoint.filename": "best-epoch{epoch}-step{step}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Default logger writes to runs/version_N (no "lightning_logs/"); rich progress bar; predict writes."""
        config = self._get(self.config_init, "trainer", default={})
        if config.get("logger") in (None, True):
            kwargs["logger"] = TensorBoardLogger(config["default_root_dir"], name="", default_hp_metric=False)
        callbacks = config.get("callbacks") or []
        callbacks = list(callbacks) if isinstance(callbacks, list) else [callbacks]
        if config.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.append(RichProgressBar())
        if self.subcommand == "predict":
            callbacks.append(PredictionWriter())
        return super().instantiate_trainer(**kwargs, callbacks=callbacks)
