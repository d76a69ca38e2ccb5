"""What a checkpoint of `effnet fit` holds, and its one reader, for export, cam, predict, EMA loading and the study.

A checkpoint is Lightning's dict (`torch.save`, a zip archive) with these entries:
- `state_dict`: the LightningModule's tensors, the timm network under `model.`. With the EMA callback these are
  the averaged weights, `current_model_state` the raw ones and `averaging_state` the update count (the layout of
  Lightning's `WeightAveraging`); without it, the raw weights.
- `hyper_parameters`: EfficientNetModule's constructor arguments; `scaling` is a ScalingSpec (or its fields).
- `class_names` (list[str], one per output) and `data_config` (the evaluation preprocessing in timm's data-config
  keys), written by the module; checkpoints without `data_config` get timm's ImageNet defaults.
Everything loads weights-only: a checkpoint that names other Python objects is refused unless the user trusts it.
Imports torch, timm and the model layer only, not Lightning: `effnet export` and `effnet cam` read checkpoints
without LightningCLI and the callbacks.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import pickle
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from effnet_lightning.errors import CheckpointError, ConfigError, CorruptFileError, MissingFileError
from effnet_lightning.model.network import TF_BN_EPS, TF_BN_MOMENTUM, create_model
from effnet_lightning.model.scaling import Scaling, ScalingSpec

__all__ = [
    "AVERAGING_STATE",
    "CHECKPOINT_GLOBALS",
    "CLASS_NAMES_KEY",
    "DATA_CONFIG_KEY",
    "NETWORK_PREFIX",
    "RAW_STATE",
    "STATE",
    "Selected",
    "TrainedCheckpoint",
    "Weights",
    "allow_globals",
    "checkpoint_globals",
    "data_config",
    "default_class_names",
    "has_ema",
    "imagenet_data_config",
    "load_checkpoint",
    "remove_globals",
    "selected_checkpoint",
    "spec_of",
    "trusted_globals",
]

log = logging.getLogger(__name__)

STATE = "state_dict"  # Lightning's: the module's tensors (the EMA ones when the EMA callback ran)
RAW_STATE = "current_model_state"  # Lightning's WeightAveraging: the raw tensors when STATE holds the averaged ones
AVERAGING_STATE = "averaging_state"  # WeightAveraging: {"n_averaged": tensor}
HYPER_PARAMETERS = "hyper_parameters"  # Lightning's save_hyperparameters()
CLASS_NAMES_KEY = "class_names"  # list[str], one per output index
DATA_CONFIG_KEY = "data_config"  # eval preprocessing as timm's data-config dict
NETWORK_PREFIX = "model."  # EfficientNetModule keeps the timm network in `self.model`
DEFAULT_NUM_CLASSES = 1000  # EfficientNetModule's default
# timm's eval preprocessing of its ImageNet EfficientNets (timm.data.constants, pretrained_cfg of efficientnet_b0)
IMAGENET_INTERPOLATION, IMAGENET_CROP_PCT = "bicubic", 0.875
Weights = Literal["ema", "raw"]
# The objects an effnet checkpoint names besides tensors and builtins: the spec is our own frozen dataclass of
# numbers and strings, also under the name checkpoints written before the package had layers pickled it by
# (effnet_lightning/scaling.py). Allowed for weights-only loads inside `checkpoint_globals()` only.
CHECKPOINT_GLOBALS = (ScalingSpec, (ScalingSpec, "effnet_lightning.scaling.ScalingSpec"))


def default_class_names(num_classes: int) -> list[str]:
    """The names of classes that no datamodule or checkpoint named: "0", "1", ..."""
    return [str(i) for i in range(num_classes)]


def data_config(
    resolution: int,
    mean: Sequence[float],
    std: Sequence[float],
    interpolation: str,
    crop_pct: float,
    eval_side_range: Sequence[int] | None = None,
) -> dict[str, Any]:
    """The evaluation preprocessing a checkpoint records under `data_config`, in timm's data-config keys
    (`timm.data.resolve_data_config`): input_size, mean/std on the 0-1 scale, interpolation, and crop_pct (the
    share of the resized image the center crop keeps). `eval_side_range` [low, high], when given: eval resized each
    image's shorter side to clamp(side, low, high) before the center crop, which timm's single crop_pct (the
    photos' value) cannot say. Plain lists, floats and strings: it loads weights-only."""
    config = {
        "input_size": [3, resolution, resolution],
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "interpolation": str(interpolation),
        "crop_pct": float(crop_pct),
        "crop_mode": "center",
    }
    if eval_side_range is not None:
        config["eval_side_range"] = [int(side) for side in eval_side_range]
    return config


def imagenet_data_config(resolution: int) -> dict[str, Any]:
    """timm's ImageNet evaluation preprocessing at `resolution` px: for checkpoints that predate `data_config`."""
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    return data_config(
        resolution, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, IMAGENET_INTERPOLATION, IMAGENET_CROP_PCT
    )


def spec_of(section: Any) -> ScalingSpec:
    """The ScalingSpec of a `scaling` section as a checkpoint or a parsed config holds it: the spec itself, its
    fields as a dict, or jsonargparse's Namespace of them."""
    if isinstance(section, ScalingSpec):
        return section
    return ScalingSpec(**(section.as_dict() if hasattr(section, "as_dict") else dict(section)))


def has_ema(checkpoint: dict[str, Any]) -> bool:
    """Whether `state_dict` holds EMA weights (and `current_model_state` the raw ones)."""
    return RAW_STATE in checkpoint and AVERAGING_STATE in checkpoint


@contextlib.contextmanager
def checkpoint_globals() -> Iterator[None]:
    """Allow-list CHECKPOINT_GLOBALS for weights-only loads inside this block: wherever an effnet checkpoint is
    read (our reader, the initial weights, `load_from_checkpoint`, the whole `effnet` command with LightningCLI's
    read of its hyperparameters; a Trainer's restore from EfficientNetModule's setup on, `allow_globals`).
    Scoped: torch's list is as it was afterwards, so other loads in the process keep torch's own rules."""
    with _allowed(CHECKPOINT_GLOBALS):
        yield


@contextlib.contextmanager
def trusted_globals(path: str | Path) -> Iterator[None]:
    """Allow-list the Python objects that `path` names, for weights-only loads inside this block only: what
    `--weights_only false` means for a checkpoint the user trusts. torch's list is as it was afterwards."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        objects = [_import(name) for name in names]
    except (ImportError, AttributeError) as err:  # the file names something this environment lacks
        raise CheckpointError(f"{path} needs {err} to load; install what it was saved with") from err
    with _allowed(objects):
        yield


def allow_globals(objects: Iterable[Any] = CHECKPOINT_GLOBALS) -> list[Any]:
    """Put those of `objects` that torch's weights-only allow-list lacks on it; returns them, for `remove_globals`.
    For a load that a block cannot enclose: the Trainer's restore of `ckpt_path` (EfficientNetModule's setup)."""
    present = torch.serialization.get_safe_globals()
    added = [o for o in objects if o not in present]
    torch.serialization.add_safe_globals(added)
    return added


def remove_globals(added: list[Any]) -> None:
    """Take what `allow_globals` added off torch's list again, and nothing else."""
    if added:
        kept = [o for o in torch.serialization.get_safe_globals() if o not in added]
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(kept)


