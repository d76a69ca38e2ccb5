"""Which images the pictures show: one fixed sample of a split, spread across its classes.

The `val/predictions` grid, the `val/cam` grid and `effnet cam --split` each show a few images of a split. The first
images of a split are a poor sample: a folder datamodule lists its files class by class, so the first 16 of an
MNIST-style folder are all zeros. `spread_sample` takes them round-robin by label instead (one image of each class,
then a second of each, ...), each class's images in a seeded order, so the same call picks the same images in every
epoch, run and resume.

Labels are read without decoding an image where the dataset exposes them: `targets` (torchvision's ImageFolder,
CIFAR10 and MNIST), `labels` (ArrayDataset), a list of `(path, label)` pairs (`samples`: ImageFolder, ImageFiles),
through Subset and TransformedDataset wrappers. A dataset that exposes none (a plugin's own) gets a seeded random
sample, which spreads across classes too, without reading any of its samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

__all__ = ["PICTURE_SEED", "as_model_input", "labels_of", "picture_batch", "spread_sample"]

PICTURE_SEED = 0  # one sample for every run: pictures of two runs on the same data show the same images


def labels_of(dataset: Dataset) -> list[int] | None:
    """Every sample's label, read from what the dataset keeps beside its images; None when it keeps none."""
    if isinstance(dataset, Subset):
        parent = labels_of(dataset.dataset)
        return None if parent is None else [parent[i] for i in dataset.indices]
    for name in ("targets", "labels"):
        values = getattr(dataset, name, None)
        if isinstance(values, Sequence | np.ndarray | torch.Tensor) and len(values) == len(dataset):
            return [int(v) for v in values]
    inner = getattr(dataset, "samples", None)
    if isinstance(inner, Dataset):  # a wrapper that transforms another dataset's samples (TransformedDataset)
        return labels_of(inner)
    pairs = isinstance(inner, list) and all(isinstance(pair, tuple | list) and len(pair) == 2 for pair in inner)
    if pairs and len(inner) == len(dataset):
        return [int(label) for _, label in inner]  # (path, label) pairs
    return None


def spread_sample(dataset: Dataset, count: int, seed: int = PICTURE_SEED) -> list[int]:
    """Indices of `count` samples (all of them if there are fewer), round-robin over the classes in label order,
    each class's samples in an order drawn from `seed`; a seeded random draw when the labels are unknown."""
    rng = np.random.default_rng(seed)
    labels = labels_of(dataset)
    if labels is None:
        return rng.permutation(len(dataset))[:count].tolist()
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    queues = [[members[i] for i in rng.permutation(len(members))] for _, members in sorted(by_class.items())]
    picked: list[int] = []
    for round_ in range(max(map(len, queues), default=0)):
        picked += [queue[round_] for queue in queues if round_ < len(queue)]
    return picked[:count]


def picture_batch(loader: DataLoader, count: int, seed: int = PICTURE_SEED) -> Any:
    """The picked samples of `loader`'s dataset collated into one batch, on the host, as the loader would yield
    them (its transform and collate function)."""
    dataset = loader.dataset
    return loader.collate_fn([dataset[i] for i in spread_sample(dataset, count, seed)])


def as_model_input(batch: Any, hooks: Any, device: torch.device) -> Any:
    """A host batch as the model receives it during a fit: through the batch-transfer hooks the trainer runs
    (`hooks`: the datamodule, or the LightningModule when it supplies the loaders) onto `device`, where an
    ImageDataModule resizes and normalizes it (model_input.py)."""
    batch = hooks.on_before_batch_transfer(batch, 0)
    batch = hooks.transfer_batch_to_device(batch, device, 0)
    return hooks.on_after_batch_transfer(batch, 0)
