"""What a model costs to train and to run, measured on this machine: the library behind `effnet benchmark` and
the study's speed columns.

For each model (a variant, φ or multipliers) at one resolution, batch, precision and device it measures:
- train img/s: the bare training step (uint8 batch on the device -> float, resize, normalize with the datamodules'
  own `to_model_input`; forward, loss, backward, timm RMSpropTF step, EMA as one foreach lerp), median over
  `steps` timed steps after `warmup` untimed ones, with min and max; inference img/s the same for an eval-mode
  forward under inference_mode;
- peak memory: on CUDA `torch.cuda.max_memory_allocated` over the timed steps; elsewhere the bytes of
  parameters, gradients, optimizer state and EMA plus the activations one real training forward saves for
  backward, counted with `saved_tensors_hooks` (memory.py);
- MACs per image (flops.py's arithmetic) and the achieved TFLOP/s: 2 FLOPs per MAC; training counts 3x the forward
  (backward ~ 2x forward, the usual convention; FlopCounterMode miscounts grouped-conv backward, measured with
  torch 2.x here).

`vs_bare` also runs the framework's step, a real Lightning Trainer with EfficientNetModule, the recipe's
EMA, LR schedule and non-finite guard, and an ImageDataModule's on-device uint8 -> float resize/normalize, side
by side with the bare step in one run: after every framework step, inside its last `on_train_batch_end` hook,
one bare step runs and is timed apart, so that the two alternate step by step and the load of a shared machine
falls on both alike. It reports the ratio of their median step times.
"""

from __future__ import annotations

import copy
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.optim import create_optimizer_v2
from torch import nn

from effnet_lightning.datamodules.model_input import to_model_input
from effnet_lightning.model import scaling as sc
from effnet_lightning.model.flops import cost
from effnet_lightning.model.grad_checkpointing import batchnorm_statistics_frozen
from effnet_lightning.model.memory import check_size, estimate, human_bytes, saved_activation_bytes
from effnet_lightning.model.network import TF_BN_EPS, TF_BN_MOMENTUM, create_model

__all__ = [
    "AUTOCAST",
    "BareLoop",
    "Result",
    "Setting",
    "framework_vs_bare",
    "memory_shortfall",
    "run",
    "skipped_result",
    "timed",
]

LR_PER_256 = 0.016  # paper, per 256 images (module.py scales it by the global batch the same way)
WEIGHT_DECAY = 1e-5  # paper
EMA_DECAY = 0.9999  # paper
LABEL_SMOOTHING = 0.1  # paper §5.2
TRAIN_FLOPS_PER_FORWARD = 3  # forward + backward ~ 3x the forward FLOPs (Kaplan et al. 2020, arXiv 2001.08361)
AUTOCAST = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}  # Lightning precision -> autocast dtype
# Real peak / memory.py's estimate on the CPU (benchmarks/memory_headroom.py, BENCHMARKS.md): B0 at 224 px, fp32,
# batch 8 1.45x and batch 32 1.26x (allocator slack, backward's temporaries, the benchmark's own copies).
MEMORY_HEADROOM = 1.5
MIXED_ACTIVATION_FACTOR = 0.5  # under bf16/fp16 autocast the saved activations are mostly 2 bytes, not fp32's 4


@dataclass(frozen=True)
class Result:
    """One row of the benchmark: one model at one setting. Rates in images per second; memory in bytes."""

    name: str
    resolution: int
    batch_size: int
    device: str
    precision: str
    channels_last: bool
    compile: str  # "" (eager) or the torch.compile mode
    grad_checkpointing: bool
    train_img_s: float
    train_min: float
    train_max: float
    infer_img_s: float
    infer_min: float
    infer_max: float
    peak_memory: int
    memory_source: str  # "cuda_max_allocated" or "counted"
    macs: int  # per image, forward
    train_tflops: float
    infer_tflops: float
    framework_img_s: float | None = None  # --vs-bare: Lightning Trainer + module + recipe callbacks + datamodule
    bare_img_s: float | None = None  # --vs-bare: the bare loop, steps alternating with the framework's
    overhead: float | None = None  # framework median step time / bare median step time
    skipped: str = ""  # why this configuration was not run (memory_shortfall); its measurements are then None


