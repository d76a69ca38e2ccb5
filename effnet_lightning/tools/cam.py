"""`effnet cam`: Grad-CAM grids that show where each checkpoint looks, for comparing scaled models side by side.

    effnet cam --ckpt_path runs/version_0/checkpoints/last.ckpt --ckpt_path runs/version_1/... --images a.jpg b.png
    effnet cam --ckpt_path A.ckpt --ckpt_path B.ckpt --config configs/cifar_debug.yaml --split val --count 16

writes a PNG grid into `--output` (default: the first checkpoint's run folder, as cam.png, cam_1.png, ...; nothing
is overwritten): one row per image, one column per checkpoint, a header with each column's run name, and under
every cell the predicted class and its probability.
- Method: Grad-CAM (pytorch-grad-cam's `GradCAM`, not ours) on the network's last convolutional stage (`bn2`, the
  activated output of the 1x1 head convolution that the classifier pools), for the predicted class.
- Weights: EMA when the checkpoint has them (default), raw with `--weights raw`.
- Preprocessing: the validation one, from the checkpoint's `data_config` (written by the module at fit time):
  shorter side to resolution / crop_pct with its interpolation, the central square, the datamodule's mean/std.
  On the data it was trained on (32 px CIFAR, or a folder datamodule's eval transform) this is what validation
  does; checkpoints without a `data_config` use timm's ImageNet defaults.
- Images: files (`--images`), or the first `--count` images of a split (`--split train|val|test`) of the datamodule
  that the same `--config`/`--data.*` options as `effnet fit` configure (built by EffnetCLI itself, see
  data_from_config.py). They are the split's raw images, before any augmentation or normalisation, and go through
  the preprocessing above for every column, so each row is the same image in every column.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from effnet_lightning.errors import OneLineParser

CELL_PX = 224  # side of one grid cell (each model's input is resized to it for display)
CAPTION_PX = 16  # height of the text strip under each cell and of the header row
CHECKPOINTS = "checkpoints"


SPLITS = ("train", "val", "test")  # --split: the datamodule's train_dataset(), val_dataset(), test_dataset()
DEFAULT_COUNT = 16  # --count: images (grid rows) taken from the split


def main(argv: list[str]) -> int:
    parser = OneLineParser(
        prog="effnet cam",
        description=__doc__.split("\n\n")[0],
        epilog="With --split, every other option is effnet fit's (--config, --data.*, ...): they pick the datamodule.",
        allow_abbrev=False,  # an abbreviation must not swallow one of effnet fit's options
    )
    parser.add_argument("--ckpt_path", action="append", required=True, help="a checkpoint; repeat for columns")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", nargs="+", help="image files, one grid row each")
    source.add_argument("--split", choices=SPLITS, help="take the rows from this split of the configured datamodule")
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help="with --split: how many images (rows)")
    parser.add_argument("--weights", choices=("ema", "raw"), default="ema", help="EMA (default) or raw weights")
    parser.add_argument("--output", help="folder for the PNG (default: the first checkpoint's run folder)")
    parser.add_argument("--cell_px", type=int, default=CELL_PX, help="side of one grid cell in pixels")
    args, data_args = parser.parse_known_args(argv)
    if args.images is not None and data_args:
        parser.error(f"unrecognized arguments: {' '.join(data_args)} (data options need --split, not --images)")
    try:
        if args.images is not None:
            pictures = read_images(args.images)
        else:
            pictures = split_images(args.split, args.count, data_args)
        path = write_cam_grid(args.ckpt_path, pictures, args.weights, args.output, args.cell_px)
    except Exception as err:  # user errors end here in one line; anything else is re-raised with its traceback
        message = user_error(err)
        if message is None:
            raise
        print(f"effnet cam: error: {message}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


def user_error(err: Exception) -> str | None:
    """The one line for an error the user can fix (a parse error, missing data, a bad file), else None."""
    from jsonargparse import ArgumentError

    from effnet_lightning.errors import one_line
    from effnet_lightning.train.config_checks import DataModuleInitError
    from effnet_lightning.train.run import USER_ERRORS, parse_error

    if isinstance(err, ArgumentError):  # a malformed --config or --data.* option
        return f"{parse_error(err)} (see 'effnet fit --help' for the data options)"
    if isinstance(err, (*USER_ERRORS, DataModuleInitError)):
        return one_line(str(err))
    return None


def read_images(paths: list[str]) -> list[np.ndarray]:
    """The image files as (H, W, 3) uint8 RGB arrays."""
    from effnet_lightning.datamodules.image_folder import UNREADABLE, decode_image

    pictures = []
    for path in paths:
        try:
            pictures.append(decode_image(path))
        except UNREADABLE as err:
            raise ValueError(f"cannot read image {path} ({type(err).__name__}: {err}); pass image files") from err
    return pictures


def split_images(split: str, count: int, data_args: list[str]) -> list[np.ndarray]:
    """The first `count` raw images of a split of the datamodule that `effnet fit <data_args>` would use."""
    from effnet_lightning.train.data_from_config import datamodule_from_args
    from effnet_lightning.train.plugins import load_and_report

    if count < 1:
        raise ValueError(f"--count must be at least 1 image, got {count}")
    load_and_report()  # datamodule plugins by short class name, as for effnet fit
    datamodule = datamodule_from_args(data_args)
    name = type(datamodule).__name__
    read_split = getattr(datamodule, f"{split}_dataset", None)
    if read_split is None:
        raise ValueError(
            f"{name} has no {split}_dataset(): --split needs an ImageDataModule (datamodules/base.py); pass --images"
        )
    samples = read_split()  # (HWC uint8 image, label) before augmentation and normalisation
    if split == "test" and getattr(datamodule, "test_is_validation", lambda: False)():
        print(f"effnet cam: {name} has no test split: --split test uses the validation images", file=sys.stderr)
    if count > len(samples):
        raise ValueError(f"--count {count} is more than the {len(samples)} images of {name}'s {split} split")
    return [as_rgb(samples[i][0]) for i in range(count)]


def as_rgb(image: Any) -> np.ndarray:
    """A dataset's image (HWC or HW array, or PIL image) as (H, W, 3) uint8."""
    array = np.asarray(image, dtype=np.uint8)
    return np.repeat(array[..., None], 3, axis=2) if array.ndim == 2 else array[..., :3]


