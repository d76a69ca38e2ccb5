"""Why a tiny EfficientNet does or does not learn the guide toy (docs/datamodules.md): one factor at a time.

The toy is the guide's `make_npz.py` data (two classes of 8x8 images, 128 train / 64 val) and its `npz_try.yaml`
recipe: phi -4 at 32 px, batch 16, 3 epochs (24 updates), RMSpropTF at LR 0.016 per 256 images, 0.5 epochs of
warm-up, BN momentum 0.1, label smoothing 0.1, pad-1 shift augmentation. This is a bare loop over the project's
own pieces (create_model, the datamodule base's loader and on-device resize, timm's optimizer and the
project's LR scheduler), so one run costs seconds, not the CLI's minute; tests/docs/test_guide.py runs the
real thing. Each row changes one thing against the guide's recipe:

    uv run python benchmarks/small_image_learning.py                      # all arms, seeds 0-2
    OMP_NUM_THREADS=1 ATEN_CPU_CAPABILITY=default uv run python benchmarks/small_image_learning.py --arms guide

Printed per arm and seed: the loss before any update (chance is ln 2 = 0.69), the initial logit std, the mean
training loss of the last epoch, val top-1 of the raw weights and of a TF-style EMA (decay warm-up
min(0.9999, (1+n)/(10+n))), and how far the body's and the classifier's weights moved (relative L2 change).
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import platform
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from timm.optim import RMSpropTF, create_optimizer_v2

from effnet_lightning.callbacks.ema import tf_ema_decay
from effnet_lightning.datamodules.base import ArrayDataset, ImageDataModule
from effnet_lightning.datamodules.transforms import pad_random_crop
from effnet_lightning.model.grad_checkpointing import BATCH_NORMS
from effnet_lightning.model.network import CLASSIFIER_INIT_CLASSES, create_model
from effnet_lightning.model.scaling import ScalingSpec
from effnet_lightning.train.lr_schedule import create_lr_scheduler, epochs_done

LR_PER_256 = 0.016  # the module's default, per 256 images


@dataclass(frozen=True)
class Arm:
    """One recipe; the defaults are the guide's npz_try.yaml with the module's defaults."""

    head: str = "timm"  # classifier init: timm/TF's U(+-1/sqrt(num_classes)); imagenet: U(+-1/sqrt(1000)); fan_in; zero
    optimizer: str = "rmsproptf"
    warmup_epochs: float = 0.5
    batch_size: int = 16
    bn_momentum: float = 0.1
    resolution: int = 32
    epochs: int = 3
    lr_per_256: float = LR_PER_256
    schedule: str = "step"  # the module's lr_schedule; cosine runs to 0 at the last update
    train_images: int = 128  # the guide's make_npz.py count
    bn_warmup: bool = False  # BN momentum max(bn_momentum, 1 / (update + 1)): running stats without their init


ARMS = {
    "guide": Arm(),
    "head fan_in": Arm(head="fan_in"),
    "head imagenet": Arm(head="imagenet"),
    "head zero": Arm(head="zero"),
    "cosine": Arm(schedule="cosine"),
    "cosine, head imagenet": Arm(schedule="cosine", head="imagenet"),
    "cosine, head imagenet, lr x4": Arm(schedule="cosine", head="imagenet", lr_per_256=4 * LR_PER_256),
    "bn 0.5, head imagenet": Arm(bn_momentum=0.5, head="imagenet"),
    "bn 0.5, head imagenet, lr x4": Arm(bn_momentum=0.5, head="imagenet", lr_per_256=4 * LR_PER_256),
    "bn 0.5, lr x4": Arm(bn_momentum=0.5, lr_per_256=4 * LR_PER_256),
    "512 train images, head imagenet": Arm(train_images=512, head="imagenet"),
    "512 train images": Arm(train_images=512),
    "512 train images, head imagenet, bn 0.5": Arm(train_images=512, head="imagenet", bn_momentum=0.5),
    "head imagenet, adamw, cosine": Arm(head="imagenet", optimizer="adamw", schedule="cosine"),
    "head imagenet, adamw, cosine, 5 epochs": Arm(head="imagenet", optimizer="adamw", schedule="cosine", epochs=5),
    "head imagenet, 10 epochs, cosine": Arm(head="imagenet", schedule="cosine", epochs=10),
    "bn warm-up": Arm(bn_warmup=True),
    "bn warm-up, head imagenet": Arm(bn_warmup=True, head="imagenet"),
    "bn warm-up, head imagenet, adamw": Arm(bn_warmup=True, head="imagenet", optimizer="adamw"),
    "head imagenet, lr x4": Arm(head="imagenet", lr_per_256=4 * LR_PER_256),
    "head imagenet, lr x16": Arm(head="imagenet", lr_per_256=16 * LR_PER_256),
    "head imagenet, adamw": Arm(head="imagenet", optimizer="adamw"),
    "head imagenet, 10 epochs": Arm(head="imagenet", epochs=10),
    "adamw": Arm(optimizer="adamw"),
    "sgd": Arm(optimizer="sgd"),
    "no warm-up": Arm(warmup_epochs=0.0),
    "warm-up 2 ep": Arm(warmup_epochs=2.0),
    "batch 64 (2 ep warm-up)": Arm(batch_size=64, warmup_epochs=2.0, epochs=12),
    "bn momentum 0.01": Arm(bn_momentum=0.01),
    "8 px (no upsampling)": Arm(resolution=8),
    "64 px": Arm(resolution=64),
    "10 epochs": Arm(epochs=10),
    "10 epochs, head fan_in": Arm(epochs=10, head="fan_in"),
}


def toy_data(train_images: int = 128) -> dict[str, ArrayDataset]:
    """The guide's make_npz.py (with its count of training images)."""
    rng = np.random.default_rng(0)
    splits = {}
    for split, count in (("train", train_images), ("val", 64), ("test", 64)):
        labels = rng.integers(0, 2, count)
        images = rng.normal(100, 30, (count, 8, 8, 3))
        images[labels == 0, :, :4] += 80
        images[labels == 1, :, 4:] += 80
        splits[split] = ArrayDataset(np.clip(images, 0, 255).astype(np.uint8), labels.tolist())
    return splits


