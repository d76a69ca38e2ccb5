"""An ImageNet-layout tree of real image files for tests: train/<wnid>/*.JPEG, val/<wnid>/*.JPEG.

Three classes told apart by colour (red, green, blue plus noise), so a tiny model learns them in a few steps at
32 px whatever the random crop. Images have mixed sizes; train/ also holds a grayscale JPEG, a CMYK JPEG, a PNG,
a truncated JPEG (unreadable) and a stray .DS_Store.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

WNIDS = ("n01440764", "n01443537", "n01484850")  # the first three ImageNet-1k classes
COLORS = ((210, 40, 40), (40, 190, 60), (40, 60, 210))  # RGB per class


@dataclass(frozen=True)
class Tree:
    root: Path
    truncated: Path  # unreadable: the first half of a valid JPEG
    stray: Path  # .DS_Store in a class folder
    grayscale: Path
    cmyk: Path
    png: Path
    num_train: int  # image-extension files in train/, the truncated one included


def photo(rng: np.random.Generator, color: tuple[int, int, int], height: int, width: int) -> np.ndarray:
    """A noisy patch of `color` (uint8 HWC)."""
    noise = rng.normal(0, 25, (height, width, 3))
    return np.clip(np.array(color) + noise, 0, 255).astype(np.uint8)


def write_tree(root: Path, train_per_class: int = 20, val_per_class: int = 8, seed: int = 0) -> Tree:
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for wnid, color in zip(WNIDS, COLORS, strict=True):
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for i in range(count):
                height, width = rng.integers(36, 100, size=2)  # mixed sizes and aspect ratios
                name = f"{wnid}_{i}.JPEG" if split == "train" else f"ILSVRC2012_val_{wnid}_{i}.JPEG"
                Image.fromarray(photo(rng, color, height, width)).save(folder / name, quality=90)
    train = root / "train"
    red, green, blue = (train / wnid for wnid in WNIDS)
    grayscale, cmyk, png = red / "gray.JPEG", green / "cmyk.JPEG", blue / "alpha.png"
    Image.fromarray(photo(rng, COLORS[0], 48, 64)).convert("L").save(grayscale)
    Image.fromarray(photo(rng, COLORS[1], 48, 64)).convert("CMYK").save(cmyk, quality=95)
    Image.fromarray(photo(rng, COLORS[2], 48, 64)).convert("RGBA").save(png)
    buffer = io.BytesIO()
    Image.fromarray(photo(rng, COLORS[0], 64, 64)).save(buffer, "JPEG")
    truncated = red / "truncated.JPEG"
    truncated.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    stray = green / ".DS_Store"
    stray.write_bytes(b"\x00\x00\x00\x01Bud1")
    return Tree(root, truncated, stray, grayscale, cmyk, png, num_train=3 * train_per_class + 4)
