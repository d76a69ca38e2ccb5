"""ImageNet train pipeline (decode + augment) in images/s for one loader worker: ours against torchvision's.

ours:        OpenCV decode (decode_image) -> albumentations RandomResizedCrop (bicubic, INTER_AREA when shrinking)
             + flip [+ RandAugment] -> CHW uint8 tensor; exactly what a worker of ImageNetDataModule runs.
torchvision: PIL decode + convert("RGB") -> torchvision RandomResizedCrop (bicubic, antialiased) + flip
             [+ timm's RandAugment on PIL] -> ToTensor (float CHW); the classic timm/torchvision pipeline.
Both single-process, one thread (a loader worker runs one image at a time; torch sets 1 thread in workers).
Data: JPEGs of ImageNet's typical size (500x375, quality 90, smooth content plus noise: about 110 KiB, like the
average ImageNet train file), written to a temporary folder.

    uv run python benchmarks/imagenet_pipeline.py [--resolutions 224 380] [--images 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from timm.data.auto_augment import rand_augment_transform
from torchvision import transforms as T

from effnet_lightning.datamodules.base import TransformedDataset
from effnet_lightning.datamodules.image_folder import ImageFiles, decode_image
from effnet_lightning.datamodules.randaugment import DEFAULT_FILL, RandAugment
from effnet_lightning.datamodules.transforms import random_resized_crop

IMAGE_SIZE = (500, 375)  # width, height: the most common ImageNet train size (mean is about 400x350)
RANDAUGMENT = "rand-m9-mstd0.5"  # timm's EfficientNet recipe


def write_jpegs(folder: Path, count: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    width, height = IMAGE_SIZE
    paths = []
    for i in range(count):
        coarse = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32)
        noisy = np.clip(smooth + rng.normal(0, 24, smooth.shape), 0, 255).astype(np.uint8)
        paths.append(folder / f"img_{i:04d}.JPEG")
        Image.fromarray(noisy).save(paths[-1], quality=90)
    return paths


def ours(paths: list[Path], resolution: int, randaugment: bool) -> Callable[[int], object]:
    pipeline = random_resized_crop(resolution)
    if randaugment:
        import albumentations as A

        pipeline = A.Compose([pipeline, RandAugment(RANDAUGMENT, DEFAULT_FILL)])
    dataset = TransformedDataset(ImageFiles([(str(p), 0) for p in paths], "train"), pipeline)
    return dataset.__getitem__


def torchvision_pipeline(paths: list[Path], resolution: int, randaugment: bool) -> Callable[[int], object]:
    steps = [T.RandomResizedCrop(resolution, interpolation=T.InterpolationMode.BICUBIC), T.RandomHorizontalFlip()]
    if randaugment:
        hparams = {
            "translate_const": int(resolution * 0.45),
            "img_mean": DEFAULT_FILL,
            "interpolation": Image.BICUBIC,
        }  # what timm's create_transform passes
        steps.append(rand_augment_transform(RANDAUGMENT, hparams))
    transform = T.Compose([*steps, T.ToTensor()])

    def load(index: int) -> object:
        with Image.open(paths[index]) as image:
            return transform(image.convert("RGB")), 0

    return load


def decode_only(paths: list[Path], library: str) -> Callable[[int], object]:
    if library == "opencv":
        return lambda i: decode_image(str(paths[i]))

    def pil(i: int) -> object:
        with Image.open(paths[i]) as image:
            return image.convert("RGB")

    return pil


def rate(load: Callable[[int], object], count: int, repeats: int) -> tuple[float, float, float]:
    """Median, min and max images/s over `repeats` passes of `count` images (after one warm-up pass of 20)."""
    for i in range(20):
        load(i % count)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(count):
            load(i)
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates), min(rates), max(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[224, 380], help="px; 224 = B0, 380 = B4")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)

    folder = Path(tempfile.mkdtemp(prefix="imagenet_bench_"))
    paths = write_jpegs(folder, args.images)
    kib = np.mean([p.stat().st_size for p in paths]) / 1024
    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, OpenCV {cv2.__version__}, "
        f"Pillow {Image.__version__}; {args.images} JPEGs {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} (mean {kib:.0f} KiB), "
        f"1 process, 1 thread; median (min-max) of {args.repeats} passes"
    )
    rows = {
        "decode only: OpenCV (ours)": decode_only(paths, "opencv"),
        "decode only: PIL": decode_only(paths, "pil"),
    }
    for resolution in args.resolutions:
        for randaugment in (False, True):
            suffix = f" + RandAugment {RANDAUGMENT}" if randaugment else ""
            rows[f"{resolution} px: ours{suffix}"] = ours(paths, resolution, randaugment)
            rows[f"{resolution} px: torchvision{suffix}"] = torchvision_pipeline(paths, resolution, randaugment)
    for name, load in rows.items():
        median, low, high = rate(load, args.images, args.repeats)
        print(f"{name:<58} {median:>7.0f} img/s  ({low:.0f}-{high:.0f})")


if __name__ == "__main__":
    main()