@contextlib.contextmanager
def _allowed(objects: Iterable[Any]) -> Iterator[None]:
    """`objects` allowed inside the block. Not torch's own `safe_globals` block, which removes every entry it was
    given when it ends, also one that an enclosing block or the caller had allowed."""
    added = allow_globals(objects)
    try:
        yield
    finally:
        remove_globals(added)


def load_checkpoint(path: str | Path, trusted: bool = False) -> dict[str, Any]:
    """The checkpoint as a dict, or a UserError that says whether the file is missing, corrupt or holds Python
    objects.

    torch.save writes a zip archive; anything else (empty, truncated, random bytes) is reported as corrupt, never
    as "holds Python objects", which would push users to turn off the safety check for a merely damaged file.
    `trusted` (`--weights_only false`): the objects the file names are allow-listed for this one load."""
    if not Path(path).is_file():
        raise MissingFileError(f"checkpoint {path} does not exist; pass a .ckpt file written by effnet fit")
    if not zipfile.is_zipfile(path):
        raise CorruptFileError(
            f"{path} is not a valid checkpoint (corrupt, truncated or not written by torch.save); "
            "resume from another checkpoint, or start without --ckpt_path"
        )
    try:
        with checkpoint_globals(), trusted_globals(path) if trusted else contextlib.nullcontext():
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as err:  # a well-formed archive whose pickle names objects weights-only refuses
        raise CheckpointError(
            f"{path} holds Python objects that weights-only loading refuses to unpickle; such a file can run code "
            "when loaded. Pass --weights_only false only if you trust where it came from"
        ) from err
    except (RuntimeError, EOFError, KeyError, OSError) as err:  # torch's reports of a damaged member in the archive
        raise CorruptFileError(
            f"{path} is not a valid checkpoint (corrupt: {type(err).__name__}); use another one"
        ) from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} is not a Lightning checkpoint (it holds a {type(checkpoint).__name__})")
    return checkpoint


