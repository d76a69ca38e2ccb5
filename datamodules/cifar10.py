"""CIFAR-10 on torchvision's files and checksums: a seeded train/val split of the 50k training images, the
official 10k test set, pad-and-crop + flip augmentation at the native 32 px (the resize to the model's
resolution happens per batch on the device, see base.py).

User files are never deleted or overwritten: a corrupt batch file or archive is reported, not replaced
(torchvision alone would re-download or re-extract over it).
"""

from __future__ import annotations

import tarfile
import urllib.error
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import albumentations as A
import cv2
import torch
from torch.utils.data import Dataset, Subset
from torchvision.datasets import CIFAR10
from torchvision.datasets.utils import check_integrity, download_url

from effnet_lightning.errors import (
    ConfigError,
    CorruptFileError,
    DiskFullError,
    DownloadError,
    MissingFileError,
    is_disk_full,
)

from .base import ArrayDataset, ImageDataModule, Transform

__all__ = ["CIFAR10_CLASSES", "CIFAR10_MEAN", "CIFAR10_STD", "CIFAR10DataModule"]

# Per-channel mean/std over all pixels of the 50k training images, 0-1 scale (the widely used values; the
# often-copied std (0.2023, 0.1994, 0.2010) is a mean of per-image stds, not the dataset std).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
# Label order of the archive's batches.meta (`label_names`), i.e. torchvision's CIFAR10.classes
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
NATIVE_SIZE = 32  # px, CIFAR images are 32x32
PAD = 4  # px per side before the random 32 px crop (the standard CIFAR augmentation)