@dataclass(frozen=True)
class Setting:
    """How to run every model of one `effnet benchmark` call."""

    batch_size: int = 32
    device: str = "cpu"
    precision: str = "32-true"
    channels_last: bool = False
    compile: str = ""
    grad_checkpointing: bool = False
    steps: int = 10
    warmup: int = 3
    source_size: int | None = None  # px of the uint8 images before the on-device resize; None: the resolution
    num_classes: int = 1000


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step: Callable[[], Any], device: torch.device, steps: int, warmup: int) -> list[float]:
    """Seconds of each of `steps` calls after `warmup` untimed ones, synchronised on CUDA."""
    times = []
    for index in range(warmup + steps):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        if index >= warmup:
            times.append(time.perf_counter() - start)
    return times


class BareLoop:
    """The training step in plain PyTorch: same model, optimizer, EMA and resize as the framework, nothing else."""

    def __init__(self, model: nn.Module, scaling: sc.Scaling, setting: Setting, device: torch.device) -> None:
        from effnet_lightning.callbacks import TensorPairs  # Lightning import: only when benchmarking

        self.device, self.setting, self.resolution = device, setting, scaling.resolution
        self.memory_format = torch.channels_last if setting.channels_last else torch.contiguous_format
        self.model = model.to(device=device, memory_format=self.memory_format)
        self.model.set_grad_checkpointing(setting.grad_checkpointing)
        self.optimizer = create_optimizer_v2(  # as EfficientNetModule.configure_optimizers
            self.model,
            opt="rmsproptf",
            lr=LR_PER_256 * setting.batch_size / 256,
            weight_decay=WEIGHT_DECAY,
            momentum=0.9,
            alpha=0.9,
            eps=1e-3,
            filter_bias_and_bn=True,
        )
        self.average = copy.deepcopy(self.model).requires_grad_(False)
        self.pairs = TensorPairs(self.average, self.model)
        self.updates = 0
        dtype = AUTOCAST.get(setting.precision)
        self.autocast = dict(device_type=device.type, dtype=dtype, enabled=dtype is not None)
        self.scaler = torch.amp.GradScaler(device.type, enabled=setting.precision == "16-mixed")
        if setting.compile:
            self.model.compile(mode=None if setting.compile == "default" else setting.compile)
        source = setting.source_size or scaling.resolution
        generator = torch.Generator().manual_seed(0)
        shape = (setting.batch_size, 3, source, source)
        self.images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator).to(device)
        self.targets = torch.randint(0, setting.num_classes, (setting.batch_size,), generator=generator).to(device)

    def model_input(self) -> torch.Tensor:
        """The batch as the network takes it: resized and normalized as every datamodule does (timm's ImageNet
        mean and std, ImageDataModule's defaults), in the loop's memory format."""
        x = to_model_input(self.images, self.resolution, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
        return x.contiguous(memory_format=self.memory_format)

    def step(self) -> None:
        from effnet_lightning.callbacks import ema_update_, tf_ema_decay

        x = self.model_input()
        with torch.autocast(**self.autocast):
            loss = F.cross_entropy(self.model(x), self.targets, label_smoothing=LABEL_SMOOTHING)
        with batchnorm_statistics_frozen(self.model) if self.setting.grad_checkpointing else nullcontext():
            self.scaler.scale(loss).backward()  # as EfficientNetModule.backward
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.updates += 1
        ema_update_(self.pairs, tf_ema_decay(self.updates, EMA_DECAY))

    def infer(self) -> None:
        x = self.model_input()
        with torch.inference_mode(), torch.autocast(**self.autocast):
            self.model(x)

    def counted_memory(self) -> int:
        """Bytes held at the peak of a training step: weights, gradients (one per weight), optimizer state, EMA
        and the activations saved for backward (memory.py); with checkpointing, plus the largest block's
        activations, which backward rebuilds one block at a time."""
        x = self.model_input()
        with torch.autocast(**self.autocast):
            activations, _ = saved_activation_bytes(self.model, x)
            if self.setting.grad_checkpointing:
                self.model.set_grad_checkpointing(False)
                activations += max(saved_activation_bytes(self.model, x)[1])
                self.model.set_grad_checkpointing(True)
        params = list(self.model.parameters())
        tensors = params + [p for p in params if p.requires_grad]  # a gradient has its weight's size and dtype
        tensors += [t for state in self.optimizer.state.values() for t in state.values() if torch.is_tensor(t)]
        tensors += list(self.average.parameters()) + list(self.average.buffers())
        return activations + sum(t.numel() * t.element_size() for t in tensors)


def framework_vs_bare(
    spec: sc.ScalingSpec,
    weights: dict[str, torch.Tensor],
    setting: Setting,
    device: torch.device,
    bare_step: Callable[[], None],
) -> tuple[list[float], list[float]]:
    """Seconds per step of a real `Trainer.fit` (EfficientNetModule, recipe callbacks, an ImageDataModule) and
    of `bare_step`, alternating, after `setting.warmup` steps of each.

    A framework step is the time from the end of one step's last `on_train_batch_end` hook to the next one's
    (fetch, transfer, resize, forward, backward, optimizer, EMA, every callback), synchronised on CUDA. Each
    bare step runs at the end of that hook and is left out of the framework's time.
    """
    from lightning.pytorch import Callback, Trainer

    from effnet_lightning.callbacks import EMA, NonFiniteLoss
    from effnet_lightning.datamodules.base import ArrayDataset, ImageDataModule
    from effnet_lightning.train.module import EfficientNetModule

    class RandomImages(ImageDataModule):
        """uint8 images of `source` px made up in memory: the loader path of a real datamodule, no disk."""

        def __init__(self, source: int) -> None:
            super().__init__(
                data_dir="",
                resolution=scaling.resolution,
                batch_size=setting.batch_size,
                num_workers=0,
                persistent_workers=False,
            )
            self.num_classes = setting.num_classes
            count = (setting.warmup + setting.steps + 1) * setting.batch_size
            rng = np.random.default_rng(0)
            images = rng.integers(0, 256, (count, source, source, 3), dtype=np.uint8)
            self.samples = ArrayDataset(images, rng.integers(0, setting.num_classes, count).tolist())

        def train_dataset(self) -> ArrayDataset:
            return self.samples

        def val_dataset(self) -> ArrayDataset:
            return self.samples

    class StepTimer(Callback):
        def __init__(self) -> None:
            self.framework: list[float] = []
            self.bare: list[float] = []
            self.last_end: float | None = None

        def on_train_batch_end(self, trainer: Trainer, *args: Any) -> None:
            _sync(device)
            start = time.perf_counter()
            if self.last_end is not None:
                self.framework.append(start - self.last_end)
                bare_step()
                _sync(device)
                self.bare.append(time.perf_counter() - start)
            self.last_end = time.perf_counter()

    scaling = spec.resolve()
    module = EfficientNetModule(
        scaling=spec, num_classes=setting.num_classes, lr=LR_PER_256, channels_last=setting.channels_last
    )
    module.model.load_state_dict(weights)  # the bare loop's initial weights
    module.model.set_grad_checkpointing(setting.grad_checkpointing)
    if setting.compile:
        module.model.compile(mode=None if setting.compile == "default" else setting.compile)
    timer = StepTimer()
    lightning_log = logging.getLogger("lightning.pytorch")  # its info lines (devices, tips) would mix with the table
    level = lightning_log.level
    lightning_log.setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as root:
        trainer = Trainer(
            accelerator=device.type,
            devices=1,
            precision=setting.precision,
            max_steps=setting.warmup + setting.steps + 1,  # +1: the first interval starts at step 1's end
            callbacks=[EMA(decay=EMA_DECAY), NonFiniteLoss(), timer],  # the LR schedule is the module's
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            default_root_dir=root,
        )
        try:
            trainer.fit(module, datamodule=RandomImages(setting.source_size or scaling.resolution))
        finally:
            lightning_log.setLevel(level)
    return timer.framework[setting.warmup :], timer.bare[setting.warmup :]


def run(spec: sc.ScalingSpec, setting: Setting, vs_bare: bool = False) -> Result:
    """Measure one model under `setting` (see the module docstring for what each number means)."""
    scaling = spec.resolve()
    check_size(scaling, setting.num_classes)
    device = torch.device(setting.device)
    macs = cost(scaling.depth, scaling.width, scaling.resolution, setting.num_classes).macs
    torch.manual_seed(0)
    model = create_model(scaling, num_classes=setting.num_classes, bn_momentum=TF_BN_MOMENTUM, bn_eps=TF_BN_EPS)
    initial = copy.deepcopy(model.state_dict()) if vs_bare else None
    bare = BareLoop(model, scaling, setting, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    train = timed(bare.step, device, setting.steps, setting.warmup)
    if device.type == "cuda":
        peak, source = torch.cuda.max_memory_allocated(device), "cuda_max_allocated"
    else:
        peak, source = bare.counted_memory(), "counted"
    bare.model.eval()
    infer = timed(bare.infer, device, setting.steps, setting.warmup)
    bare.model.train()
    framework_img_s = bare_img_s = overhead = None
    if vs_bare:
        framework, plain = framework_vs_bare(spec, initial, setting, device, bare.step)
        framework_img_s = setting.batch_size / statistics.median(framework)
        bare_img_s = setting.batch_size / statistics.median(plain)
        overhead = statistics.median(framework) / statistics.median(plain)
    train_rate = setting.batch_size / statistics.median(train)
    infer_rate = setting.batch_size / statistics.median(infer)
    return Result(
        name=scaling.name,
        resolution=scaling.resolution,
        batch_size=setting.batch_size,
        device=str(device),
        precision=setting.precision,
        channels_last=setting.channels_last,
        compile=setting.compile,
        grad_checkpointing=setting.grad_checkpointing,
        train_img_s=train_rate,
        train_min=setting.batch_size / max(train),
        train_max=setting.batch_size / min(train),
        infer_img_s=infer_rate,
        infer_min=setting.batch_size / max(infer),
        infer_max=setting.batch_size / min(infer),
        peak_memory=peak,
        memory_source=source,
        macs=macs,
        train_tflops=TRAIN_FLOPS_PER_FORWARD * 2 * macs * train_rate / 1e12,
        infer_tflops=2 * macs * infer_rate / 1e12,
        framework_img_s=framework_img_s,
        bare_img_s=bare_img_s,
        overhead=overhead,
    )


def memory_shortfall(
    spec: sc.ScalingSpec, setting: Setting, vs_bare: bool, available: Callable[[torch.device], int]
) -> str:
    """Why `spec` would not fit in the memory `available` on the device now ("" when it fits): memory.py's
    estimate (meta device, nothing allocated) of weights, gradients, optimizer, EMA and saved activations, times
    MEMORY_HEADROOM. A configuration that does not fit is never started: on a CPU the kernel's OOM killer would
    end the whole benchmark (B6 at batch 4 was killed at 21.6 GB, BENCHMARKS.md)."""
    result = estimate(spec.resolve(), setting.num_classes)
    activations = result.training_bytes(setting.batch_size, setting.grad_checkpointing) - result.state_bytes
    if setting.precision in AUTOCAST:
        activations = int(activations * MIXED_ACTIVATION_FACTOR)
    copies = 2 if vs_bare else 1  # --vs-bare holds the framework's model, optimizer and EMA beside the bare loop's
    needed = int(MEMORY_HEADROOM * (copies * result.state_bytes + activations))
    free = available(torch.device(setting.device))
    return "" if needed <= free else f"needs ~{human_bytes(needed)}, {human_bytes(free)} available"


def skipped_result(spec: sc.ScalingSpec, setting: Setting, reason: str) -> Result:
    """The row of a configuration that was not run: its setting and the reason, no measurements."""
    scaling = spec.resolve()
    unmeasured = {f.name: None for f in fields(Result)}
    return Result(
        **unmeasured
        | dict(
            name=scaling.name,
            resolution=scaling.resolution,
            batch_size=setting.batch_size,
            device=str(torch.device(setting.device)),
            precision=setting.precision,
            channels_last=setting.channels_last,
            compile=setting.compile,
            grad_checkpointing=setting.grad_checkpointing,
            skipped=reason,
        )
    )
