"""The pictures' images: a fixed sample of a split spread across its classes, labels read without decoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from imagenet_tree import write_tree
from torch.utils.data import Dataset, Subset

from effnet_lightning.datamodules.base import ArrayDataset, TransformedDataset
from effnet_lightning.datamodules.image_folder import ImageFolderDataModule
from effnet_lightning.datamodules.picture_sample import labels_of, spread_sample


class NoLabels(Dataset):
    """A plugin's dataset that keeps no labels beside its images, and counts what is read of it."""

    def __init__(self, length: int) -> None:
        self.length, self.reads = length, 0

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        self.reads += 1
        return np.zeros((8, 8, 3), np.uint8), index % 3


def test_a_sorted_folder_is_picked_round_robin_by_class(tmp_path: Path) -> None:
    """A folder lists its validation files class by class: the first six are all one class, the picked six are
    two of each, and picking again gives the same images."""
    write_tree(tmp_path, train_per_class=4, val_per_class=5)
    val = ImageFolderDataModule(str(tmp_path), resolution=32).val_dataset()
    labels = [label for _, label in val.samples]
    assert labels[:6] == [0] * 5 + [1]  # what "the first images" were
    picked = spread_sample(val, 6)
    assert [labels[i] for i in picked] == [0, 1, 2, 0, 1, 2]
    assert spread_sample(val, 6) == picked and len(set(picked)) == 6
    assert spread_sample(val, 100) == spread_sample(val, 15)  # all 15, none twice


def test_labels_are_read_through_wrappers_without_decoding() -> None:
    arrays = ArrayDataset(np.zeros((6, 4, 4, 3), np.uint8), [2, 2, 0, 0, 1, 1])
    assert labels_of(TransformedDataset(Subset(arrays, [5, 0, 2]), None)) == [1, 2, 0]


def test_a_dataset_without_labels_gets_a_seeded_sample_and_is_not_read() -> None:
    dataset = NoLabels(50)
    picked = spread_sample(dataset, 8)
    assert picked == spread_sample(dataset, 8) and len(set(picked)) == 8 and picked != list(range(8))
    assert dataset.reads == 0


@pytest.mark.parametrize("count", [1, 4])
def test_fewer_than_the_classes(count: int) -> None:
    arrays = ArrayDataset(np.zeros((12, 4, 4, 3), np.uint8), [0] * 6 + [1] * 3 + [2] * 3)
    assert [arrays.labels[i] for i in spread_sample(arrays, count)] == [0, 1, 2, 0][:count]