class CIFAR10DataModule(ImageDataModule):
    """CIFAR-10: 10 classes, 45k/5k train/val by default (seeded), 10k test."""

    num_classes = 10
    default_mean = CIFAR10_MEAN
    default_std = CIFAR10_STD

    def __init__(
        self,
        data_dir: str = "data/cifar10",
        download: bool = False,
        val_size: int = 5000,
        split_seed: int = 42,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            data_dir: folder holding cifar-10-batches-py/ (torchvision's layout).
            download: fetch and extract the archive from torchvision's URL when files are missing.
            val_size: images held out of the 50k training images for validation.
            split_seed: seed of the train/val split (independent of the global seed).
            **kwargs: the arguments every image datamodule takes (resolution, batch_size, num_workers, ...;
                ImageDataModule's).
        """
        super().__init__(data_dir, **kwargs)
        self.check_arguments({"val_size": val_size})
        self.download = download
        self.val_size = val_size
        self.split_seed = split_seed

    @classmethod
    def check_arguments(cls, arguments: Mapping[str, Any]) -> None:
        super().check_arguments(arguments)
        val_size = arguments.get("val_size")
        if val_size is not None and val_size <= 0:
            raise ConfigError(f"data.val_size must be a positive number of validation images; got {val_size}")

    @property
    def class_names(self) -> list[str]:
        return list(CIFAR10_CLASSES)

    # ---- files ---------------------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Runs once per node before setup: verify the files, download only what is missing."""
        if not self._check_files(allow_missing=self.download):
            return
        archive = Path(self.data_dir) / CIFAR10.filename
        if archive.exists() and not check_integrity(archive, CIFAR10.tgz_md5):
            raise _corrupt_error([archive], "Delete it and run again to download a fresh copy.")
        self._download(archive)
        self._extract(archive)
        self._check_files(allow_missing=False)

    def _download(self, archive: Path) -> None:
        """The archive from torchvision's URL, checked against torchvision's md5; one already there and valid is
        kept (no network)."""
        try:
            download_url(CIFAR10.url, self.data_dir, CIFAR10.filename, CIFAR10.tgz_md5)
        except (urllib.error.URLError, OSError, RuntimeError) as err:  # torchvision: no connection, md5 mismatch
            if is_disk_full(err):
                raise DiskFullError(
                    f"no space left on {self.data_dir} while downloading {archive.name} (about 170 MB); free space "
                    "there or point data.data_dir elsewhere, and run again"
                ) from err
            raise DownloadError(
                f"Could not download CIFAR-10 from {CIFAR10.url} ({err}). Download it elsewhere and "
                f"extract it into {self.data_dir}, so that it contains {CIFAR10.base_folder}/."
            ) from err

    def _extract(self, archive: Path) -> None:
        """The valid archive into data_dir: torchvision finds it there, checks its md5 and only extracts it."""
        try:
            if not hasattr(tarfile, "data_filter"):
                _check_members_before_extracting(archive)
            CIFAR10(self.data_dir, train=False, download=True)
        except tarfile.TarError as err:  # filter="data": a member that would land outside data_dir, a link, ...
            raise CorruptFileError(
                f"Refused to extract {archive}: {err}. It is not the official CIFAR-10 archive; delete it and "
                "download again. Nothing was written outside the data directory."
            ) from err
        except OSError as err:
            if is_disk_full(err):  # a local problem, nothing to do with the download
                raise DiskFullError(
                    f"no space left on {self.data_dir} while extracting {archive.name} (about 180 MB extracted); "
                    "free space there or point data.data_dir elsewhere, and run again"
                ) from err
            raise

    def _check_files(self, allow_missing: bool = False) -> list[str]:
        """Names of missing files (an error unless allowed); a corrupt file is always an error."""
        folder = Path(self.data_dir) / CIFAR10.base_folder
        expected = [*CIFAR10.train_list, *CIFAR10.test_list, [CIFAR10.meta["filename"], CIFAR10.meta["md5"]]]
        missing = [name for name, _ in expected if not (folder / name).is_file()]
        corrupt = [
            folder / name for name, md5 in expected if name not in missing and not check_integrity(folder / name, md5)
        ]
        if corrupt:
            raise _corrupt_error(corrupt, "Move it away and set download: true to fetch a fresh copy.")
        if missing and not allow_missing:
            raise MissingFileError(
                f"CIFAR-10 not found in {Path(self.data_dir).resolve()}: missing {', '.join(missing)}. "
                f"Expected {CIFAR10.base_folder}/ with data_batch_1 ... data_batch_5, test_batch and "
                f"batches.meta, as in {CIFAR10.url}. Set download: true (data.download) to fetch it, or "
                "extract that archive there."
            )
        return missing

    # ---- datasets ------------------------------------------------------------------------------------------
    @cached_property
    def _train_val(self) -> tuple[Subset, Subset]:
        self._check_files()
        full = CIFAR10(self.data_dir, train=True)
        if self.val_size >= len(full):
            raise ConfigError(f"data.val_size={self.val_size} leaves no training images out of {len(full)}.")
        samples = ArrayDataset(full.data, full.targets)
        order = torch.randperm(len(full), generator=torch.Generator().manual_seed(self.split_seed)).tolist()
        return Subset(samples, order[self.val_size :]), Subset(samples, order[: self.val_size])

    def train_dataset(self) -> Dataset:
        return self._train_val[0]

    def val_dataset(self) -> Dataset:
        return self._train_val[1]

    def test_dataset(self) -> Dataset:
        self._check_files()
        test = CIFAR10(self.data_dir, train=False)
        return ArrayDataset(test.data, test.targets)

    def train_transform(self) -> Transform:
        return A.Compose(
            [
                A.Pad(padding=PAD, border_mode=cv2.BORDER_REFLECT_101),  # numpy/torchvision "reflect"
                A.RandomCrop(height=NATIVE_SIZE, width=NATIVE_SIZE),
                A.HorizontalFlip(p=0.5),
            ]
        )


def _corrupt_error(paths: list[Path], advice: str) -> CorruptFileError:
    names = ", ".join(str(p) for p in paths)
    return CorruptFileError(
        f"CIFAR-10 file {names} is corrupt or truncated (MD5 differs from torchvision's checksum); "
        f"it was left untouched. {advice}"
    )


def _check_members_before_extracting(archive_path: Path) -> None:
    """On a Python without tarfile's data filter (PEP 706: before 3.10.12 / 3.11.4, e.g. Debian 12's 3.11.2)
    torchvision extracts every member as it is. Accept the (downloaded, md5-checked) archive only if every member
    is a plain file or folder that stays inside its folder: what the data filter would refuse (absolute paths,
    `..`, links, devices) raises tarfile.TarError."""
    root = archive_path.parent.resolve()
    with tarfile.open(archive_path, "r:gz") as archive:
        for member in archive:
            target = (root / member.name).resolve()
            if not (member.isfile() or member.isdir()):
                raise tarfile.TarError(f"{member.name!r} is not a plain file or folder")
            if Path(member.name).is_absolute() or not target.is_relative_to(root):
                raise tarfile.TarError(
                    f"{member.name!r} would be extracted to {target}, which is outside the destination"
                )
