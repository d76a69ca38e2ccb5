"""The base every image datamodule shares: loaders, normalization and the resize to the model's resolution.

A subclass supplies its datasets (samples are `(HWC uint8 ndarray, int label)`) and, if it wants, its
albumentations pipelines; it sets `num_classes` so the CLI can link it into the model before any data is read.
Loaders yield uint8 CHW images, 4x cheaper to move than float32. Once the batch is on the device,
`on_after_batch_transfer` converts it to float, resizes it to the linked `resolution` (one interpolate per
batch: upscaling 32 -> 240 px per image on the CPU would starve a GPU, see benchmarks/cifar_loader.py) and
normalizes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import albumentations as A
import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_only
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from effnet_lightning.errors import ConfigError, DataError

from .model_input import to_model_input
from .randaugment import RandAugment, parse_randaugment
from .resumable import KeyedDataset, ResumableLoader, ResumableSampler
from .sample_contract import check_first_sample

__all__ = ["ArrayDataset", "ImageDataModule", "TransformedDataset"]

log = logging.getLogger(__name__)

CALIBRATION_SEED = 0  # of the precise-BN images: one fixed subset and order for every run, resume and rank
Transform = Callable[..., dict[str, Any]]  # an albumentations transform: transform(image=hwc)["image"]


class ImageDataModule(LightningDataModule):
    """Image classification data: subclasses implement `train_dataset`, `val_dataset`, `test_dataset`."""

    num_classes: int  # set by the subclass (class attribute or in __init__); the CLI links it into the model
    default_mean: tuple[float, float, float] = IMAGENET_DEFAULT_MEAN  # per channel, 0-1 pixel scale
    default_std: tuple[float, float, float] = IMAGENET_DEFAULT_STD

    def __init__(
        self,
        data_dir: str,
        resolution: int = 224,
        batch_size: int = 128,
        num_workers: int = 4,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        randaugment: str | None = None,
        seed: int | None = None,
    ) -> None:
        """
        Args:
            data_dir: where the dataset lives (or is downloaded to).
            resolution: side in pixels of the square images the model sees; the CLI links it from the model.
            batch_size: images per device per step.
            num_workers: loader worker processes per device (0 loads in the main process).
            pin_memory: page-locked host memory for faster copies to a CUDA device (ignored without CUDA).
            persistent_workers: keep workers alive between epochs (only when num_workers > 0).
            mean: per-channel normalization mean on the 0-1 scale; None: the dataset's own statistics, or those of
                the pretrained weights the model starts from (model.init).
            std: per-channel normalization std on the 0-1 scale; None: as mean.
            randaugment: timm-style RandAugment after the training augmentation, e.g. "rand-m9-n2" or
                "rand-m9-mstd0.5" (see randaugment.py); None: off.
            seed: seed of the training order and augmentations (with the epoch and sample index); the CLI
                links the run's `seed_everything` into it; None: 0.
        """
        super().__init__()
        self.check_arguments(
            {"resolution": resolution, "batch_size": batch_size, "num_workers": num_workers, "std": std}
        )
        self.data_dir = data_dir
        self.resolution = resolution
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.normalization_given = mean is not None or std is not None  # else pretrained weights' may replace it
        self.mean = tuple(mean) if mean is not None else self.default_mean
        self.std = tuple(std) if std is not None else self.default_std
        self.randaugment = randaugment
        if randaugment is not None:
            parse_randaugment(randaugment)  # a malformed string fails here, before any data is read
        # No save_hyperparameters(): Lightning refuses to log model and datamodule hparams that share a key
        # (resolution, num_classes) with different values, and the CLI saves the full config anyway.
        self.seed = 0 if seed is None else seed

    @classmethod
    def check_arguments(cls, arguments: Mapping[str, Any]) -> None:
        """Raise ConfigError for the first impossible value among constructor `arguments`, by name (one not given
        is not checked). The constructor calls it, and `effnet` on the parsed `data:` section before anything is
        built, so each check has one wording wherever it fails. A subclass with arguments of its own extends it."""
        resolution, batch_size = arguments.get("resolution"), arguments.get("batch_size")
        num_workers, std = arguments.get("num_workers"), arguments.get("std")
        if resolution is not None and resolution <= 0:
            raise ConfigError(f"data.resolution must be a positive number of pixels; got {resolution}")
        if batch_size is not None and batch_size <= 0:
            raise ConfigError(f"data.batch_size must be a positive number of images per device; got {batch_size}")
        if num_workers is not None and num_workers < 0:
            raise ConfigError(f"data.num_workers must be 0 (load in the main process) or more; got {num_workers}")
        if std is not None and any(s == 0 for s in std):
            raise ConfigError(f"data.std must not contain 0 (images are divided by it); got {list(std)}")

    # ---- what a subclass provides --------------------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        """The name of each class index, for predictions, exports and figures (stored in the checkpoint by the
        module). A subclass overrides this property (or sets a class attribute); default: "0", "1", ..."""
        return [str(i) for i in range(self.num_classes)]

    def train_dataset(self) -> Dataset:
        """Training samples `(HWC uint8 ndarray, int label)`, before augmentation."""
        raise NotImplementedError(f"{type(self).__name__} must implement train_dataset().")

    def val_dataset(self) -> Dataset:
        """Validation samples, same format."""
        raise NotImplementedError(f"{type(self).__name__} must implement val_dataset().")

    def test_dataset(self) -> Dataset:
        """Test samples (also used by predict); defaults to the validation samples."""
        return self.val_dataset()

    def test_is_validation(self) -> bool:
        """Whether test/predict fall back to the validation samples (a subclass without its own test split)."""
        return type(self).test_dataset is ImageDataModule.test_dataset

    def predict_sample_ids(self) -> list[str] | None:
        """An id per predict sample, in dataset order (e.g. its file path), for predictions.csv; None: the
        sample's index in the predict (test) split."""
        return None

    def train_transform(self) -> Transform | None:
        """Per-image CPU augmentation (albumentations). None: images pass through and must share one size."""
        return None

    def eval_transform(self) -> Transform | None:
        """Per-image CPU transform for validation/test/predict."""
        return None

    def train_pipeline(self) -> Transform | None:
        """train_transform(), then RandAugment when `randaugment` is set (timm's order: crop/flip, then RandAugment)."""
        transform = self.train_transform()
        if self.randaugment is None:
            return transform
        fill = tuple(round(255 * m) for m in self.mean)  # uncovered pixels get the mean colour, as in timm
        return A.Compose([*([transform] if transform is not None else []), RandAugment(self.randaugment, fill)])

    def use_pretrained_preprocessing(self, preprocessing: dict[str, Any]) -> None:
        """Normalise with the mean and std pretrained weights were trained with (timm's data-config keys, 0-1
        scale), unless this datamodule's config set its own: a network trained on ImageNet statistics is not fed
        other ones. Called by the model before training; a subclass may adopt more (interpolation) before setup."""
        if self.normalization_given or "mean" not in preprocessing or "std" not in preprocessing:
            return
        mean, std = tuple(float(m) for m in preprocessing["mean"]), tuple(float(s) for s in preprocessing["std"])
        if (mean, std) != (tuple(self.mean), tuple(self.std)):
            _note(f"normalising with the pretrained weights' mean {_rounded(mean)} and std {_rounded(std)}")
        self.mean, self.std = mean, std

    # ---- Lightning hooks -----------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.train_set = TransformedDataset(self._checked(self.train_dataset(), "train"), self.train_pipeline())
        if stage in ("fit", "validate"):
            self.val_set = TransformedDataset(self._checked(self.val_dataset(), "validation"), self.eval_transform())
        if stage in ("test", "predict"):
            self.test_set = TransformedDataset(self._checked(self.test_dataset(), "test"), self.eval_transform())
            if self.test_is_validation():
                # Lightning passes a str enum; test's metrics keep their test/* names (the EMA callback's too)
                what = "test/* are the validation images' numbers"
                if stage == "predict":
                    what = "predict uses the validation images"
                _note(
                    f"{type(self).__name__} has no test split: {what}; add test_dataset() (or a test/ folder) to "
                    "evaluate on unseen images"
                )

    def _checked(self, dataset: Dataset, split: str) -> Dataset:
        """The split's first sample against the contract (HWC uint8, 3 channels): a DataError that names the fix."""
        check_first_sample(dataset, split, type(self).__name__)
        return dataset

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, train=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, train=False)

    def calibration_dataloader(self, num_images: int) -> DataLoader:
        """`num_images` training images (all of them if there are fewer), the same ones every time, through the
        eval transform, in batches of `batch_size`: what BatchNorm's statistics are recomputed over before an
        evaluation (callbacks/precise_bn.py).

        The subset is drawn by a generator with a fixed seed, so every evaluation, every resume (which may be given
        another `seed`: the checkpoint keeps training's) and every DDP rank uses the same images in the same
        (shuffled) order. The eval transform (no crop jitter, flips or
        RandAugment) gives the statistics of images like those evaluation feeds the network. The batch size is
        training's: BN normalised each training batch by its own statistics, and the recomputed variance is a mean
        over batches."""
        samples = self.calibration_dataset()
        count = min(num_images, len(samples))
        chosen = torch.randperm(len(samples), generator=torch.Generator().manual_seed(CALIBRATION_SEED))[:count]
        # in drawn order, not file order: a folder's files come class by class, and batches of one class have
        # the within-class variance only (digits at 32 px, batch 16: val top-1 0.85 instead of 0.89)
        subset = Subset(samples, chosen.tolist())
        return DataLoader(
            TransformedDataset(subset, self.eval_transform()),
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            # the workers' base seed from the loader's own generator: the global RNG that dropout draws from
            # stays as it was, so a fit with and without an evaluation in between trains alike
            generator=torch.Generator().manual_seed(CALIBRATION_SEED),
        )

    def calibration_dataset(self) -> Dataset:
        """The training samples `calibration_dataloader` draws from. A subclass whose datasets count what they
        read per epoch returns a copy of its own, so that these reads stay out of training's count."""
        fitting = getattr(self, "train_set", None)  # set up for fit; validate/test read the split here
        return fitting.samples if fitting is not None else self.train_dataset()

    def _loader(self, dataset: Dataset, train: bool) -> DataLoader:
        # Training resumes exactly (order, position and augmentations from seed, epoch and index; see
        # resumable.py); its sampler is a DistributedSampler, so under DDP Lightning keeps it. Evaluation
        # loaders are plain: under DDP Lightning re-creates them with a DistributedSampler.
        loader = ResumableLoader if train else DataLoader
        sampler = None
        if train:
            trainer = self.trainer  # None for a datamodule used on its own (tests, notebooks)
            replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
            sampler = ResumableSampler(dataset, replicas, rank, self.seed)
            if trainer is not None:
                sampler.set_epoch(trainer.current_epoch)  # also for a loader re-made mid-fit (reload_dataloaders_*)
        return loader(
            KeyedDataset(dataset) if train else dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=train,  # equal-sized steps on every rank; a 1-image batch would also upset BatchNorm
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.persistent_workers and self.num_workers > 0,
            # workers' base seed from the loader's own generator: creating an iterator (once, or every epoch
            # without persistent workers) then leaves the global RNG that dropout draws from untouched
            generator=torch.Generator().manual_seed(self.seed if train else 0),
        )

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Labels outside 0..num_classes-1 stop with a sentence. Checked on the host before the copy (no device
        sync): on a GPU, cross-entropy would otherwise fail with an opaque device-side assert. A bare tensor of
        images (no labels: the model summary's example input) passes through."""
        if isinstance(batch, Tensor):
            return batch
        _, targets = batch
        low, high = (int(targets.min()), int(targets.max())) if targets.numel() else (0, 0)
        if low < 0 or high >= self.num_classes:
            bad = high if high >= self.num_classes else low
            raise DataError(
                f"label {bad} in the data is outside 0..{self.num_classes - 1}: {type(self).__name__} declares "
                f"num_classes={self.num_classes}; fix the dataset's labels or the datamodule's num_classes"
            )
        return batch

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> tuple[Tensor, Tensor] | Tensor:
        if isinstance(batch, Tensor):  # images only
            return self.to_model_input(batch)
        images, targets = batch
        return self.to_model_input(images), targets

    def to_model_input(self, images: Tensor) -> Tensor:
        """uint8 (N, 3, H, W) on any device -> float32 (N, 3, resolution, resolution), normalized (model_input.py)."""
        return to_model_input(images, self.resolution, self.mean, self.std)


@rank_zero_only
def _note(message: str) -> None:
    """One line on stderr under `effnet` (a Python warning would add the source line under it), once per run, not
    per rank; a warning record, so that a script's default logging shows it too."""
    log.warning(f"effnet: note: {message}")


def _rounded(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.3f}" for v in values) + ")"


class TransformedDataset(Dataset):
    """Applies an albumentations transform to `(HWC image, label)` samples; returns `(CHW uint8, label)`."""

    def __init__(self, samples: Dataset, transform: Transform | None) -> None:
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image, label = self.samples[index]
        image = np.asarray(image)  # accepts PIL images too
        if self.transform is not None:
            image = self.transform(image=image)["image"]
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), int(label)


class ArrayDataset(Dataset):
    """In-memory `(N, H, W, C) uint8` images with integer labels."""

    def __init__(self, images: np.ndarray, labels: list[int]) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.images[index], self.labels[index]