def _import(qualified_name: str) -> Any:
    """`module.Class` (as torch names a pickled global) -> the object, for torch's allow-list."""
    module, _, name = qualified_name.rpartition(".")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class TrainedCheckpoint:
    """A checkpoint of EfficientNetModule read weights-only: its network's scaling, weights, classes and
    preprocessing."""

    path: Path
    content: dict[str, Any]

    @classmethod
    def read(cls, path: str | Path, trusted: bool = False) -> TrainedCheckpoint:
        return cls(Path(path), load_checkpoint(path, trusted))

    @property
    def hparams(self) -> dict[str, Any]:
        return self.content.get(HYPER_PARAMETERS) or {}

    @property
    def spec(self) -> ScalingSpec:
        return spec_of(self.hparams.get("scaling", ScalingSpec()))

    @property
    def scaling(self) -> Scaling:
        return self.spec.resolve()

    @property
    def num_classes(self) -> int:
        return int(self.hparams.get("num_classes", DEFAULT_NUM_CLASSES))

    @property
    def class_names(self) -> list[str]:
        return list(self.content.get(CLASS_NAMES_KEY) or default_class_names(self.num_classes))

    @property
    def data_config(self) -> dict[str, Any]:
        """The evaluation preprocessing of the data it was trained on; timm's ImageNet one when not recorded."""
        return dict(self.content.get(DATA_CONFIG_KEY) or imagenet_data_config(self.scaling.resolution))

    @property
    def has_ema(self) -> bool:
        return has_ema(self.content)

    def available(self, weights: Weights) -> Weights:
        """`weights`, or "raw" (with a warning) when EMA weights were asked for and the checkpoint has none."""
        if weights == "ema" and not self.has_ema:
            log.warning(f"effnet: warning: {self.path} has no EMA weights; using the raw ones")
            return "raw"
        return weights

    def module_state(self, weights: Weights) -> dict[str, Tensor]:
        """The LightningModule state_dict (keys like `model.conv_stem.weight`) of the EMA or the raw weights."""
        if weights not in ("ema", "raw"):
            raise ConfigError(f"weights must be 'ema' or 'raw', got {weights!r}")
        if weights == "raw":
            return self.content[RAW_STATE] if self.has_ema else self.content[STATE]
        if not self.has_ema:
            raise CheckpointError(
                f"{self.path} holds no EMA weights (saved without the EMA callback or with save_weights_only=True); "
                "load the raw weights (which='raw', --weights raw)"
            )
        return self.content[STATE]

    def network_state(self, weights: Weights) -> dict[str, Tensor]:
        """The bare network's tensors, keys as in timm's EfficientNet."""
        state = self.module_state(weights)
        return {k.removeprefix(NETWORK_PREFIX): v for k, v in state.items() if k.startswith(NETWORK_PREFIX)}

    def network(self, weights: Weights) -> nn.Module:
        """The checkpoint's timm EfficientNet with the chosen weights, in eval mode."""
        network = create_model(
            self.spec,
            num_classes=self.num_classes,
            bn_eps=float(self.hparams.get("bn_eps", TF_BN_EPS)),
            bn_momentum=float(self.hparams.get("bn_momentum", TF_BN_MOMENTUM)),
        )
        network.load_state_dict(self.network_state(weights))
        return network.eval()


CALLBACKS = "callbacks"  # Lightning's: each callback's state_dict() under its state key


@dataclass(frozen=True)
class Selected:
    """The checkpoint a ModelCheckpoint selected, as its state in a later checkpoint (last.ckpt) records it."""

    path: Path  # where it was saved (the run folder may have moved since)
    monitor: str  # the monitored metric, e.g. val_ema/acc1
    score: float | None  # the metric's value at that checkpoint


def selected_checkpoint(checkpoint: dict[str, Any]) -> Selected | None:
    """The best file of the first ModelCheckpoint that monitored a metric and saved one; None where none did."""
    for state in (checkpoint.get(CALLBACKS) or {}).values():
        if isinstance(state, dict) and state.get("monitor") and state.get("best_model_path"):
            score = state.get("best_model_score")
            return Selected(
                Path(state["best_model_path"]), str(state["monitor"]), None if score is None else float(score)
            )
    return None
