"""Where the time goes in the CIFAR-10 pipeline: the train loader's img/s against the model's train img/s.

The CIFAR pipeline's loader hands out uint8 32 px crops whatever the model's resolution (the resize to the
model's size runs per batch on the device, `to_model_input`), so its rate is one number for every variant:
measured over an epoch of the real train loader (CIFAR10DataModule, the configs' workers and batch) on
stand-ins in the real file format. The model's rate is `effnet benchmark`'s train img/s (benchmark.run: the
training step with RMSpropTF and the on-device resize from 32 px, median of the timed steps) at each variant's
native resolution. Whichever is lower bounds training.

    uv run python benchmarks/where_time_goes.py [--workers 8] [--variants b0 b1 ...] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from cifar_standin import checksum_constants, write_cifar10  # benchmarks/cifar_standin.py, beside this script
from torchvision.datasets import CIFAR10

from effnet_lightning.datamodules.cifar10 import CIFAR10DataModule
from effnet_lightning.model import scaling as sc
from effnet_lightning.tools.measure import Setting, run

CIFAR_SIZE = 32  # px of the images the CIFAR loader hands out


def loader_rate(data_dir: Path, workers: int, batch_size: int, warmup: int = 3) -> float:
    """Images/s over one epoch of the train loader, after `warmup` batches (worker start-up)."""
    dm = CIFAR10DataModule(str(data_dir), val_size=10, batch_size=batch_size, num_workers=workers, pin_memory=False)
    dm.setup("fit")
    count, start = 0, time.perf_counter()
    for index, (images, _) in enumerate(dm.train_dataloader()):
        if index == warmup:
            count, start = 0, time.perf_counter()
        count += len(images)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=[f"b{i}" for i in range(8)])
    parser.add_argument("--workers", type=int, default=8, help="loader workers (configs/b*_cifar.yaml: 8)")
    parser.add_argument("--loader-batch", type=int, default=128, help="configs/b*_cifar.yaml: 128")
    parser.add_argument("--model-batch", type=int, default=4, help="images per timed training step")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--train-per-class", type=int, default=1000, help="stand-in images per class")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="where_time_goes_")) / "cifar10"
    for name, value in checksum_constants(write_cifar10(root, args.train_per_class, 10)).items():
        setattr(CIFAR10, name, value)
    loader = loader_rate(root, args.workers, args.loader_batch)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    print(f"loader: {loader:,.0f} img/s ({args.workers} workers, batch {args.loader_batch}, uint8 32 px out)")
    print(f"{'variant':<8} {'px':>4} {'model train img/s':>18} {'loader img/s':>13} {'bound':>7}")
    setting = Setting(
        batch_size=args.model_batch,
        device=args.device,
        steps=args.steps,
        warmup=1,
        source_size=CIFAR_SIZE,
        num_classes=10,
        channels_last=args.device.startswith("cuda"),
    )
    for variant in args.variants:
        result = run(sc.ScalingSpec(variant=variant), setting)
        bound = "model" if result.train_img_s < loader else "loader"
        rate = result.train_img_s
        print(f"{variant:<8} {result.resolution:>4} {rate:>18,.2f} {loader:>13,.0f} {bound:>7}", flush=True)


if __name__ == "__main__":
    main()
