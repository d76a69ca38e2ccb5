"""Training img/s with a frozen backbone (classifier only: `model.frozen_epochs`) against full fine-tuning.

    OMP_NUM_THREADS=2 uv run python benchmarks/finetune_throughput.py --variant b0 --resolution 128 --batch 32

One training step as EfficientNetModule takes it: forward (head-only under no_grad when frozen), loss, backward
(plus the zero-weight anchor that keeps DDP's reduction complete), gradients of the frozen part dropped, RMSpropTF
step. The two modes alternate round by round on the same inputs, so the ratio is measured side by side.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from timm.optim import RMSpropTF

from effnet_lightning.model.scaling import ScalingSpec
from effnet_lightning.train import freezing
from effnet_lightning.train.module import EfficientNetModule

MODES = ("full", "frozen")


def step(module: EfficientNetModule, optimizer: torch.optim.Optimizer, images, targets, frozen: bool) -> None:
    """One update, as training_step, backward and on_before_optimizer_step run it."""
    logits = freezing.head_only_logits(module.model, images) if frozen else module.model(images)
    loss = F.cross_entropy(logits, targets, label_smoothing=0.1)
    if frozen:
        loss = loss + freezing.anchor(module.model)
    loss.backward()
    if frozen:
        freezing.drop_backbone_grads(module.model)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="b0")
    parser.add_argument("--resolution", type=int, default=128, help="px")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per mode per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    spec = ScalingSpec(variant=args.variant, resolution=args.resolution)
    module = EfficientNetModule(scaling=spec, num_classes=args.classes).train()
    optimizer = RMSpropTF(module.model.parameters(), lr=1e-4, alpha=0.9, eps=1e-3, momentum=0.9)  # the paper's
    images = torch.randn(args.batch, 3, args.resolution, args.resolution)
    targets = torch.randint(0, args.classes, (args.batch,))
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    for mode in MODES:  # warm-up: allocator, kernels
        freezing.set_backbone_training(module.model, mode == "full")
        step(module, optimizer, images, targets, mode == "frozen")
    for _ in range(args.rounds):
        for mode in MODES:
            freezing.set_backbone_training(module.model, mode == "full")  # frozen: BN statistics as loaded
            start = time.perf_counter()
            for _ in range(args.steps):
                step(module, optimizer, images, targets, mode == "frozen")
            rates[mode].append(args.steps * args.batch / (time.perf_counter() - start))
    print(
        f"{args.variant} {args.resolution}px batch {args.batch}, {torch.get_num_threads()} threads, "
        f"{args.rounds} rounds x {args.steps} steps"
    )
    for mode in MODES:
        values = rates[mode]
        print(
            f"{mode:7s} img/s: median {sorted(values)[len(values) // 2]:.1f} (rounds: "
            + ", ".join(f"{v:.1f}" for v in values)
            + ")"
        )
    ratio = [f / g for f, g in zip(rates["frozen"], rates["full"], strict=True)]
    print(f"frozen / full: median {sorted(ratio)[len(ratio) // 2]:.2f}x")


if __name__ == "__main__":
    main()
