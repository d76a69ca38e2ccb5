"""CIFAR-10 train loader throughput at B1 resolution: resize per batch after transfer vs per image on the CPU.

(a) this project's pipeline: the loader yields uint8 32 px crops; `to_model_input` (on_after_batch_transfer)
    resizes each batch to the model resolution on the device. Here there is no GPU, so its cost is measured
    separately on the CPU (and on CUDA when present).
(b) the per-image alternative: an albumentations Resize to the model resolution inside the worker pipeline.
Data: CIFAR-10 stand-ins in the real file format, in a temporary directory (no network).

    uv run python benchmarks/cifar_loader.py [--resolution 240] [--workers 2] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import albumentations as A
import cv2
import torch
from cifar_standin import checksum_constants, write_cifar10  # benchmarks/cifar_standin.py, beside this script
from torchvision.datasets import CIFAR10

from effnet_lightning.datamodules.cifar10 import CIFAR10DataModule


class PerImageResize(CIFAR10DataModule):
    """(b): the same augmentation followed by a per-image CPU resize to the model resolution."""

    def train_transform(self):
        size = self.resolution
        return A.Compose([super().train_transform(), A.Resize(size, size, interpolation=cv2.INTER_LINEAR)])


def loader_rate(dm: CIFAR10DataModule, warmup: int = 3) -> float:
    """Images/s over one epoch of the train loader, after `warmup` batches (worker start-up)."""
    dm.setup("fit")
    count, start = 0, None
    for i, (images, _) in enumerate(dm.train_dataloader()):
        if i == warmup:
            count, start = 0, time.perf_counter()
        count += len(images)
    return count / (time.perf_counter() - start)


def batch_rate(dm: CIFAR10DataModule, images: torch.Tensor, repeats: int = 10) -> float:
    """Images/s of to_model_input (float conversion, resize if needed, normalize) on images' device."""
    dm.to_model_input(images)  # warm-up
    sync = torch.cuda.synchronize if images.is_cuda else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        dm.to_model_input(images)
    sync()
    return repeats * len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=240, help="px; 240 = EfficientNet-B1")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--train-per-class", type=int, default=1000, help="stand-in images per class")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    root = Path(tempfile.mkdtemp(prefix="cifar_bench_")) / "cifar10"
    for name, value in checksum_constants(write_cifar10(root, args.train_per_class, 10)).items():
        setattr(CIFAR10, name, value)
    common = dict(
        data_dir=str(root),
        val_size=10,
        resolution=args.resolution,
        batch_size=args.batch_size,
        num_workers=args.workers,
        pin_memory=False,
    )
    a, b = CIFAR10DataModule(**common), PerImageResize(**common)
    small = torch.randint(0, 256, (args.batch_size, 3, 32, 32), dtype=torch.uint8)
    large = torch.randint(0, 256, (args.batch_size, 3, args.resolution, args.resolution), dtype=torch.uint8)

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, workers={args.workers}, "
        f"batch={args.batch_size}, resolution={args.resolution}, {10 * args.train_per_class} train images"
    )
    rows = {
        "(a) loader, uint8 32 px out": loader_rate(a),
        f"(a) per-batch resize 32->{args.resolution} + normalize, CPU": batch_rate(a, small),
        f"(b) loader, per-image CPU resize, uint8 {args.resolution} px out": loader_rate(b),
        f"(b) per-batch normalize only ({args.resolution} px), CPU": batch_rate(b, large),
    }
    if torch.cuda.is_available():
        rows[f"(a) per-batch resize 32->{args.resolution} + normalize, CUDA"] = batch_rate(a, small.cuda())
    for name, rate in rows.items():
        print(f"{name:<62} {rate:>10,.0f} img/s")


if __name__ == "__main__":
    main()