class Toy(ImageDataModule):
    num_classes = 2
    default_mean = (0.5, 0.5, 0.5)
    default_std = (0.25, 0.25, 0.25)

    def __init__(self, splits: dict[str, ArrayDataset], resolution: int, batch_size: int, seed: int) -> None:
        super().__init__("unused", resolution, batch_size, num_workers=0, seed=seed)
        self.splits = splits

    def train_dataset(self):
        return self.splits["train"]

    def val_dataset(self):
        return self.splits["val"]

    def train_transform(self):
        return pad_random_crop(8, 1, 0.0)


def init_head(model: torch.nn.Module, how: str) -> None:
    head = model.get_classifier()
    if how == "timm":  # timm's _init_weight_goog, TF's dense_kernel_initializer
        bound = 1 / math.sqrt(head.out_features)
        torch.nn.init.uniform_(head.weight, -bound, bound)
    elif how == "zero":
        torch.nn.init.zeros_(head.weight)
    elif how == "imagenet":  # what create_model keeps below 1000 classes
        bound = 1 / math.sqrt(CLASSIFIER_INIT_CLASSES)
        torch.nn.init.uniform_(head.weight, -bound, bound)
    elif how == "fan_in":
        bound = 1 / math.sqrt(head.in_features)
        torch.nn.init.uniform_(head.weight, -bound, bound)
    torch.nn.init.zeros_(head.bias)


@torch.no_grad()
def accuracy(model: torch.nn.Module, data: Toy) -> float:
    model.eval()
    hits = total = 0
    for images, labels in data.val_dataloader():
        hits += int((model(data.to_model_input(images)).argmax(1) == labels).sum())
        total += len(labels)
    model.train()
    return hits / total


@torch.no_grad()
def accuracy_bn_recomputed(model: torch.nn.Module, data: Toy) -> float:
    """Val top-1 after BatchNorm's running statistics are recomputed for the final weights (a cumulative average
    over one pass of the training images, as timm's/pycls' "precise BN"): tells stale statistics from bad weights."""
    model = copy.deepcopy(model)
    for module in model.modules():
        if isinstance(module, BATCH_NORMS):
            module.reset_running_stats()
            module.momentum = None  # cumulative moving average
    model.train()
    for images, _ in data.train_dataloader():
        model(data.to_model_input(images))
    return accuracy(model, data)


def rmsprop_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """Median over the body's conv weights of RMSpropTF's sqrt(square_avg) (starts at 1: TF initialises the
    accumulator to ones) and of the last gradient's |g|: the update is lr * g / sqrt(square_avg), so while the
    accumulator is far above g^2 the step is about lr * g, far below RMSProp's steady lr * g / |g|."""
    if not isinstance(optimizer, RMSpropTF):
        return {"rms": math.nan, "grad": math.nan}
    rms, grad = [], []
    for param in model.parameters():
        if param.ndim == 4 and param.grad is not None:
            rms.append(optimizer.state[param]["square_avg"].sqrt().flatten())
            grad.append(param.grad.abs().flatten())
    return {"rms": float(torch.cat(rms).median()), "grad": float(torch.cat(grad).median())}


