"""What precise BN costs: recomputing BatchNorm statistics (raw + EMA weights) against a training step, per image.

    uv run python benchmarks/precise_bn_cost.py --scaling phi=-4 --resolution 32 --batch 64
    uv run python benchmarks/precise_bn_cost.py --scaling variant=b0 --resolution 224 --batch 16

One process, one model: a training step of EfficientNetModule (RMSpropTF, fp32, random images at the model's
resolution) and callbacks/precise_bn.py's `recompute_batchnorm` over the same number of images for the module and
an EMA-sized copy of it (what the callback does with the EMA callback on), alternated and timed with
time.perf_counter (median of --repeats). Prints seconds per image of each, their ratio, and the share of an epoch's
training time one recomputation over 8,192 images costs for CIFAR-10 (50,000 training images) and ImageNet
(1,281,167).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

from effnet_lightning.callbacks.precise_bn import PRECISE_BN_IMAGES, recompute_batchnorm
from effnet_lightning.model.scaling import ScalingSpec
from effnet_lightning.train.module import EfficientNetModule

EPOCH_IMAGES = {"CIFAR-10": 50_000, "ImageNet": 1_281_167}  # training split sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scaling", default="phi=-4", help="one ScalingSpec field: phi=-4 or variant=b0")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=2, help="batches per recomputation (timed unit)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    key, value = args.scaling.split("=")
    spec = ScalingSpec(**{key: float(value) if key == "phi" else value}, resolution=args.resolution)
    torch.manual_seed(0)
    module = EfficientNetModule(spec, num_classes=1000)
    ema = copy.deepcopy(module).eval().requires_grad_(False)
    optimizer = torch.optim.RMSprop(module.parameters(), lr=1e-4, alpha=0.9, eps=1e-3, momentum=0.9)
    images = torch.randn(args.batch, 3, args.resolution, args.resolution)
    targets = torch.randint(0, 1000, (args.batch,))

    def train_step() -> float:
        start = time.perf_counter()
        module.train()
        loss = F.cross_entropy(module(images), targets, label_smoothing=0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return (time.perf_counter() - start) / args.batch

    def recompute() -> float:
        start = time.perf_counter()
        recompute_batchnorm([module, ema], [images] * args.batches)
        return (time.perf_counter() - start) / (args.batch * args.batches)

    train_step(), recompute()  # warm-up
    train = statistics.median(train_step() for _ in range(args.repeats))
    precise = statistics.median(recompute() for _ in range(args.repeats))
    print(f"{args.scaling} at {args.resolution} px, batch {args.batch}, {torch.get_num_threads()} threads")
    print(
        f"train step: {1e3 * train:.2f} ms/image; precise BN (raw + EMA): {1e3 * precise:.2f} ms/image "
        f"({precise / train:.2f}x a training image)"
    )
    for name, size in EPOCH_IMAGES.items():
        used = min(PRECISE_BN_IMAGES, size)
        print(
            f"{name}: one recomputation over {used} images = {100 * used * precise / (size * train):.2f}% of an "
            "epoch's training time"
        )


if __name__ == "__main__":
    main()
