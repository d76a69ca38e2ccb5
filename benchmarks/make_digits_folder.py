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
    digits = load_digits()
    images = np.rint(digits.images * 255 / MAX_LEVEL).astype(np.uint8)  # (1797, 8, 8)
    rng = np.random.default_rng(SEED)
    counts = {split: 0 for split, _ in SPLITS}
    for label in range(10):
        indices = rng.permutation(np.flatnonzero(digits.target == label))
        cuts = np.cumsum([round(fraction * len(indices)) for _, fraction in SPLITS[:-1]])
        for (split, _), part in zip(SPLITS, np.split(indices, cuts), strict=True):
            folder = args.out / split / str(label)
            folder.mkdir(parents=True)
            for index in part:
                Image.fromarray(images[index], mode="L").save(folder / f"{index:04d}.png")
            counts[split] += len(part)
    print(f"{args.out}: " + ", ".join(f"{split} {count}" for split, count in counts.items()))


if __name__ == "__main__":
    main()
