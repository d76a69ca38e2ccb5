"""`effnet cam`: Grad-CAM grids that show where each checkpoint looks, for comparing scaled models side by side.

    effnet cam --ckpt_path runs/version_0/checkpoints/last.ckpt --ckpt_path runs/version_1/... --images a.jpg b.png
    effnet cam --ckpt_path A.ckpt --ckpt_path B.ckpt --config configs/cifar_debug.yaml --split val --count 16

writes a PNG grid into `--output` (default: the first checkpoint's run folder, as cam.png, cam_1.png, ...; nothing
is overwritten): one row per image, one column per checkpoint, a header with each column's run name and explained
layer, and under every cell the predicted class with its probability and the true class when it is known.
- Method: Grad-CAM (pytorch-grad-cam's `GradCAM`, not ours; drawing/gradcam.py) for the predicted class, on the
  deepest stage whose map is at least 7x7 at the checkpoint's input size (`bn2`, the activated head, at 224 px and
  above; `blocks.1` at 32 px, where `bn2` is 1x1), or on the module `--layer` names.
- Weights: EMA when the checkpoint has them (default), raw with `--weights raw`.
- Preprocessing: the validation one, from the checkpoint's `data_config` (written by the module at fit time):
  shorter side to resolution / crop_pct with its interpolation, the central square, then the datamodule's own
  `to_model_input` (mean/std). Each cell shows that whole model input under its map. On the data it was trained
  on (32 px CIFAR, or a folder datamodule's eval transform) this is what validation does; checkpoints without a
  `data_config` use timm's ImageNet defaults.
- Images: files (`--images`; the true class is the file's folder name when that is one of the checkpoint's
  classes, as in a class-per-folder dataset), or `--count` images of a split (`--split train|val|test`, with their
  labels) of the datamodule that the same `--config`/`--data.*` options as `effnet fit` configure (built by
  EffnetCLI itself, see data_from_config.py), spread across its classes: with `--split val` the images the fit's
  `val/predictions` grid shows at the same count. They are the split's raw images, before any augmentation or
  normalisation, and go through the preprocessing above for every column, so each row is the same image in every
  column.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from effnet_lightning.errors import ConfigError, OneLineParser
from effnet_lightning.train.run_layout import run_of_checkpoint

if TYPE_CHECKING:  # the callbacks package imports Lightning: loaded when a grid is drawn, not for --help
    from effnet_lightning.drawing.gradcam import CamLayer
    from effnet_lightning.drawing.pictures import Caption

__all__ = ["Picture", "main", "write_cam_grid"]

log = logging.getLogger(__name__)

CELL_PX = 224  # side of one grid cell (each model's input is enlarged to it for display)
MIN_CELL_PX = 16  # --cell_px at least this


SPLITS = ("train", "val", "test")  # --split: the datamodule's train_dataset(), val_dataset(), test_dataset()
DEFAULT_COUNT = 16  # --count: images (grid rows) taken from the split


@dataclass(frozen=True)
class Picture:
    """One grid row: the image as read, (H, W, 3) uint8 RGB, and its true class name when known."""

    image: np.ndarray
    true_class: str | None = None


def main(argv: list[str]) -> None:
    """`effnet cam`: raises a UserError for what the user can fix (errors.outcome reports it)."""
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
    parser.add_argument(
        "--layer",
        help="the module to explain, e.g. blocks.4 or bn2 (default: the deepest stage whose map is at least 7x7)",
    )
    parser.add_argument("--output", help="folder for the PNG (default: the first checkpoint's run folder)")
    parser.add_argument("--cell_px", type=int, default=CELL_PX, help="side of one grid cell in pixels")
    args, data_args = parser.parse_known_args(argv)
    if args.images is not None and data_args:
        parser.error(f"unrecognized arguments: {' '.join(data_args)} (data options need --split, not --images)")
    if args.images is not None:
        pictures = read_images(args.images)
    else:
        pictures = split_images(args.split, args.count, data_args)
    path = write_cam_grid(args.ckpt_path, pictures, args.weights, args.output, args.cell_px, args.layer)
    print(f"wrote {path}")


def read_images(paths: list[str]) -> list[Picture]:
    """The image files as (H, W, 3) uint8 RGB arrays, each with its folder's name as a candidate true class."""
    from effnet_lightning.datamodules.image_folder import UNREADABLE, decode_image

    pictures = []
    for path in paths:
        try:
            pictures.append(Picture(decode_image(path), Path(path).resolve().parent.name))
        except UNREADABLE as err:
            raise ConfigError(f"cannot read image {path} ({type(err).__name__}: {err}); pass image files") from err
    return pictures


def split_images(split: str, count: int, data_args: list[str]) -> list[Picture]:
    """`count` raw images of a split of the datamodule that `effnet fit <data_args>` would use, spread across its
    classes as the fit's own pictures are (picture_sample.py), with their labels' class names."""
    from jsonargparse import ArgumentError

    from effnet_lightning.assembly.data_from_config import datamodule_from_args
    from effnet_lightning.assembly.plugins import load_and_report
    from effnet_lightning.datamodules.picture_sample import spread_sample
    from effnet_lightning.errors import parse_error_line

    if count < 1:
        raise ConfigError(f"--count must be at least 1 image, got {count}")
    load_and_report()  # datamodule plugins by short class name, as for effnet fit
    try:
        datamodule = datamodule_from_args(data_args)
    except ArgumentError as err:  # a malformed --config or --data.* option
        raise ConfigError(f"{parse_error_line(err)} (see 'effnet fit --help' for the data options)") from err
    name = type(datamodule).__name__
    read_split = getattr(datamodule, f"{split}_dataset", None)
    if read_split is None:
        raise ConfigError(
            f"{name} has no {split}_dataset(): --split needs an ImageDataModule (datamodules/base.py); pass --images"
        )
    samples = read_split()  # (HWC uint8 image, label) before augmentation and normalisation
    if split == "test" and getattr(datamodule, "test_is_validation", lambda: False)():
        log.warning(f"effnet cam: {name} has no test split: --split test uses the validation images")
    if count > len(samples):
        raise ConfigError(f"--count {count} is more than the {len(samples)} images of {name}'s {split} split")
    picked = spread_sample(samples, count)  # the val/predictions grid's images, for --split val
    names = list(datamodule.class_names)
    return [Picture(as_rgb(image), names[int(label)]) for image, label in map(samples.__getitem__, picked)]


