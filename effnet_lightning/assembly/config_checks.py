"""Mistakes in a parsed `effnet` config that would otherwise surface as a traceback, or not at all.

Run once per command, after parsing and before anything is built (LightningCLI's public
`before_instantiate_classes` hook), so a wrong number costs no import of data and no model. Each check raises
`ConfigError` with one sentence that names the key and says what to do; `effnet` prints it and exits 2. What is
merely unwise (an input smaller than the network's stride) is a warning on stderr and the run goes on. The `data:`
values are checked by the datamodule class itself (`check_arguments`, which its constructor runs too), so a check
has one wording wherever it fails.

A datamodule whose constructor raises (a user's plugin, or a value only the class can judge) would reach the user
as jsonargparse's ten-line report of a failed Union, with the original exception flattened into its text.
`RecordDataModuleInit` constructs the datamodule itself and keeps that exception, so `effnet` can show its own
type and message.

`check_data_class` runs before parsing: the datamodule class that the command line and its config files name must
exist (plugins.resolve says why not), and `--data=X` over a config's other class warns which of the config's
settings carry over into X (jsonargparse keeps every same-named one, e.g. the config's data_dir).
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from effnet_lightning.errors import ConfigError, UserError

__all__ = [
    "ConfigError",
    "DataChoice",
    "DataModuleInitError",
    "RecordDataModuleInit",
    "check_config",
    "check_data_class",
    "data_choice",
]

log = logging.getLogger(__name__)
NETWORK_STRIDE = 32  # px: EfficientNet's stem and four stride-2 stages halve the input five times (paper Table 1)
LIMIT_KEYS = ("limit_train_batches", "limit_val_batches", "limit_test_batches", "limit_predict_batches")
GPU_ACCELERATORS = ("gpu", "cuda")
CLASS_NAME = re.compile(r"[A-Za-z_][\w.]*")  # a short class name or a dotted path (not a YAML string)
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")  # `--data file.yaml`: the data section from a file
DATA_ARG = re.compile(r"--data(?:\.init_args)?\.(\w+)")  # --data.data_dir or --data.init_args.data_dir


class DataModuleInitError(UserError):
    """The datamodule's own constructor raised (a value only the class can judge, or a user's plugin that cannot
    start); `effnet` shows the class and the original message."""

    def __init__(self, class_name: str, error: Exception) -> None:
        super().__init__(f"data: {class_name}(...) failed: {type(error).__name__}: {error}")
        self.error = error


class RecordDataModuleInit:
    """A jsonargparse instantiator (public `ArgumentParser.add_instantiator`) for the `data:` class that keeps
    the exception its constructor raised. It takes the place of LightningCLI's own, which only adds the config
    as the hyperparameters `save_hyperparameters` records: our datamodules never call it (the CLI saves the
    whole config), and a plugin that does still records its arguments, as it would outside the CLI."""

    def __init__(self) -> None:
        self.failure: DataModuleInitError | None = None

    def __call__(self, class_type: type, *args: Any, **kwargs: Any) -> Any:
        try:
            return class_type(*args, **kwargs)
        except Exception as err:
            self.failure = DataModuleInitError(class_type.__name__, err)
            raise


@dataclass
class DataChoice:
    """The `data:` class as the command line and its config files set it, in their order."""

    class_value: str | None = None
    config_keys: set[str] = field(default_factory=set)  # init_args of the config that set the current class
    replaced: str | None = None  # the config's class that a later `--data=X` replaced
    carried: set[str] = field(default_factory=set)  # the config's settings that `--data=X` kept
    command_line_keys: set[str] = field(default_factory=set)  # --data.KEY given on the command line


def init_arguments(cls: type) -> set[str] | None:
    """The keyword arguments `cls(...)` takes, following `**kwargs` into the base classes' constructors as
    jsonargparse does; None when the last constructor of that chain still takes any keyword."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(vars(klass)["__init__"]).parameters
        named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        names |= {name for name, p in parameters.items() if p.kind in named and name != "self"}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            return names
    return None


def check_data_class(args: Sequence[str]) -> None:
    """Raise plugins.DataClassError when the datamodule named cannot be used; warn about settings carried over."""
    from effnet_lightning.assembly import plugins

    choice = data_choice(args)
    if choice.class_value is None:
        return
    cls = plugins.resolve(choice.class_value)
    if choice.replaced is None:
        return
    try:
        if plugins.resolve(choice.replaced) is cls:
            return
    except plugins.DataClassError:
        pass  # the config's class is gone; the command line's replaces it all the same
    accepted = init_arguments(cls)
    carried = sorted(k for k in choice.carried - choice.command_line_keys if accepted is None or k in accepted)
    if carried:
        log.warning(
            f"effnet: warning: --data={choice.class_value} replaces the config's {choice.replaced} but keeps its "
            f"data settings {', '.join(carried)} (same-named arguments carry over); set them on the command line "
            "if the new class's defaults were meant"
        )


def data_choice(args: Sequence[str]) -> DataChoice:
    """Follow `--config FILE`, `--data X` (a class, or a file/YAML of the data section), `--data.class_path X`
    and `--data.KEY V` through the arguments in order, as jsonargparse applies them."""
    choice = DataChoice()
    tokens = list(args)
    for i, token in enumerate(tokens):
        flag, has_value, value = token.partition("=")
        if not has_value:
            value = tokens[i + 1] if i + 1 < len(tokens) else ""
        if flag == "--config":
            section = _yaml_file(value).get("data")
            _apply_section(choice, section)
        elif flag in ("--data", "--data.class_path"):
            if _is_class_name(value):
                _switch_class(choice, value)
            elif flag == "--data":
                _apply_section(choice, _yaml_file(value) if Path(value).is_file() else _yaml(value))
        elif (match := DATA_ARG.fullmatch(flag)) and match.group(1) != "help":
            choice.command_line_keys.add(match.group(1))
    return choice


