"""EffnetCLI: LightningCLI wired for scaled EfficientNets.

- `model:` is always EfficientNetModule; `data:` is any LightningDataModule named by `class_path` (subclass
  mode), so a user's own datamodule plugs in. Datamodules take `resolution` and expose `num_classes`.
- Links: the `model.scaling` section (variant/φ/multipliers, or its `resolution` when given) into
  `data.init_args.resolution` at parse time; `data.num_classes` into `model.num_classes` when the datamodule is
  built.
- One run directory per run: runs/version_N/ holds config.yaml, checkpoints/ and the TensorBoard events.
- Long runs survive being stopped (docs/production.md): `checkpoint:` is a RunCheckpoint (last.ckpt
  also every N steps / M minutes and on SIGTERM), `nonfinite:` stops or skips on a NaN loss, RNG states go
  into checkpoints, writes are atomic, and `--ckpt_path last` (or a run directory) resumes a run in its own
  folder (effnet_lightning/resume.py). Checkpoints load with weights_only=True unless `--weights_only false`.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.plugins.io import CheckpointIO

from effnet_lightning.callbacks.nonfinite import NonFiniteLoss
from effnet_lightning.callbacks.prediction_writer import PredictionWriter
from effnet_lightning.callbacks.rng_state import RNGState
from effnet_lightning.callbacks.run_checkpoint import RunCheckpoint
from effnet_lightning.checkpoint_io import AtomicCheckpointIO
from effnet_lightning.module import EfficientNetModule, resolution_of
from effnet_lightning.resume import resolve_ckpt_path
from effnet_lightning.user_errors import RecordDataModuleInit, check_config

RUNS_DIR = "runs"
SUBCOMMANDS = ("fit", "validate", "test", "predict")
LAST_EVERY_MINUTES = 15  # default refresh of last.ckpt: a kill -9 or power cut loses at most ~15 min of training


class EffnetCLI(LightningCLI):
    resume_run: Path | None = None  # the run directory a `fit --ckpt_path ...` continues

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

    def _parse_ckpt_path(self) -> None:
        """Before LightningCLI reads the checkpoint's hyperparameters: resolve `last` or a run directory to a file
        (resume.py) and default to weights-only loading (torch < 2.6 would unpickle arbitrary objects)."""
        self.resume_run = None
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else None
        if config is not None and config.get("ckpt_path"):
            config.ckpt_path, run = resolve_ckpt_path(str(config.ckpt_path), config.trainer.default_root_dir)
            self.resume_run = run if subcommand == "fit" else None
        if config is not None and "weights_only" in config and config.weights_only is None:
            config.weights_only = True
        try:
            super()._parse_ckpt_path()  # reads the model hyperparameters, always weights-only
        except pickle.UnpicklingError as err:
            if config.get("weights_only") is False:
                return  # trusted by the user: the Trainer loads it with weights_only=False
            reason = re.search(r"WeightsUnpickler error: ([^.\n]*)", str(err))
            raise ValueError(
                f"{config.ckpt_path} holds Python objects that weights-only loading refuses to unpickle "
                f"({reason.group(1) if reason else 'not a plain checkpoint'}); such a file can run code when "
                "loaded. Pass --weights_only false only if you trust where it came from."
            ) from err

    def before_instantiate_classes(self) -> None:
        """Impossible values stop here, before data or model is built, with one line (user_errors.py). The run's
        seed (drawn by now when `seed_everything: true`) also seeds the training data order and augmentations,
        for a datamodule with a `seed` argument left at None."""
        if self.subcommand is not None:
            check_config(self.subcommand, self.config[self.subcommand])
        config = self.config[self.subcommand] if self.subcommand else self.config
        seed, data = config.get("seed_everything"), config.get("data")
        init_args = data.get("init_args") if data is not None else None
        if isinstance(seed, int) and not isinstance(seed, bool) and init_args is not None:
            if "seed" in init_args and init_args.seed is None:
                init_args.seed = seed

    def instantiate_classes(self) -> None:
        """A datamodule constructor that raises is reported with its own message, not jsonargparse's Union report."""
        record = RecordDataModuleInit()
        self.parser.add_instantiator(record, LightningDataModule, subclasses=True, prepend=True)
        try:
            super().instantiate_classes()
        except ValueError:
            if record.failure is None:
                raise
            raise record.failure from record.failure.error

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("model.scaling", "data.init_args.resolution", resolution_of)
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.add_lightning_class_args(NonFiniteLoss, "nonfinite")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/acc1",
                "checkpoint.mode": "max",
                "checkpoint.save_last": True,
                "checkpoint.filename": "best-epoch{epoch}-step{step}",
                "checkpoint.auto_insert_metric_name": False,
                "checkpoint.last_every_minutes": LAST_EVERY_MINUTES,
            }
        )

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Default logger writes to runs/version_N (no "lightning_logs/"), or into the run a fit resumes; rich
        progress bar; predict writes; RNG states in checkpoints; atomic checkpoint writes."""
        config = self._get(self.config_init, "trainer", default={})
        if config.get("logger") in (None, True):
            root, version = config["default_root_dir"], None
            if self.resume_run is not None:  # keep writing into the resumed run's folder
                root, version = str(self.resume_run.parent), self.resume_run.name
                self.save_config_kwargs["overwrite"] = True  # config.yaml of this continuation
            kwargs["logger"] = TensorBoardLogger(root, name="", version=version, default_hp_metric=False)
        plugins = config.get("plugins") or []
        plugins = list(plugins) if isinstance(plugins, list) else [plugins]
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            kwargs["plugins"] = [*plugins, AtomicCheckpointIO()]
        callbacks = config.get("callbacks") or []
        callbacks = list(callbacks) if isinstance(callbacks, list) else [callbacks]
        if config.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.append(RichProgressBar())
        if self.subcommand == "predict":
            callbacks.append(PredictionWriter())
        callbacks.append(RNGState())  # after the others, so its on_train_start restores the RNGs last
        return super().instantiate_trainer(**kwargs, callbacks=callbacks)
