"""EffnetCLI: LightningCLI wired for scaled EfficientNets.

- `model:` is always EfficientNetModule; `data:` is any LightningDataModule named by `class_path` (subclass
  mode), so a user's own datamodule plugs in. Datamodules take `resolution` and expose `num_classes`.
  The class the command line and its configs name is checked before jsonargparse resolves it (config_checks.py's
  `check_data_class`): a failed import or a mistyped short name is one line that says why.
- Links: the `model.scaling` section (variant/φ/multipliers, or its `resolution` when given) into
  `data.init_args.resolution` at parse time; `data.num_classes` into `model.num_classes` when the datamodule is
  built; `seed_everything` into a datamodule's `seed` left at None.
- One run folder per run: `<trainer.default_root_dir>/version_N/` holds config.yaml, checkpoints/ and the
  TensorBoard events. It is created atomically (run_dir.py) and locked while a fit trains in it. validate/test/
  predict on a checkpoint of a run write into `<run>/eval/version_N/` instead, not into a new run folder.
- Long runs survive being stopped (docs/production.md): `last:` keeps checkpoints/last.ckpt current
  (LastCheckpoint), `checkpoint:` is a stock ModelCheckpoint for the best-k files, `nonfinite:` stops or skips on
  a NaN loss. `--ckpt_path last` (or a run folder) resumes a run in its own folder (resume.py).
- Every trainer addition is a parser default, so `--print_config` shows it and YAML can change or remove it:
  `trainer.logger` (TensorBoard into the run folder), `checkpoint_io` (atomic writes), `precise_bn` (BatchNorm
  statistics recomputed before every validation and test; fit, validate, test), `rng_state`, `resume_overrides`,
  `prediction_writer` (predict only), `plain_log`, `run_summary`, `confusion_matrix`, `prediction_grid` and
  `cam_images` (fit only); set any of them to null to drop it. (The rich progress bar is
  Lightning's own default when `rich` is installed; plain_log prints lines instead when stdout is not a terminal.)
Checkpoints load with weights_only=True (`load_checkpoint` checks them first: corrupt or unsafe, in one line); the
objects an effnet checkpoint names (its ScalingSpec) are allowed for the command's loads, and no longer.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jsonargparse import Namespace, lazy_instance
from lightning.pytorch import Callback, LightningDataModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.utilities import rank_zero_only

from effnet_lightning.assembly.config_checks import RecordDataModuleInit, check_config, check_data_class
from effnet_lightning.assembly.resume import (
    RESUME_MAY_CHANGE,
    best_k_dirpath,
    check_compatible,
    explicit_values,
    resolve_ckpt_path,
)
from effnet_lightning.assembly.run_dir import RunLock, create_run_dir, discard_if_unused
from effnet_lightning.assembly.seed import draw_seed
from effnet_lightning.assembly.trainer import EffnetTrainer
from effnet_lightning.callbacks.cam_images import CAMImages
from effnet_lightning.callbacks.confusion_matrix import ConfusionMatrix
from effnet_lightning.callbacks.last_checkpoint import LastCheckpoint
from effnet_lightning.callbacks.nonfinite import NonFiniteLoss
from effnet_lightning.callbacks.plain_log import PlainLog
from effnet_lightning.callbacks.precise_bn import PreciseBN
from effnet_lightning.callbacks.prediction_grid import PredictionGrid
from effnet_lightning.callbacks.prediction_writer import PredictionWriter
from effnet_lightning.callbacks.resume_overrides import ResumeOverrides
from effnet_lightning.callbacks.rng_state import RNGState
from effnet_lightning.callbacks.run_summary import RunSummary
from effnet_lightning.datamodules.image_folder import ImageFolderDataModule, UnreadableImagesReport
from effnet_lightning.train.checkpoint_format import checkpoint_globals, load_checkpoint, trusted_globals
from effnet_lightning.train.checkpoint_io import AtomicCheckpointIO
from effnet_lightning.train.module import EfficientNetModule, resolution_of
from effnet_lightning.train.run_layout import EVAL_DIR, RUNS_DIR, checkpoints_dir

__all__ = ["DATA_HELP", "EffnetCLI"]

log = logging.getLogger(__name__)
SUBCOMMANDS = ("fit", "validate", "test", "predict")
TENSORBOARD = "lightning.pytorch.loggers.TensorBoardLogger"
DATA_HELP = (
    "The datamodule: any LightningDataModule subclass, by short name (`effnet datamodules` lists them) or dotted "
    "path, e.g. --data=CIFAR10DataModule; `--data.help NAME` lists its arguments"
)


class EffnetCLI(LightningCLI):
    resume_run: Path | None = None  # the run folder a `fit --ckpt_path ...` continues
    evaluated_run: Path | None = None  # the run folder whose checkpoint validate/test/predict evaluates
    run_dir: Path | None = None  # the run folder this command writes into
    run_lock: RunLock | None = None
    _new_root = False  # this command created trainer.default_root_dir (removed again if the start fails)

    def __init__(
        self,
        args: list[str] | None = None,
        run: bool = True,
        on_run_dir: Callable[[Path], None] | None = None,  # told the run folder once it is picked
    ) -> None:
        self._user_model: dict[str, Any] = {}
        self._on_run_dir = on_run_dir
        # `--weights_only false`: the objects a trusted checkpoint names are allow-listed while it is read (ours
        # and LightningCLI's reads of it, parse_arguments to before_instantiate_classes), never for the process.
        self._trusted_loads = contextlib.ExitStack()
        self._environment = contextlib.ExitStack()  # os.environ as it was, once a run (run=True) has ended
        try:
            # every weights-only read of the command (LightningCLI's of the hyperparameters, the Trainer's with
            # any checkpoint_io, ours) may build the objects an effnet checkpoint names
            with checkpoint_globals():
                super().__init__(
                    EfficientNetModule,
                    LightningDataModule,
                    trainer_class=EffnetTrainer,  # Trainer, with `precision: auto` resolved for the device
                    subclass_mode_data=True,
                    auto_configure_optimizers=False,  # the module scales its LR by the global batch itself
                    trainer_defaults={"default_root_dir": RUNS_DIR},
                    seed_everything_default=True,
                    save_config_kwargs={"overwrite": True},  # the run folder is ours (created atomically or resumed)
                    # raise parse errors instead of printing a 100-line usage: `effnet` reports them in one line
                    parser_kwargs={"exit_on_error": False, **{c: {"exit_on_error": False} for c in SUBCOMMANDS}},
                    args=args,
                    run=run,
                )
        except BaseException:
            if self.run_dir is not None and self.run_dir != self.resume_run:
                discard_if_unused(self.run_dir, self._new_root)  # a new run that failed before writing anything
            raise
        finally:
            self._trusted_loads.close()
            if run:
                self._environment.close()
                if self.run_lock is not None:
                    self.run_lock.release()

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
        preprocessing = getattr(self.model, "pretrained_preprocessing", None)
        adopt = getattr(self.datamodule, "use_pretrained_preprocessing", None)
        if preprocessing is not None and adopt is not None:  # before the datamodule builds its transforms
            adopt(preprocessing)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # The section's heading would be LightningDataModule's docstring, cut off after "The main advantage is:".
        # `groups` is jsonargparse's public name -> group map; `title` is the argparse group's heading.
        parser.groups["data"].title = DATA_HELP
        parser.link_arguments("model.scaling", "data.init_args.resolution", resolution_of)
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")  # best-k, stock
        parser.add_lightning_class_args(LastCheckpoint, "last")  # after it: last.ckpt has its latest best-k state
        parser.add_lightning_class_args(NonFiniteLoss, "nonfinite")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/acc1",
                "checkpoint.mode": "max",
                "checkpoint.save_last": False,  # last.ckpt is LastCheckpoint's
                "checkpoint.filename": "best-epoch{epoch}-step{step}",
                "checkpoint.auto_insert_metric_name": False,
                "trainer.logger": {
                    "class_path": TENSORBOARD,
                    "init_args": {"save_dir": RUNS_DIR, "name": "", "default_hp_metric": False},
                },
            }
        )
        # Trainer additions as visible, removable defaults (null drops one)
        parser.add_argument("--checkpoint_io", type=CheckpointIO | None, default=_default_of(AtomicCheckpointIO))
        parser.add_argument("--precise_bn", type=PreciseBN | None, default=_default_of(PreciseBN))
        parser.add_argument("--rng_state", type=RNGState | None, default=_default_of(RNGState))
        parser.add_argument("--resume_overrides", type=ResumeOverrides | None, default=_default_of(ResumeOverrides))
        parser.add_argument("--prediction_writer", type=PredictionWriter | None, default=_default_of(PredictionWriter))
        parser.add_argument("--plain_log", type=PlainLog | None, default=_default_of(PlainLog))  # fit only
        parser.add_argument("--run_summary", type=RunSummary | None, default=_default_of(RunSummary))  # fit only
        parser.add_argument(  # fit only
            "--confusion_matrix", type=ConfusionMatrix | None, default=_default_of(ConfusionMatrix)
        )
        parser.add_argument(  # fit only
            "--prediction_grid", type=PredictionGrid | None, default=_default_of(PredictionGrid)
        )
        parser.add_argument("--cam_images", type=CAMImages | None, default=_default_of(CAMImages))  # fit only

    # ---- --ckpt_path: which checkpoint, and is it compatible (runs before LightningCLI reads its hparams) ------
    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        if args is None or isinstance(args, list):  # a dict or Namespace was built in Python: nothing to read
            check_data_class(sys.argv[1:] if args is None else args)  # before jsonargparse resolves `data:`
        super().parse_arguments(parser, args)
        self.resume_run = self.evaluated_run = self.best_k_dirpath = None
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else None
        if config is None:
            return
        if config.get("seed_everything") is True:
            config.seed_everything = draw_seed(self._environment)  # Lightning's seed_everything() would use 0
        if "weights_only" in config and config.weights_only is None:
            config.weights_only = True  # torch < 2.6 would unpickle arbitrary objects
        if not config.get("ckpt_path"):
            return
        path, run = resolve_ckpt_path(str(config.ckpt_path), config.trainer.default_root_dir, fit=subcommand == "fit")
        config.ckpt_path = path
        if not Path(path).is_file():
            return  # Lightning's special values and URLs
        trusted = config.get("weights_only") is False
        checkpoint = load_checkpoint(path, trusted=trusted)
        if trusted:  # LightningCLI reads the hyperparameters weights-only right after this method
            self._trusted_loads.enter_context(trusted_globals(path))
        self.resume_run = run if subcommand == "fit" else None
        self.evaluated_run = run if subcommand != "fit" else None
        self.best_k_dirpath = best_k_dirpath(checkpoint)
        self._user_model = explicit_values(config.model.as_dict(), EfficientNetModule)
        check_compatible(path, run, checkpoint, self._user_model, config.get("data"), check_data=subcommand == "fit")
        what = f"run {run}" if self.resume_run else "a new run"
        log.info(
            f"effnet {subcommand}: {'resuming' if subcommand == 'fit' else 'loading'} {path} "
            f"(step {checkpoint.get('global_step', '?')}, epoch {checkpoint.get('epoch', '?')})"
            + (f" into {what}" if subcommand == "fit" else "")
        )

    def before_instantiate_classes(self) -> None:
        """After parsing, before anything is built:
        - impossible values stop here with one line (config_checks.py);
        - the run's seed (drawn by now when `seed_everything: true`) also seeds the training data order and
          augmentations, for a datamodule with a `seed` argument left at None;
        - LightningCLI copied the checkpoint's hyperparameters over the config; the LR and weight decay given now
          win (ResumeOverrides applies them to the restored optimizer);
        - then the run folder is picked (and locked while a fit trains in it)."""
        self._trusted_loads.close()  # the checkpoint's hyperparameters have been read
        config = self.config[self.subcommand] if self.subcommand else self.config
        if self.subcommand is not None:
            check_config(self.subcommand, config)
        seed, data = config.get("seed_everything"), config.get("data")
        init_args = data.get("init_args") if data is not None else None
        if isinstance(seed, int) and not isinstance(seed, bool) and init_args is not None:
            if "seed" in init_args and init_args.seed is None:
                init_args.seed = seed
        for key in RESUME_MAY_CHANGE["model"] & {"lr", "weight_decay"}:
            if key in self._user_model:
                config.model[key] = self._user_model[key]
        logger = config.trainer.get("logger")
        if not (isinstance(logger, Namespace) and logger.get("class_path") == TENSORBOARD):
            return
        # A config.yaml names the folder it was saved in (save_dir/version): never reuse that for a new run, and
        # follow a run folder that was moved since.
        if self.resume_run is not None:
            self.run_dir = self.resume_run
        elif rank_zero_only.rank == 0 and self.evaluated_run is not None:  # results beside the run they judge
            self._new_root = not (self.evaluated_run / EVAL_DIR).exists()
            self.run_dir = create_run_dir(self.evaluated_run / EVAL_DIR)
        elif rank_zero_only.rank == 0:
            self._new_root = not Path(config.trainer.default_root_dir).exists()
            self.run_dir = create_run_dir(config.trainer.default_root_dir)
        else:
            return  # other DDP ranks: trainer.log_dir is rank 0's
        if self._on_run_dir is not None:
            self._on_run_dir(self.run_dir)
        logger.init_args.save_dir, logger.init_args.name = str(self.run_dir.parent), ""
        logger.init_args.version = self.run_dir.name
        if self.subcommand == "fit" and rank_zero_only.rank == 0:
            self.run_lock = RunLock(self.run_dir).acquire()

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The trainer additions above: checkpoint_io as a plugin, the callbacks appended after the user's."""
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        trainer = config["trainer"]
        plugins = trainer.get("plugins") or []
        plugins = list(plugins) if isinstance(plugins, list) else [plugins]
        if config["checkpoint_io"] is not None and not any(isinstance(p, CheckpointIO) for p in plugins):
            kwargs["plugins"] = [*plugins, config["checkpoint_io"]]
        self._place_best_k(config.get("checkpoint"))
        extra: list[Callback] = []
        user_callbacks = trainer.get("callbacks") or []
        user_callbacks = user_callbacks if isinstance(user_callbacks, list) else [user_callbacks]
        reported = any(isinstance(c, UnreadableImagesReport) for c in user_callbacks)
        if isinstance(self.datamodule, ImageFolderDataModule) and not reported:
            extra.append(UnreadableImagesReport())  # the per-epoch count of skipped image files needs epoch hooks
        # None: built with run=False by code that then calls trainer.test itself (the study's evaluation)
        if self.subcommand in (None, "fit", "validate", "test") and config["precise_bn"] is not None:
            extra.append(config["precise_bn"])
        if self.subcommand == "predict" and config["prediction_writer"] is not None:
            extra.append(config["prediction_writer"])
        if self.subcommand == "fit":
            visuals = ("plain_log", "run_summary", "confusion_matrix", "prediction_grid", "cam_images")
            extra += [config[name] for name in visuals if config[name] is not None]
        # RNGState after the user's callbacks, whose on_train_start may draw random numbers; LightningCLI appends the
        # `last:`, `checkpoint:` and `nonfinite:` sections after these, and they draw none.
        extra += [c for c in (config["resume_overrides"], config["rng_state"]) if c is not None]
        if extra:
            kwargs["callbacks"] = [*user_callbacks, *extra]
        return super().instantiate_trainer(**kwargs)

    def _place_best_k(self, best_k: Any) -> None:
        """The best-k folder as ModelCheckpoint compares it when its state is reloaded: realpath'd, as it stores a
        dirpath given to it. A fit in a relative run folder would otherwise store a relative one, and validate/test/
        predict warn "dirpath has changed" and drop the best-k state. Evaluation gets the folder its checkpoint
        recorded, wherever that file lies now (it writes no checkpoint there). Set on the instance, not in the
        config: config.yaml keeps `null`, so a moved run folder still resumes into its new place. Rank 0 only;
        setup broadcasts it to the others."""
        if not isinstance(best_k, ModelCheckpoint) or best_k.dirpath is not None or self.run_dir is None:
            return
        if self.subcommand == "fit":
            best_k.dirpath = os.path.realpath(checkpoints_dir(self.run_dir))
        elif self.best_k_dirpath is not None:
            best_k.dirpath = self.best_k_dirpath
        elif self.evaluated_run is not None:
            best_k.dirpath = os.path.realpath(checkpoints_dir(self.evaluated_run))


@functools.cache
def _class_path(cls: type) -> Namespace:
    """`class_path` of a trainer addition's default, as jsonargparse writes a `lazy_instance` default. Cached:
    lazy_instance looks up its caller with inspect.stack(), which reads every frame of the stack: 20 ms a call
    inside a study or a test run, and a CLI adds nine such defaults per subcommand."""
    return lazy_instance(cls).lazy_get_init_data()


def _default_of(cls: type) -> dict[str, Any]:
    """The default for one parser, as the dict with `class_path` that jsonargparse takes; a fresh copy each time
    (a parser keeps and may change its defaults)."""
    return _class_path(cls).as_dict()
