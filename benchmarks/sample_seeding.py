"""Cost of exact-resume augmentation: reseeding the albumentations pipeline per sample (resumable.py).

Loads the CIFAR-10 training stand-ins through the training transform in one process, with and without the
per-sample reseed (KeyedDataset with SampleKey vs a plain index), and prints microseconds per image.

    uv run python benchmarks/sample_seeding.py [--images 20000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from cifar_standin import checksum_constants, write_cifar10  # benchmarks/cifar_standin.py, beside this script
from torchvision.datasets import CIFAR10

from effnet_lightning.datamodules.cifar10 import CIFAR10DataModule
from effnet_lightning.datamodules.resumable import KeyedDataset, SampleKey


def microseconds_per_image(dataset: KeyedDataset, keys: list) -> float:
    start = time.perf_counter()
    for key in keys:
        dataset[key]
    return (time.perf_counter() - start) / len(keys) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        for name, value in checksum_constants(write_cifar10(Path(root))).items():
            setattr(CIFAR10, name, value)
        dm = CIFAR10DataModule(root, val_size=100, resolution=32)
        dm.setup("fit")
        dataset = KeyedDataset(dm.train_set)
        indices = [i % len(dataset) for i in range(args.images)]
        plain = microseconds_per_image(dataset, indices)
        keyed = microseconds_per_image(dataset, [SampleKey(i, 0, 0) for i in indices])
    print(
        f"CIFAR train transform, one process: {plain:.1f} us/image plain, {keyed:.1f} us/image reseeded "
        f"(+{keyed - plain:.1f} us, {plain / keyed:.2f}x throughput)"
    )


if __name__ == "__main__":
    main()
