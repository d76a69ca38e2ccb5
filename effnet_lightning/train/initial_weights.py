"""Where a network's weights start (`model.init`): timm's pretrained weights by name, or a local file.

- a timm name or `name.tag` (`efficientnet_b0.ra_in1k`): built by `timm.create_model(pretrained=True)`, so timm's
  cache and hub settings (HF_HOME, HF_HUB_OFFLINE, HF_ENDPOINT) apply;
- a timm `.safetensors`/`.pth` file, read by timm's `load_state_dict`;
- an `effnet export` folder (model.safetensors + config.json);
- an `effnet fit` checkpoint (.ckpt), read by the project's checkpoint reader: its EMA weights, or the raw ones.

Every tensor of the network must be in the source with the same shape, and the source may hold nothing else. The
one exception is the classifier: when the class counts differ it keeps the fresh initialisation, and one line
says so. The source's preprocessing (mean, std, interpolation, crop), where it records one, comes along: the
datamodule normalises with it unless the config sets its own.
"""

from __future__ import annotations

import json
import logging
import pickle
import urllib.error
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor, nn

from effnet_lightning.errors import CheckpointError, ConfigError, CorruptFileError, DownloadError, MissingFileError
from effnet_lightning.train.checkpoint_format import (
    HYPER_PARAMETERS,
    STATE,
    TrainedCheckpoint,
    Weights,
    checkpoint_globals,
)

__all__ = ["CLASSIFIER", "Pretrained", "load_into", "read_initial_weights"]

log = logging.getLogger(__name__)

CLASSIFIER = "classifier"  # timm EfficientNet's head: classifier.weight (classes, features), classifier.bias
EXPORT_WEIGHTS, EXPORT_CONFIG = "model.safetensors", "config.json"  # `effnet export`'s folder (timm's hub layout)
FILE_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")  # what names a file rather than a timm model
PREPROCESSING_KEYS = ("mean", "std", "interpolation", "crop_pct")  # of timm's data config


@dataclass(frozen=True)
class Pretrained:
    """A network's starting weights (bare timm keys) and the preprocessing they were trained with, if recorded."""

    source: str  # what the user named
    state: dict[str, Tensor]
    preprocessing: dict[str, Any] | None  # timm data-config keys: mean, std (0-1 scale), interpolation, crop_pct
    bn_eps: float | None = None  # the BatchNorm epsilon the weights were trained with, where known


def read_initial_weights(init: str, weights: Weights = "ema") -> Pretrained:
    """The weights `init` names: an existing file or folder, else a timm model name (with an optional tag)."""
    path = Path(init).expanduser()
    if path.is_dir():
        return _export_folder(path)
    if path.is_file():
        return _checkpoint(path, weights) if path.suffix == ".ckpt" else _timm_file(path)
    if "/" in init.removeprefix("hf-hub:") or path.suffix in FILE_SUFFIXES or init.startswith((".", "~")):
        raise MissingFileError(
            f"model.init: {init} does not exist; give a .safetensors/.pth/.ckpt file, an `effnet export` folder, "
            "or a timm model name such as efficientnet_b0.ra_in1k"
        )
    return _timm_pretrained(init)


def load_into(network: nn.Module, pretrained: Pretrained, reset_classifier: bool = False) -> None:
    """Copy `pretrained` into `network`; the classifier keeps its fresh initialisation when the class counts differ
    or `reset_classifier` asks for it (a new task with as many classes).

    Refuses (ConfigError) a source whose keys or shapes differ anywhere else, naming the first such key."""
    own = network.state_dict()
    source = pretrained.state
    for key, tensor in own.items():
        if key not in source:
            raise ConfigError(
                f"model.init {pretrained.source} has no {key} (shape {tuple(tensor.shape)}): it is not an "
                "EfficientNet of this size; set model.scaling to the size the weights were trained at"
            )
        if source[key].shape != tensor.shape and not key.startswith(f"{CLASSIFIER}."):
            raise ConfigError(
                f"model.init {pretrained.source} does not fit this network: {key} is {tuple(source[key].shape)} "
                f"there and {tuple(tensor.shape)} here; set model.scaling to the size the weights were trained at"
            )
    extra = sorted(set(source) - set(own))
    if extra:
        raise ConfigError(
            f"model.init {pretrained.source} holds {extra[0]}, which this network lacks: it is not an EfficientNet "
            "of this size; set model.scaling to the size the weights were trained at"
        )
    head = f"{CLASSIFIER}.weight"
    classes_there, classes_here = source[head].shape[0], own[head].shape[0]
    state = dict(source)
    if classes_there != classes_here or reset_classifier:
        state = {k: v for k, v in source.items() if not k.startswith(f"{CLASSIFIER}.")}
        _say(f"effnet: {CLASSIFIER}: {classes_there} → {classes_here} classes, re-initialised")
    network.load_state_dict(state, strict=False)  # keys checked above; only the classifier may be left out
    _say(f"effnet: weights from {pretrained.source}")


@rank_zero_only
def _say(line: str) -> None:
    """One line per run, not per DDP rank."""
    log.info(line)