def relative_change(before: dict[str, torch.Tensor], model: torch.nn.Module, head: bool) -> float:
    """||W - W0|| / ||W0|| over the classifier's weights, or over every other weight of 2+ dims."""
    num = den = 0.0
    for name, param in model.named_parameters():
        if param.ndim < 2 or name.startswith("classifier") != head:
            continue
        num += float((param.detach() - before[name]).pow(2).sum())
        den += float(before[name].pow(2).sum())
    return math.sqrt(num / den) if den else math.inf


def run(arm: Arm, seed: int, splits: dict[str, ArrayDataset]) -> dict[str, float]:
    torch.manual_seed(seed)
    model = create_model(
        ScalingSpec(phi=-4, resolution=arm.resolution), num_classes=2, bn_momentum=arm.bn_momentum, bn_eps=1e-3
    )
    init_head(model, arm.head)
    data = Toy(splits, arm.resolution, arm.batch_size, seed)
    data.setup("fit")
    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    ema = copy.deepcopy(model)
    lr = arm.lr_per_256 * arm.batch_size / 256
    extra = {"rmsproptf": {"alpha": 0.9, "eps": 1e-3}, "adamw": {"eps": 1e-3}}.get(arm.optimizer, {})
    optimizer = create_optimizer_v2(
        model, opt=arm.optimizer, lr=lr, weight_decay=1e-5, momentum=0.9, filter_bias_and_bn=True, **extra
    )
    scheduler = create_lr_scheduler(optimizer, arm.schedule, arm.warmup_epochs, 0.0, 0.97, 2.4, arm.epochs, 0.0)
    loader = data.train_dataloader()
    per_epoch = len(loader)
    model.train()
    with torch.no_grad():
        images, labels = next(iter(loader))
        logits = model(data.to_model_input(images))
        first_loss = float(F.cross_entropy(logits, labels))
        logit_std = float(logits.std())
    step, last_losses = 0, []
    for epoch in range(arm.epochs):
        loader.sampler.set_epoch(epoch)
        last_losses = []
        for images, labels in loader:
            if arm.bn_warmup:
                for module in model.modules():
                    if isinstance(module, torch.nn.BatchNorm2d):
                        module.momentum = max(arm.bn_momentum, 1 / (step + 1))
            loss = F.cross_entropy(model(data.to_model_input(images)), labels, label_smoothing=0.1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            scheduler.step_update(num_updates=epochs_done(step, per_epoch))
            decay = tf_ema_decay(step - 1)
            with torch.no_grad():
                for a, b in zip(ema.state_dict().values(), model.state_dict().values(), strict=True):
                    a.lerp_(b, 1 - decay) if a.is_floating_point() else a.copy_(b)
            last_losses.append(loss.item())
    return {
        **rmsprop_state(model, optimizer),
        "loss0": first_loss,
        "logit_std0": logit_std,
        "last_epoch_loss": float(np.mean(last_losses)),
        "val_acc1": accuracy(model, data),
        "val_ema_acc1": accuracy(ema, data),
        "val_acc1_precise_bn": accuracy_bn_recomputed(model, data),
        "body_moved": relative_change(start, model, head=False),
        "head_moved": relative_change(start, model, head=True),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arms", nargs="*", default=list(ARMS))
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--head", default=None, help="override every arm's classifier init")
    args = parser.parse_args()
    splits = toy_data()
    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, threads "
        f"{torch.get_num_threads()}, ATEN_CPU_CAPABILITY={os.environ.get('ATEN_CPU_CAPABILITY', '(unset)')}, "
        f"capability {torch.backends.cpu.get_cpu_capability()}"
    )
    columns = [
        "arm",
        "seed",
        "loss0",
        "logit std0",
        "last-epoch loss",
        "val top-1",
        "val EMA top-1",
        "val top-1, BN recomputed",
        "body moved",
        "head moved",
        "sqrt(square_avg)",
        "grad",
    ]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for name in args.arms:
        arm = ARMS[name] if args.head is None else replace(ARMS[name], head=args.head)
        for seed in args.seeds:
            r = run(arm, seed, splits if arm.train_images == 128 else toy_data(arm.train_images))
            cells = [
                f"{r['loss0']:.2f}",
                f"{r['logit_std0']:.2f}",
                f"{r['last_epoch_loss']:.3f}",
                f"{r['val_acc1']:.3f}",
                f"{r['val_ema_acc1']:.3f}",
                f"{r['val_acc1_precise_bn']:.3f}",
                f"{r['body_moved']:.4f}",
                f"{r['head_moved']:.3f}",
                f"{r['rms']:.3g}",
                f"{r['grad']:.2g}",
            ]
            print(f"| {name} | {seed} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
