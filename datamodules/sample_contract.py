"""The sample contract of `ImageDataModule`'s datasets, checked on the first sample of each split.

A dataset yields `(image, label)`: the image an HWC uint8 array of shape (height, width, 3) (a PIL RGB image
converts to one), the label an int. A plugin that yields what torchvision's `ToTensor` gives (a CHW float tensor)
otherwise fails far away, inside the batch's resize to the model's resolution, with a shape mismatch that names
neither the dataset nor the fix. Checked once per split when the datamodule sets up, before anything trains:
one sample each, so the cost is one decode per split.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from effnet_lightning.errors import DataError

__all__ = ["check_first_sample"]

CHANNELS = 3  # RGB: the network's stem and the normalization's mean/std have three channels
EXPECTED = "an (image, label) pair whose image is an HWC uint8 array of shape (height, width, 3)"


def check_first_sample(dataset: Dataset, split: str, owner: str) -> None:
    """Raises DataError (one line: the dataset class, what it yielded, what is expected, the fix) when sample 0 of
    `dataset` breaks the contract. An empty dataset passes: the loaders report that themselves."""
    try:
        if len(dataset) == 0:  # type: ignore[arg-type]
            return
    except TypeError:  # no len(): an iterable dataset is read by index nowhere here
        return
    sample = dataset[0]
    where = f"{type(dataset).__name__} (the {split} dataset of {owner})"
    if not isinstance(sample, tuple | list) or len(sample) != 2:
        raise DataError(
            f"{where} yielded a {type(sample).__name__} for sample 0; expected {EXPECTED}. Fix: return "
            "(image, label) from its __getitem__."
        )
    image = sample[0]
    array = np.asarray(image.cpu() if isinstance(image, torch.Tensor) else image)
    problem = _problem(array)
    if problem is None:
        return
    raise DataError(
        f"{where} yielded a {type(image).__name__} of shape {tuple(array.shape)}, dtype {array.dtype}; expected "
        f"{EXPECTED}. Fix: {problem}"
    )


def _problem(array: Any) -> str | None:
    """The one-line fix for the first way `array` breaks the contract, or None."""
    chw = array.ndim == 3 and array.shape[0] in (1, CHANNELS) and array.shape[-1] not in (1, CHANNELS)
    if chw and array.dtype != np.uint8:
        return (
            "yield the image before ToTensor/Normalize (np.asarray of the PIL image); the datamodule converts, "
            "resizes and normalizes it."
        )
    if chw:
        return "yield channels last: image.transpose(1, 2, 0)."
    if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 1):
        return "yield RGB: pil_image.convert('RGB'), or np.repeat(image[..., None], 3, -1) for a 2-D array."
    if array.ndim != 3 or array.shape[-1] != CHANNELS:
        return "yield (height, width, 3) RGB images."
    if array.dtype != np.uint8:
        return "yield uint8 0-255: (image * 255).round().astype(np.uint8) for floats in 0-1."
    return None