def write_cam_grid(
    ckpt_paths: list[str],
    pictures: list[np.ndarray],
    weights: str = "ema",
    output: str | None = None,
    cell_px: int = CELL_PX,
) -> Path:
    """Compute every (image, checkpoint) cell and save the grid; returns the PNG's path."""
    from PIL import Image

    if cell_px < 16:
        raise ValueError(f"--cell_px must be at least 16, got {cell_px}")
    columns = []
    for ckpt in ckpt_paths:
        network, class_names, data_config = load_network(ckpt, weights)
        columns.append([cam_cell(network, class_names, data_config, picture, cell_px) for picture in pictures])
    labels = [run_name(Path(c)) for c in ckpt_paths]
    grid = compose(columns, labels, cell_px)
    folder = Path(output) if output else run_folder(Path(ckpt_paths[0]))
    folder.mkdir(parents=True, exist_ok=True)
    target = free_name(folder, "cam", ".png")
    Image.fromarray(grid).save(target)
    return target


def load_network(ckpt_path: str, weights: str) -> tuple[Any, list[str], dict]:
    """The checkpoint's bare timm EfficientNet (eval mode, chosen weights), its class names and eval data config."""
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    from effnet_lightning.model import scaling as sc
    from effnet_lightning.model.network import TF_BN_EPS, create_model
    from effnet_lightning.tools.export import network_state
    from effnet_lightning.train.lightning_cli import load_checkpoint
    from effnet_lightning.train.module import CLASS_NAMES_KEY, DATA_CONFIG_KEY, default_class_names

    if not Path(ckpt_path).is_file():
        raise FileNotFoundError(f"checkpoint {ckpt_path} does not exist; pass .ckpt files written by effnet fit")
    checkpoint = load_checkpoint(ckpt_path)
    hparams = checkpoint.get("hyper_parameters") or {}
    spec = hparams.get("scaling", sc.ScalingSpec())
    spec = spec if isinstance(spec, sc.ScalingSpec) else sc.ScalingSpec(**spec)
    num_classes = int(hparams.get("num_classes", 1000))
    network = create_model(spec, num_classes=num_classes, bn_eps=float(hparams.get("bn_eps", TF_BN_EPS)))
    network.load_state_dict(network_state(checkpoint, weights))
    resolution = spec.resolve().resolution
    data_config = checkpoint.get(DATA_CONFIG_KEY) or {
        "input_size": [3, resolution, resolution],
        "mean": list(IMAGENET_DEFAULT_MEAN),
        "std": list(IMAGENET_DEFAULT_STD),
        "interpolation": "bicubic",
        "crop_pct": 0.875,
    }
    names = list(checkpoint.get(CLASS_NAMES_KEY) or default_class_names(num_classes))
    return network.eval(), names, data_config