def _timm_pretrained(name: str) -> Pretrained:
    """timm's own pretrained weights, through timm's loader (its cache, hub and offline settings)."""
    import timm
    from timm.models import get_pretrained_cfg
    from timm.models.efficientnet import EfficientNet

    hub_name = name.removeprefix("hf-hub:")
    known = timm.list_pretrained(name) if "." in name else timm.list_pretrained(f"{name}.*")
    if not name.startswith("hf-hub:") and not known:
        similar = timm.list_pretrained(f"{name.split('.')[0]}*")[:4] or timm.list_pretrained("efficientnet_b*")[:4]
        raise ConfigError(
            f"model.init: timm has no pretrained weights named {name}; use a name from timm.list_pretrained(), "
            f"e.g. {', '.join(similar)}, or the path of a weights file"
        )
    try:
        network = timm.create_model(name, pretrained=True)
    except (_hub_not_found(), urllib.error.URLError) as err:
        cfg = get_pretrained_cfg(hub_name) if not name.startswith("hf-hub:") else None
        raise DownloadError(_no_network_message(name, cfg)) from err
    if not isinstance(network, EfficientNet) or type(network.conv_stem) is not nn.Conv2d:
        raise ConfigError(
            f"model.init: {name} is not an EfficientNet with PyTorch-style padding (tf_* models pad like "
            "TensorFlow); use an efficientnet_bN model"
        )
    cfg = network.pretrained_cfg
    preprocessing = {key: cfg[key] for key in PREPROCESSING_KEYS if cfg.get(key) is not None}
    return Pretrained(name, network.state_dict(), preprocessing, bn_eps=float(network.bn1.eps))


def _hub_not_found() -> type[Exception]:
    """huggingface_hub's error for a file neither downloadable nor cached (offline, or no network)."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    return LocalEntryNotFoundError


def _no_network_message(name: str, cfg: Any) -> str:
    """Where timm looks for `name`'s weights, and how to put them there (or anywhere) by hand."""
    from huggingface_hub.constants import HF_HUB_CACHE

    hub_id = getattr(cfg, "hf_hub_id", None) or name.removeprefix("hf-hub:")
    url = f"https://huggingface.co/{hub_id}/resolve/main/{EXPORT_WEIGHTS}"
    return (
        f"model.init: cannot download {name} (no network, or HF_HUB_OFFLINE is set) and it is not in timm's cache "
        f"{HF_HUB_CACHE} (the Hugging Face hub cache; HF_HOME moves it). On a machine with network run "
        f"`python -c \"import timm; timm.create_model('{name}', pretrained=True)\"` and copy that cache folder here, "
        f"or download {url} and pass its path as model.init"
    )


def _timm_file(path: Path) -> Pretrained:
    """A timm weights file (.safetensors, or a torch.save'd state dict or training checkpoint)."""
    import safetensors
    from timm.models import load_state_dict

    if path.suffix != ".safetensors" and not zipfile.is_zipfile(path):
        raise CorruptFileError(f"model.init: {path} is not a weights file torch can read (corrupt or truncated)")
    try:
        with checkpoint_globals():  # a .pth may be an `effnet fit` checkpoint under another suffix
            content = torch.load(path, map_location="cpu", weights_only=True) if path.suffix != ".safetensors" else {}
        lightning = isinstance(content, dict) and STATE in content and HYPER_PARAMETERS in content
        state = None if lightning else load_state_dict(str(path), use_ema=True, weights_only=True)
    except safetensors.SafetensorError as err:
        raise CorruptFileError(f"model.init: {path} is not a valid .safetensors file ({err})") from err
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"model.init: {path} holds Python objects that weights-only loading refuses; save a plain state dict"
        ) from err
    except (RuntimeError, EOFError) as err:  # torch's reports of a damaged member in the archive
        raise CorruptFileError(f"model.init: {path} is corrupt ({type(err).__name__}); use another copy") from err
    if lightning:  # a Lightning checkpoint under another suffix, read outside the catch above: its errors are its own
        return _checkpoint(path, "ema")
    return Pretrained(str(path), _tensors(state, path), None)


def _export_folder(folder: Path) -> Pretrained:
    """An `effnet export` (or timm hub) folder: model.safetensors and config.json with the preprocessing."""
    weights, config_file = folder / EXPORT_WEIGHTS, folder / EXPORT_CONFIG
    if not weights.is_file():
        raise MissingFileError(f"model.init: {folder} has no {EXPORT_WEIGHTS}; give a folder `effnet export` wrote")
    pretrained = _timm_file(weights)
    if not config_file.is_file():
        return Pretrained(str(folder), pretrained.state, None)
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as err:
        raise CorruptFileError(f"model.init: {config_file} is not valid JSON ({err.msg})") from err
    cfg = config.get("pretrained_cfg") or {}
    preprocessing = {key: cfg[key] for key in PREPROCESSING_KEYS if cfg.get(key) is not None} or None
    bn_eps = (config.get("model_args") or {}).get("bn_eps")
    return Pretrained(str(folder), pretrained.state, preprocessing, None if bn_eps is None else float(bn_eps))


def _checkpoint(path: Path, weights: Weights) -> Pretrained:
    """An `effnet fit` checkpoint: its EMA weights by default (the raw ones when it has none, with a warning)."""
    checkpoint = TrainedCheckpoint.read(path)
    state = checkpoint.network_state(checkpoint.available(weights))
    preprocessing = {k: v for k, v in checkpoint.data_config.items() if k in PREPROCESSING_KEYS}
    bn_eps = checkpoint.hparams.get("bn_eps")
    return Pretrained(str(path), state, preprocessing, None if bn_eps is None else float(bn_eps))


def _tensors(state: Any, path: Path) -> dict[str, Tensor]:
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"model.init: {path} holds no state dict of tensors")
    return state
