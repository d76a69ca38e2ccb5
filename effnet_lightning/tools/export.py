"""`effnet export`: a checkpoint's bare network as safetensors plus timm's hub config, usable without this project.

    effnet export --ckpt_path runs/version_0/checkpoints/last.ckpt [--weights ema|raw] export/model.safetensors

writes the weights and, beside them, `config.json` in the layout timm's hub loader reads
(timm/models/_hub.py `load_model_config_from_path`, timm 1.0): `architecture`, `num_classes`, `label_names`,
`model_args` (the BatchNorm eps and dropout the weights were trained with) and `pretrained_cfg` with the evaluation
preprocessing of the training data (input_size, mean, std, crop_pct, interpolation). The safetensors metadata holds
the same config, so the file alone says how to feed it. A folder holding `model.safetensors` and `config.json`
loads with `timm.create_model("local-dir:<folder>", pretrained=True)`; then
`timm.data.create_transform(**timm.data.resolve_data_config(model=model))` is the matching eval transform.
- architecture: timm's `efficientnet_bN` when the scaling is an official variant's multipliers (then the network,
  its state_dict keys and shapes are timm's own, model/network.py). Other scalings (φ, custom multipliers) have no timm
  entry point: `architecture` is null and `effnet_scaling` (depth, width) rebuilds the network with
  `effnet_lightning.model.network.create_model`, a timm EfficientNet; the weights and preprocessing are the same.
- weights: the EMA weights when the checkpoint has them (default), otherwise or with `--weights raw` the raw ones.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from effnet_lightning.errors import ConfigError, OneLineParser, UserError
from effnet_lightning.model import scaling as sc

if TYPE_CHECKING:
    from effnet_lightning.train.checkpoint_format import TrainedCheckpoint

__all__ = ["OutputExists", "export", "hub_config", "main", "timm_architecture"]

CONFIG_NAME = "config.json"  # timm's hub config file name (timm/models/_hub.py)
CLASSIFIER = "classifier.weight"  # timm EfficientNet's head: (num_classes, num_features)


class OutputExists(UserError, FileExistsError):
    """The export would overwrite a file; nothing was written."""


def main(argv: list[str]) -> None:
    """`effnet export`: raises a UserError for what the user can fix (errors.outcome reports it)."""
    parser = OneLineParser(prog="effnet export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint written by effnet fit (.ckpt)")
    parser.add_argument(
        "--weights",
        choices=("ema", "raw"),
        default="ema",
        help="ema: the averaged weights when the checkpoint has them (default); raw: the trained weights",
    )
    parser.add_argument("output", help="the .safetensors file to write; config.json is written beside it")
    args = parser.parse_args(argv)
    written = export(args.ckpt_path, args.output, args.weights)
    print(f"wrote {written[0]} and {written[1]}")


def export(ckpt_path: str, output: str, weights: str = "ema") -> tuple[Path, Path]:
    """Write the network of `ckpt_path` to `output` (safetensors) and config.json beside it; never overwrites.
    EMA weights when asked for and the checkpoint has them, else the raw ones (with a warning)."""
    from safetensors.torch import save_file

    from effnet_lightning.train.checkpoint_format import TrainedCheckpoint

    out = Path(output)
    config_path = out.with_name(CONFIG_NAME)
    if out.suffix != ".safetensors":
        raise ConfigError(f"the output must be a .safetensors file, got {out}")
    existing = [str(p) for p in (out, config_path) if p.exists()]
    if existing:
        raise OutputExists(f"{' and '.join(existing)} already exist(s); choose another folder or remove them")
    checkpoint = TrainedCheckpoint.read(ckpt_path)
    state = checkpoint.network_state(checkpoint.available(weights))
    config = hub_config(checkpoint, num_features=int(state[CLASSIFIER].shape[1]))
    out.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": "pt", "config": json.dumps(config)}  # safetensors metadata: str -> str
    save_file({k: v.contiguous() for k, v in state.items()}, str(out), metadata=metadata)
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    return out, config_path


def hub_config(checkpoint: TrainedCheckpoint, num_features: int) -> dict[str, Any]:
    """timm's hub config.json for a TrainedCheckpoint's network and its training data's eval preprocessing."""
    from timm.models import PretrainedCfg

    from effnet_lightning.model.network import DROP_PATH_RATE, TF_BN_EPS, TF_BN_MOMENTUM

    hparams = checkpoint.hparams
    scaling = checkpoint.scaling
    dropout = hparams.get("dropout")
    timm_keys = {field.name for field in dataclasses.fields(PretrainedCfg)}  # timm refuses other keys
    pretrained_cfg = {
        **{key: value for key, value in checkpoint.data_config.items() if key in timm_keys},
        "num_classes": checkpoint.num_classes,
        "first_conv": "conv_stem",
        "classifier": "classifier",
        "fixed_input_size": False,
        "license": "the license of the data it was trained on",
    }
    return {
        "architecture": timm_architecture(scaling),
        "num_classes": checkpoint.num_classes,
        "num_features": num_features,
        "global_pool": "avg",
        "label_names": checkpoint.class_names,
        "model_args": {
            "bn_eps": float(hparams.get("bn_eps", TF_BN_EPS)),
            "bn_momentum": float(hparams.get("bn_momentum", TF_BN_MOMENTUM)),
            "drop_rate": float(scaling.dropout if dropout is None else dropout),
            "drop_path_rate": float(hparams.get("drop_path_rate", DROP_PATH_RATE)),
        },
        "effnet_scaling": {"depth": scaling.depth, "width": scaling.width, "resolution": scaling.resolution},
        "pretrained_cfg": pretrained_cfg,
    }


def timm_architecture(scaling: sc.Multipliers) -> str | None:
    """`efficientnet_bN` when depth and width are that official variant's; None otherwise."""
    variant = sc.official_variant(scaling)
    return None if variant is None else f"efficientnet_{variant}"
