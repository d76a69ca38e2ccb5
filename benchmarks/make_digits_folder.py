"""scikit-learn's digits (1,797 handwritten digits, 8x8 px, 17 grey levels; UCI ML hand-written digits, shipped
inside scikit-learn, no download) as an image folder for ImageFolderDataModule: train/, val/ and test/, one
subfolder per digit, one PNG per image.

    uv run --no-project --with scikit-learn --with pillow python benchmarks/make_digits_folder.py data/digits

The split is fixed: stratified per digit with numpy's generator seeded 0, 60% train, 20% val, 20% test (1,078 /
359 / 360 images). Grey levels 0-16 are stretched to 0-255 (x 255 / 16, rounded) and saved as 8-bit grayscale
PNGs, so the files are byte-identical on every run. scikit-learn is needed only here, not by the project.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

SPLITS = (("train", 0.6), ("val", 0.2), ("test", 0.2))  # fractions of each digit's images
SEED = 0
MAX_LEVEL = 16  # load_digits' grey levels run 0..16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write train/, val/ and test/ into (must not exist)")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out} exists; give a new folder")
    counts = write_digits(args.out)
    print(f"{args.out}: " + ", ".join(f"{split} {count}" for split, count in counts.items()))


def write_digits(out: Path, digits: Sequence[int] = range(10), train_per_class: int | None = None) -> dict[str, int]:
    """Write the split of `digits` under `out` (split/digit/index.png); `train_per_class` keeps only the first
    images of each digit's (already shuffled) training share. Returns the images per split."""
    data = load_digits()
    images = np.rint(data.images * 255 / MAX_LEVEL).astype(np.uint8)  # (1797, 8, 8)
    rng = np.random.default_rng(SEED)
    counts = {split: 0 for split, _ in SPLITS}
    for label in range(10):  # every digit draws its permutation, so a subset splits exactly as the whole
        indices = rng.permutation(np.flatnonzero(data.target == label))
        if label not in digits:
            continue
        cuts = np.cumsum([round(fraction * len(indices)) for _, fraction in SPLITS[:-1]])
        for (split, _), part in zip(SPLITS, np.split(indices, cuts), strict=True):
            if split == "train" and train_per_class is not None:
                part = part[:train_per_class]
            folder = out / split / str(label)
            folder.mkdir(parents=True)
            for index in part:
                Image.fromarray(images[index], mode="L").save(folder / f"{index:04d}.png")
            counts[split] += len(part)
    return counts


if __name__ == "__main__":
    main()