def _is_class_name(value: str) -> bool:
    """A short class name or a dotted path, not the path of a config file for the data section."""
    return bool(CLASS_NAME.fullmatch(value)) and not value.endswith(CONFIG_SUFFIXES) and not Path(value).is_file()


def _switch_class(choice: DataChoice, value: str) -> None:
    if choice.class_value is not None and choice.class_value != value and choice.config_keys:
        choice.replaced, choice.carried = choice.class_value, set(choice.config_keys)
    choice.class_value, choice.config_keys = value, set()


def _apply_section(choice: DataChoice, section: Any) -> None:
    """A config's `data:` section: a class name, or {class_path, init_args}."""
    if isinstance(section, str) and _is_class_name(section):
        choice.class_value, choice.config_keys, choice.replaced = section, set(), None
    elif isinstance(section, dict):
        if isinstance(section.get("class_path"), str):
            choice.class_value, choice.config_keys, choice.replaced = section["class_path"], set(), None
        init_args = section.get("init_args")
        choice.config_keys |= set(init_args) if isinstance(init_args, dict) else set()


def _yaml_file(path: str) -> dict[str, Any]:
    """A config file's mapping; {} when it is unreadable (jsonargparse reports that itself)."""
    try:
        loaded = _yaml(Path(path).read_text())
    except OSError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _yaml(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def check_config(subcommand: str, config: Mapping[str, Any]) -> None:
    """Raise ConfigError for the first impossible value in `config` (the subcommand's section)."""
    if subcommand == "predict" and not config.get("ckpt_path"):
        raise ConfigError(
            "--ckpt_path is required: pass a .ckpt file, a run directory or 'last' (without one the predictions "
            "would come from untrained, random weights)"
        )
    _check_trainer(config.get("trainer") or {})
    _check_data(config.get("data") or {})
    if subcommand == "fit":
        _check_memory(config)


def _check_trainer(trainer: Mapping[str, Any]) -> None:
    for key in ("max_epochs", "max_steps"):
        value = trainer.get(key)
        if value is not None and value < -1:
            raise ConfigError(f"trainer.{key} must be -1 (no limit), 0 or more; got {value}")
    for key in LIMIT_KEYS:
        value = trainer.get(key)
        if isinstance(value, bool) or value is None:
            continue
        if value < 0 or (isinstance(value, float) and value > 1):
            raise ConfigError(
                f"trainer.{key} must be a number of batches (0 or more) or a fraction in [0.0, 1.0]; got {value}"
            )
    accelerator = trainer.get("accelerator")
    if isinstance(accelerator, str) and accelerator.lower() in GPU_ACCELERATORS:
        from lightning.pytorch.accelerators import CUDAAccelerator

        if not CUDAAccelerator.is_available():
            raise ConfigError(
                f"trainer.accelerator is {accelerator!r} but this machine has no usable CUDA GPU; "
                "use --trainer.accelerator cpu (or auto)"
            )
    root = trainer.get("default_root_dir")
    if root is not None:
        blocking = next((p for p in (Path(root), *Path(root).parents) if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            raise ConfigError(
                f"trainer.default_root_dir {root} cannot hold runs: {blocking} is a file; "
                "choose a folder (it is created if missing)"
            )


def _check_data(data: Mapping[str, Any]) -> None:
    """The datamodule's own argument checks (`ImageDataModule.check_arguments`); for a class that is no
    ImageDataModule, those of the arguments every image datamodule shares (batch_size, num_workers, std)."""
    from effnet_lightning.assembly import plugins
    from effnet_lightning.datamodules.base import ImageDataModule

    init = data.get("init_args") or {}  # subclass mode: {class_path, init_args}
    class_path = data.get("class_path")
    cls = plugins.resolve(class_path) if isinstance(class_path, str) else None
    checks = cls if isinstance(cls, type) and issubclass(cls, ImageDataModule) else ImageDataModule
    checks.check_arguments(init)
    resolution = init.get("resolution")
    if resolution is not None and 0 < resolution < NETWORK_STRIDE:
        log.warning(
            f"effnet: warning: the input resolution {resolution} px is below the network's stride of "
            f"{NETWORK_STRIDE} px, so its last feature map is a single cell of mostly padding; "
            f"set model.scaling.resolution to {NETWORK_STRIDE} or more"
        )


def _check_memory(config: Mapping[str, Any]) -> None:
    """Before the model is built: refuse a model and batch whose training memory (counted on the meta device,
    memory.py) exceeds the device's memory, with the estimate and the limit. `--model.scaling.phi 100` is
    refused by arithmetic alone, in microseconds; without this it grew to 15.9 GB in 11 minutes."""
    from effnet_lightning.model import memory
    from effnet_lightning.train.checkpoint_format import spec_of

    model = config.get("model") or {}
    scaling = model.get("scaling")
    if scaling is None:
        return
    spec = spec_of(scaling)
    accelerator = (config.get("trainer") or {}).get("accelerator")
    limit = memory.device_memory_bytes(accelerator if isinstance(accelerator, str) else "auto")
    batch_size = ((config.get("data") or {}).get("init_args") or {}).get("batch_size")
    num_classes = model.get("num_classes") or 1000
    try:
        if isinstance(batch_size, int):
            grad_checkpointing = bool(model.get("grad_checkpointing", False))
            memory.check_fits(spec, batch_size, limit, grad_checkpointing, num_classes)
        else:
            memory.check_size(spec.resolve(), num_classes, limit)
    except ValueError as err:
        raise ConfigError(f"model.scaling: {err}") from err
