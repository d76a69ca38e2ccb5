"""ImageNet-1k (ILSVRC 2012) in the usual folder layout: train/<wnid>/*.JPEG and val/<wnid>/*.JPEG.

The image-folder datamodule with ImageNet's defaults: a val/ folder is required (the official 50k validation
images, not a split of train/), the train pipeline is timm's (RandomResizedCrop, bicubic, flip, optional
RandAugment) and eval resizes the shorter side to resolution + 32 px and center-crops (TF's eval crop), for every
image at every resolution, as the paper trained and evaluated (not the image folder's field-of-view rule).
num_classes is the number of class folders (1000 for the full dataset).

The official val archive is flat (ILSVRC2012_val_00000001.JPEG ...). Sort it into class folders either with
torchvision (official tars + devkit in data_dir; checks their MD5 sums):
    uv run python -c "from torchvision.datasets.imagenet import parse_devkit_archive as d, parse_val_archive as v,
    parse_train_archive as t; d('data/imagenet'); v('data/imagenet'); t('data/imagenet')"
or, for the Kaggle download (ILSVRC/Data/CLS-LOC/val + LOC_val_solution.csv), with this module:
    uv run python -m effnet_lightning.datamodules.imagenet sort-val data/imagenet/val LOC_val_solution.csv
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path
from typing import Any

from effnet_lightning.errors import DataError

from .image_folder import ImageFolderDataModule
from .transforms import DEFAULT_SCALE, eval_side_range, tf_crop_pct

__all__ = ["ImageNetDataModule", "main", "sort_val_images"]

SYNSET_MAPPING = "LOC_synset_mapping.txt"  # Kaggle's ImageNet download: "<wnid> <words>" per line, 1000 lines
SORT_VAL_COMMAND = "python -m effnet_lightning.datamodules.imagenet sort-val <data_dir>/val LOC_val_solution.csv"


class ImageNetDataModule(ImageFolderDataModule):
    """ImageNet-1k from train/<wnid>/ and val/<wnid>/ folders; val/ doubles as the test set."""

    def __init__(
        self,
        data_dir: str = "data/imagenet",
        crop_pct: float | None = None,
        scale: tuple[float, float] = DEFAULT_SCALE,
        num_workers: int = 8,  # per device; a worker does ~600 img/s at 224 px with RandAugment (BENCHMARKS.md)
        **kwargs: Any,
    ) -> None:
        """
        Args:
            data_dir: folder holding train/<wnid>/ and val/<wnid>/ (see the module docstring for the val folder).
            crop_pct: eval keeps the central crop_pct of every image resized to a shorter side of
                resolution/crop_pct; None: TF's resolution / (resolution + 32) at every resolution (the paper's
                eval: B5-B7's resolutions exceed most ImageNet photos, which TF enlarges and crops all the same).
            scale: training crop area range, as fractions of the image (timm's Inception crop, every image).
            num_workers: loader worker processes per device (0 loads in the main process).
            **kwargs: ImageFolderDataModule's arguments (ratio, hflip, interpolation, and those every image
                datamodule takes) but its split of train/: the val/ folder is required.
        """
        kwargs.pop("val_fraction", None)  # val/ is ImageNet's validation split: the train images are never split
        kwargs.pop("split_seed", None)  # unused without a split
        super().__init__(
            data_dir, val_fraction=None, split_seed=0, crop_pct=crop_pct, scale=scale, num_workers=num_workers, **kwargs
        )

    def default_eval_side_range(self) -> tuple[int, int]:
        """TF's eval crop for every image (the paper's pipelines at every resolution)."""
        return eval_side_range(self.resolution, tf_crop_pct(self.resolution))

    @property
    def class_names(self) -> list[str]:
        """Each class folder's words from <data_dir>/LOC_synset_mapping.txt when that file is there (e.g.
        "tench, Tinca tinca" for n01440764); otherwise, and for a wnid the file lacks, the folder name."""
        mapping = Path(self.data_dir) / SYNSET_MAPPING
        if not mapping.is_file():
            return list(self.classes)
        words = dict(line.strip().split(" ", 1) for line in mapping.read_text().splitlines() if " " in line.strip())
        return [words.get(wnid, wnid) for wnid in self.classes]

    def layout_help(self) -> str:
        val = Path(self.data_dir) / "val"
        flat = val.is_dir() and any(name.lower().endswith(".jpeg") for name in os.listdir(val))
        advice = (
            f"{val} holds the images of the official val archive without class folders; sort them with "
            f"'{SORT_VAL_COMMAND}' (Kaggle's labels) or torchvision's parse_val_archive (official devkit)."
            if flat
            else "See the docstring of datamodules/imagenet.py (effnet_lightning.datamodules.imagenet) to build "
            "val/ from the official archive."
        )
        return f"Expected ImageNet as <data_dir>/train/<wnid>/*.JPEG and val/<wnid>/*.JPEG. {advice}"

    def _list_split(self, folder: Path) -> list[tuple[str, int]]:
        flat = [name for name in os.listdir(folder) if name.lower().endswith(".jpeg")]
        if flat:
            raise DataError(f"{folder} has {len(flat)} images outside class folders. {self.layout_help()}")
        return super()._list_split(folder)


def sort_val_images(val_dir: str, solution_csv: str) -> int:
    """Move val_dir/<ImageId>.JPEG into val_dir/<wnid>/ using Kaggle's LOC_val_solution.csv; returns the count.

    Each CSV row is `ImageId,PredictionString` where PredictionString starts with the wnid ("n01751748 x y x y").
    Images already sorted are left alone, so an interrupted run can be repeated.
    """
    moved = 0
    with open(solution_csv, newline="") as f:
        for row in csv.DictReader(f):
            wnid = row["PredictionString"].split()[0]
            source = Path(val_dir) / f"{row['ImageId']}.JPEG"
            if source.is_file():
                (Path(val_dir) / wnid).mkdir(exist_ok=True)
                source.rename(Path(val_dir) / wnid / source.name)
                moved += 1
    return moved


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m effnet_lightning.datamodules.imagenet")
    commands = parser.add_subparsers(dest="command", required=True)
    sort_val = commands.add_parser("sort-val", help="sort the flat val images into <wnid>/ folders")
    sort_val.add_argument("val_dir", help="folder with ILSVRC2012_val_*.JPEG")
    sort_val.add_argument("solution_csv", help="LOC_val_solution.csv from the Kaggle ImageNet download")
    args = parser.parse_args(argv)
    print(f"moved {sort_val_images(args.val_dir, args.solution_csv)} images into class folders")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
