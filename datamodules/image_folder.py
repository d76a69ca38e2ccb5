"""Any folder of images, one subfolder per class: `train/<class>/*.jpg`, optional `val/<class>/*`, `test/<class>/*`.

Class names are the subfolder names of train/, sorted (torchvision ImageFolder's rule); their number is known as
soon as the datamodule exists, so the CLI can link `num_classes` into the model before any image is read. Without
a val/ folder a seeded, per-class share of train/ (`val_fraction`) is held out.

Decoding is OpenCV's (libjpeg-turbo): it applies EXIF orientation, turns grayscale and CMYK JPEGs into RGB and
drops PNG alpha; Pillow decodes what OpenCV declines. Files without an image extension (.DS_Store, notes.txt,
hidden files) are ignored with one warning at setup. A file that cannot be decoded (corrupt, truncated, not an
image) is skipped with a warning naming it, and the next image of the split is used in its place, so batches keep
their size and worker count does not matter; at the end of each epoch one warning gives the count for the epoch.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, get_args

import cv2
import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image, ImageOps
from torch.utils.data import Dataset, get_worker_info
from torchvision.datasets.folder import IMG_EXTENSIONS

from effnet_lightning.errors import ConfigError, DataError, MissingFileError

from .base import ImageDataModule, Transform
from .transforms import DEFAULT_RATIO, Interpolation, eval_crop, eval_side_range, tf_crop_pct, train_crop

__all__ = ["ImageFiles", "ImageFolderDataModule", "UnreadableImagesReport", "decode_image", "split_per_class"]

log = logging.getLogger(__name__)

COUNTER_SLOTS = 257  # one unreadable-file counter for the main process + 256 loader workers (ids wrap beyond)
MAX_NAMED = 20  # stray files named in the setup warning; the rest are counted
SPLITS = ("train", "val", "test")
DEFAULT_INTERPOLATION: Interpolation = "bicubic"  # timm's for its EfficientNet weights (pretrained_cfg)


class ImageFolderDataModule(ImageDataModule):
    """Images in class subfolders: train/<class>/*, optionally val/<class>/* and test/<class>/*."""

    def __init__(
        self,
        data_dir: str,
        val_fraction: float | None = 0.1,
        split_seed: int = 42,
        crop_pct: float | None = None,
        scale: tuple[float, float] | None = None,
        ratio: tuple[float, float] = DEFAULT_RATIO,
        hflip: float = 0.5,
        interpolation: Interpolation | None = None,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            data_dir: folder holding train/<class>/ (and optionally val/<class>/, test/<class>/).
            val_fraction: share of each class's train images held out for validation when there is no val/
                folder; None: a val/ folder is required.
            split_seed: seed of that split (independent of the global seed).
            crop_pct: eval keeps the central crop_pct of every image resized to a shorter side of
                resolution/crop_pct (timm's rule); None: the field-of-view rule: the shorter side to clamp(side,
                resolution, resolution + 32), then the central square (TF's resolution / (resolution + 32) for
                photos, the whole image at or below the resolution).
            scale: training crop area range, as fractions of the image, for every image (timm's Inception crop);
                None: the field-of-view rule: photos (shorter side >= resolution + 32) get area 8-100%, smaller
                images eval's resize shifted by up to resolution/8 px, so train and eval see the same view.
            ratio: training crop aspect ratio range (width/height), where the Inception crop is used.
            hflip: probability of a horizontal flip in training.
            interpolation: for enlarging; shrinking always averages (INTER_AREA) unless "nearest". None: that of
                the pretrained weights the model starts from (model.init), else bicubic (timm's).
            **kwargs: the arguments every image datamodule takes (resolution, batch_size, num_workers,
                randaugment, ...; ImageDataModule's).
        """
        super().__init__(data_dir, **kwargs)
        self.check_arguments({"val_fraction": val_fraction, "crop_pct": crop_pct})
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        # what the checkpoint's data_config records: timm's crop_pct (the photos' one), and the eval side range
        self.crop_pct = tf_crop_pct(self.resolution) if crop_pct is None else crop_pct
        self.eval_side_range = (
            self.default_eval_side_range() if crop_pct is None else eval_side_range(self.resolution, crop_pct)
        )
        self.scale = None if scale is None else tuple(scale)
        self.ratio = tuple(ratio)
        self.hflip = hflip
        self.interpolation_given = interpolation is not None
        self.interpolation: Interpolation = interpolation or DEFAULT_INTERPOLATION
        self.classes = self._find_classes()  # cheap: one directory listing
        self.num_classes = len(self.classes)
        self.image_files: dict[str, ImageFiles] = {}  # per split, for the end-of-epoch count

    @classmethod
    def check_arguments(cls, arguments: Mapping[str, Any]) -> None:
        super().check_arguments(arguments)
        val_fraction, crop_pct = arguments.get("val_fraction"), arguments.get("crop_pct")
        if val_fraction is not None and not 0 < val_fraction < 1:
            raise ConfigError(f"data.val_fraction must be between 0 and 1 (exclusive); got {val_fraction}")
        if crop_pct is not None and not 0 < crop_pct <= 1:
            raise ConfigError(f"data.crop_pct must be in (0, 1]; got {crop_pct}")

    def use_pretrained_preprocessing(self, preprocessing: dict[str, Any]) -> None:
        """Also the pretrained weights' interpolation, unless the config set one; takes effect before setup (the
        CLI calls this as soon as model and datamodule exist)."""
        super().use_pretrained_preprocessing(preprocessing)
        wanted = preprocessing.get("interpolation")
        if not self.interpolation_given and wanted in get_args(Interpolation):
            self.interpolation = wanted

    def default_eval_side_range(self) -> tuple[int, int]:
        """Where eval puts an image's shorter side without a crop_pct: the field-of-view rule (transforms.py)."""
        return eval_side_range(self.resolution)

    @property
    def class_names(self) -> list[str]:
        """The class folder names, in label order."""
        return list(self.classes)

    # ---- layout --------------------------------------------------------------------------------------------
    def layout_help(self) -> str:
        """Appended to layout errors; a subclass can say how to produce the layout."""
        return "Expected <data_dir>/train/<class>/<image> and, optionally, val/<class>/<image>."

    def _find_classes(self) -> list[str]:
        train = Path(self.data_dir) / "train"
        if not train.is_dir():
            raise FileNotFoundError(f"No train/ folder in {Path(self.data_dir).resolve()}. {self.layout_help()}")
        classes = sorted(e.name for e in os.scandir(train) if e.is_dir() and not e.name.startswith("."))
        if len(classes) < 2:
            raise ValueError(
                f"{train} has {len(classes)} class folder(s); classification needs at least 2. {self.layout_help()}"
            )
        return classes

    @cached_property
    def _samples(self) -> dict[str, list[tuple[str, int]]]:
        """(path, label) per split, listed once per process; val/ from its folder or a seeded split of train/."""
        root = Path(self.data_dir)
        samples = {"train": self._list_split(root / "train")}
        if (root / "val").is_dir():
            samples["val"] = self._list_split(root / "val")
        elif self.val_fraction is None:
            raise MissingFileError(f"No val/ folder in {root.resolve()}. {self.layout_help()}")
        else:
            samples["train"], samples["val"] = split_per_class(samples["train"], self.val_fraction, self.split_seed)
            if not samples["val"]:
                raise DataError(
                    f"data.val_fraction={self.val_fraction} holds out no images: every class in {root / 'train'} "
                    "has a single image. Add images, or a val/<class>/ folder."
                )
        samples["test"] = self._list_split(root / "test") if (root / "test").is_dir() else samples["val"]
        return samples

    def _list_split(self, folder: Path) -> list[tuple[str, int]]:
        """All image files under folder/<class>/, labelled by the class's index in train/; strays warned about."""
        index = {name: i for i, name in enumerate(self.classes)}
        subfolders = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
        unknown = [name for name in subfolders if name not in index]
        if unknown:
            raise DataError(
                f"{folder} has class folder(s) that train/ lacks: {', '.join(unknown[:MAX_NAMED])}. "
                f"Every class needs training images in train/<class>/. {self.layout_help()}"
            )
        stray = [e.path for e in os.scandir(folder) if e.is_file()]  # loose files outside the class folders
        samples: list[tuple[str, int]] = []
        for name in subfolders:
            images = []
            for parent, dirs, files in os.walk(folder / name, followlinks=True):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for file in sorted(files):
                    path = os.path.join(parent, file)
                    is_image = file.lower().endswith(IMG_EXTENSIONS) and not file.startswith(".")
                    (images if is_image else stray).append(path)
            if not images:
                raise DataError(
                    f"Class folder {folder / name} has no images (extensions {', '.join(IMG_EXTENSIONS)}). "
                    "Add images or remove the folder."
                )
            samples += [(path, index[name]) for path in images]
        if not samples:
            raise DataError(f"{folder} has no class folders with images. {self.layout_help()}")
        if stray:
            named = ", ".join(sorted(stray)[:MAX_NAMED])
            named += f" and {len(stray) - MAX_NAMED} more" if len(stray) > MAX_NAMED else ""
            log.warning(f"effnet: warning: Ignored {len(stray)} file(s) in {folder} that are not images: {named}")
        return samples

    # ---- datasets and transforms ---------------------------------------------------------------------------
    def _files(self, split: str) -> ImageFiles:
        self.image_files[split] = ImageFiles(self._samples[split], split)
        return self.image_files[split]

    def train_dataset(self) -> Dataset:
        return self._files("train")

    def val_dataset(self) -> Dataset:
        return self._files("val")

    def calibration_dataset(self) -> Dataset:
        # files of its own: the epoch's unreadable-file report counts training's reads only
        return ImageFiles(self._samples["train"], "train")

    def test_dataset(self) -> Dataset:
        return self._files("test")

    def test_is_validation(self) -> bool:
        """Without a test/ folder, test and predict use the validation images."""
        return not (Path(self.data_dir) / "test").is_dir()

    def predict_sample_ids(self) -> list[str]:
        """The file path of each predict (test) sample."""
        return [path for path, _ in self._samples["test"]]

    def train_transform(self) -> Transform:
        return train_crop(self.resolution, self.scale, self.ratio, self.hflip, self.interpolation)

    def eval_transform(self) -> Transform:
        return eval_crop(self.resolution, self.eval_side_range, self.interpolation)


def split_per_class(
    samples: list[tuple[str, int]], val_fraction: float, seed: int
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Hold out round(val_fraction * n) images of every class (at least 1 and at most n - 1 when n >= 2)."""
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[tuple[str, int]]] = {}
    for sample in samples:
        by_class.setdefault(sample[1], []).append(sample)
    train, val = [], []
    for label in sorted(by_class):
        members = by_class[label]
        n = len(members)
        held = min(max(round(val_fraction * n), 1), n - 1) if n >= 2 else 0
        order = rng.permutation(n)
        val += [members[i] for i in sorted(order[:held])]
        train += [members[i] for i in sorted(order[held:])]
    return train, val


def decode_image(path: str) -> np.ndarray:
    """RGB HWC uint8. OpenCV first (EXIF-rotated; grayscale and CMYK become RGB), Pillow for what it declines."""
    data = np.fromfile(path, dtype=np.uint8)  # np.fromfile: unlike cv2.imread, any path encoding works
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is not None:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    with Image.open(path) as pil:  # raises for what is not an image or is truncated
        return np.asarray(ImageOps.exif_transpose(pil).convert("RGB"))


UNREADABLE = (OSError, ValueError, SyntaxError, cv2.error, Image.DecompressionBombError)  # what decoders raise


class ImageFiles(Dataset):
    """(path, label) pairs decoded on access. An unreadable file is warned about, counted, and replaced by the
    next readable file of the list (deterministic, any number of workers)."""

    def __init__(self, samples: list[tuple[str, int]], split: str) -> None:
        self.samples = samples
        self.split = split
        # one counter per process; shared memory, so loader workers' counts reach the main process
        self.unreadable = torch.zeros(COUNTER_SLOTS, dtype=torch.int64).share_memory_()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        for offset in range(len(self.samples)):
            path, label = self.samples[(index + offset) % len(self.samples)]
            try:
                return decode_image(path), label
            except UNREADABLE as err:
                if offset == 0:  # count each file once per epoch: when its own index is read
                    worker = get_worker_info()
                    self.unreadable[0 if worker is None else 1 + worker.id % (COUNTER_SLOTS - 1)] += 1
                    # a Python warning, not a log record: this runs in loader workers, which a spawned start
                    # method gives no logging set-up, while Python prints a warning from any process
                    warnings.warn(f"Skipped unreadable image {path} ({type(err).__name__}: {err})", stacklevel=1)
        raise DataError(f"None of the {len(self.samples)} {self.split} images could be decoded; see the warnings.")

    def take_unreadable_count(self) -> int:
        """Files skipped since the last call (all processes), and reset."""
        count = int(self.unreadable.sum())
        self.unreadable.zero_()
        return count


class UnreadableImagesReport(Callback):
    """At the end of each epoch, one warning with the number of unreadable files the epoch skipped (all ranks)."""

    def _report(self, trainer: Trainer, pl_module: LightningModule, split: str) -> None:
        files = getattr(trainer.datamodule, "image_files", {}).get(split)
        if files is None:
            return
        count = torch.tensor(files.take_unreadable_count(), device=pl_module.device)
        total = int(trainer.strategy.reduce(count, reduce_op="sum"))
        if total:
            _warn(
                f"Epoch {trainer.current_epoch}: {total} unreadable image file(s) skipped in the {split} data (each "
                "named in a warning when first read); the next image of the split was used in place of each."
            )

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._report(trainer, pl_module, "train")

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._report(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._report(trainer, pl_module, "test")

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._report(trainer, pl_module, "test")


@rank_zero_only
def _warn(message: str) -> None:
    """One line on stderr under `effnet`, once per run (rank 0), not per process."""
    log.warning(f"effnet: warning: {message}")