def as_rgb(image: Any) -> np.ndarray:
    """A dataset's image (HWC or HW array, or PIL image) as (H, W, 3) uint8."""
    array = np.asarray(image, dtype=np.uint8)
    return np.repeat(array[..., None], 3, axis=2) if array.ndim == 2 else array[..., :3]


def write_cam_grid(
    ckpt_paths: list[str],
    pictures: list[Picture],
    weights: str = "ema",
    output: str | None = None,
    cell_px: int = CELL_PX,
    layer: str | None = None,
) -> Path:
    """Compute every (image, checkpoint) cell and save the grid; returns the PNG's path."""
    from PIL import Image

    from effnet_lightning.drawing.gradcam import cam_layer
    from effnet_lightning.drawing.pictures import BLACK, Caption

    if cell_px < MIN_CELL_PX:
        raise ConfigError(f"--cell_px must be at least {MIN_CELL_PX}, got {cell_px}")
    columns, headers = [], []
    for ckpt in ckpt_paths:
        network, class_names, data_config = load_network(ckpt, weights)
        resolution = int(data_config["input_size"][-1])
        chosen = cam_layer(network, resolution, layer)
        columns.append(cam_column(network, class_names, data_config, chosen, pictures, cell_px))
        headers.append(Caption(((run_name(Path(ckpt)), BLACK), (f"layer {chosen.describe()}", BLACK))))
    grid = compose(columns, headers, cell_px)
    folder = Path(output) if output else run_folder(Path(ckpt_paths[0]))
    folder.mkdir(parents=True, exist_ok=True)
    target = free_name(folder, "cam", ".png")
    Image.fromarray(grid).save(target)
    return target


def load_network(ckpt_path: str, weights: str) -> tuple[Any, list[str], dict]:
    """The checkpoint's bare timm EfficientNet (eval mode, chosen weights), its class names and eval data config."""
    from effnet_lightning.train.checkpoint_format import TrainedCheckpoint

    checkpoint = TrainedCheckpoint.read(ckpt_path)
    return checkpoint.network(checkpoint.available(weights)), checkpoint.class_names, checkpoint.data_config


def model_view(picture: np.ndarray, data_config: dict) -> np.ndarray:
    """(resolution, resolution, 3) uint8: the picture after validation's CPU transform (the checkpoint's eval crop)."""
    from effnet_lightning.datamodules.transforms import eval_crop_for

    return eval_crop_for(data_config)(image=picture)["image"]


def model_input(views: list[np.ndarray], data_config: dict) -> Any:
    """(N, 3, resolution, resolution) float32: the views normalised by the datamodules' own on-device step."""
    import torch

    from effnet_lightning.datamodules.model_input import to_model_input

    resolution = int(data_config["input_size"][-1])
    images = torch.from_numpy(np.stack(views)).permute(0, 3, 1, 2)
    return to_model_input(images, resolution, data_config["mean"], data_config["std"])


def cam_column(
    network: Any, class_names: list[str], data_config: dict, layer: CamLayer, pictures: list[Picture], cell_px: int
) -> list[np.ndarray]:
    """One checkpoint's cells: each picture's Grad-CAM map over the whole model input, enlarged, captioned. One
    image per pass (eval-mode BatchNorm: the same maps as a batch), so memory stays one image's at any size."""
    from effnet_lightning.drawing.gradcam import grad_cam, overlay
    from effnet_lightning.drawing.pictures import labelled, prediction_caption

    cells = []
    for picture in pictures:
        view = model_view(picture.image, data_config)
        heat, probabilities = grad_cam(network, model_input([view], data_config), layer)
        confidence, predicted = probabilities[0].max(dim=0)
        true = picture.true_class if picture.true_class in class_names else None
        caption = prediction_caption(class_names[int(predicted)], float(confidence), true)
        cells.append(labelled(overlay(view, heat[0]), caption, cell_px))
    return cells


def compose(columns: list[list[np.ndarray]], headers: list[Caption], cell_px: int) -> np.ndarray:
    """Header row of column captions, then one row per image; both two lines high (pictures.CAPTION_PX).
    Shape (CAPTION_PX + rows * (cell_px + CAPTION_PX), columns * cell_px, 3)."""
    from effnet_lightning.drawing.pictures import caption_strip

    header = np.concatenate([caption_strip(caption, cell_px) for caption in headers], axis=1)
    rows = [np.concatenate([column[r] for column in columns], axis=1) for r in range(len(columns[0]))]
    return np.concatenate([header, *rows], axis=0)


def run_folder(ckpt: Path) -> Path:
    """`<run>` for `<run>/checkpoints/x.ckpt`, else the checkpoint's own folder."""
    return run_of_checkpoint(ckpt) or ckpt.parent


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