def cam_cell(network: Any, class_names: list[str], data_config: dict, picture: np.ndarray, cell_px: int) -> np.ndarray:
    """One cell: the Grad-CAM heat map of the predicted class over the model's input, with its caption strip."""
    import cv2
    import torch
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import show_cam_on_image

    from effnet_lightning.datamodules.transforms import eval_crop_for

    rgb = eval_crop_for(data_config)(image=picture)["image"]  # (resolution, resolution, 3) uint8: as validation
    mean = np.asarray(data_config["mean"], dtype=np.float32) * 255
    std = np.asarray(data_config["std"], dtype=np.float32) * 255
    x = torch.from_numpy(((rgb.astype(np.float32) - mean) / std).transpose(2, 0, 1)).unsqueeze(0)
    with torch.no_grad():
        probabilities = network(x).softmax(dim=1)[0]
    confidence, predicted = probabilities.max(dim=0)
    with GradCAM(model=network, target_layers=[network.bn2]) as cam:
        heat = cam(input_tensor=x, targets=None)[0]  # (resolution, resolution) in [0, 1], for the top class
    overlay = show_cam_on_image(rgb.astype(np.float32) / 255, heat, use_rgb=True)
    overlay = cv2.resize(overlay, (cell_px, cell_px), interpolation=cv2.INTER_NEAREST)
    caption = text_strip(f"{class_names[int(predicted)]} {float(confidence):.2f}", cell_px)
    return np.concatenate([overlay, caption], axis=0)


def text_strip(text: str, width: int) -> np.ndarray:
    """(CAPTION_PX, width, 3) uint8: black text on white, PIL's built-in font, cut to fit."""
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (width, CAPTION_PX), "white")
    ImageDraw.Draw(strip).text((2, 2), text, fill="black")
    return np.asarray(strip)


def compose(columns: list[list[np.ndarray]], labels: list[str], cell_px: int) -> np.ndarray:
    """Header row of column labels, then one row per image; shape (CAPTION_PX + rows * (cell_px + CAPTION_PX),
    columns * cell_px, 3)."""
    header = np.concatenate([text_strip(label, cell_px) for label in labels], axis=1)
    rows = [np.concatenate([column[r] for column in columns], axis=1) for r in range(len(columns[0]))]
    return np.concatenate([header, *rows], axis=0)


def run_folder(ckpt: Path) -> Path:
    """`<run>` for `<run>/checkpoints/x.ckpt`, else the checkpoint's own folder."""
    return ckpt.parent.parent if ckpt.parent.name == CHECKPOINTS else ckpt.parent


def run_name(ckpt: Path) -> str:
    """A column label: `version_3/last` (run folder and checkpoint name)."""
    return f"{run_folder(ckpt).name}/{ckpt.stem}"


def free_name(folder: Path, stem: str, suffix: str) -> Path:
    """folder/stem.suffix, or stem_1, stem_2, ... : never an existing file."""
    candidate, n = folder / f"{stem}{suffix}", 0
    while candidate.exists():
        n += 1
        candidate = folder / f"{stem}_{n}{suffix}"
    return candidate
