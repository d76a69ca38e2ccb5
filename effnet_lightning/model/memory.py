"""Training memory of a scaled EfficientNet, estimated before anything is allocated.

Two layers, cheapest first:
- `check_size(scaling)`: arithmetic only (no network built). Counts blocks, parameters and the stem's
  activation from the decoded architecture (network.py, flops.py) and refuses, with a one-sentence ScalingError
  giving the estimate and the limit, a model that cannot be trained on any single device (DDP keeps a full copy
  per device). This is what stops `--phi 100` (1.3e9 blocks) or `--depth 1e6` before timm's builder tries to make them.
- `estimate(scaling)`: builds the network on the meta device (shapes only, no memory, no arithmetic) and runs
  one training-mode forward pass under `torch.autograd.graph.saved_tensors_hooks`, adding up the bytes of every
  tensor autograd keeps for the backward pass, with and without timm's `set_grad_checkpointing(True)`.

Checked against real allocations: on a real CPU batch, the hook count agrees with `torch.profiler`'s net
allocated bytes after the forward pass within 10% (tests/model/test_memory.py), with and without checkpointing.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

import torch
from torch import nn
from torch.autograd.graph import saved_tensors_hooks

from effnet_lightning.model import scaling as sc
from effnet_lightning.model.flops import cost
from effnet_lightning.model.network import architecture, create_model

__all__ = [
    "LARGEST_DEVICE_BYTES",
    "MAX_BLOCKS",
    "STATE_BYTES_PER_PARAM",
    "MemoryEstimate",
    "SizeEstimate",
    "activation_bytes_per_image",
    "available_memory_bytes",
    "check_fits",
    "check_size",
    "device_memory_bytes",
    "estimate",
    "human_bytes",
    "saved_activation_bytes",
    "size_estimate",
]

FP32_BYTES = 4
# Per parameter in fp32 training: the weight, its gradient, RMSpropTF's square_avg and momentum_buffer (timm
# RMSpropTF with momentum > 0), and the EMA copy (callbacks/ema.py). AdamW has the same two state tensors.
STATE_BYTES_PER_PARAM = FP32_BYTES * (1 + 1 + 2 + 1)
# The largest memory of one accelerator shipping in 2025: AMD Instinct MI325X, 256 GB HBM3E (NVIDIA B200: 192 GB,
# H200: 141 GB). A model whose training state alone exceeds it cannot be trained here on any device.
LARGEST_DEVICE_BYTES = 256 * 10**9
# Block count above which we refuse to build: ~10x EfficientNet-L2, the largest EfficientNet trained (depth 5.3,
# 88 blocks; Xie et al. 2020, arXiv 1911.04252); timm's builder takes about 10 ms per block even on meta.
MAX_BLOCKS = 1_000
ESTIMATES_KEPT = 64  # scalings whose estimate a process keeps (a study has a few arms; each is ~1 KB)


@dataclass(frozen=True)
class SizeEstimate:
    """What arithmetic alone says about a scaling: no network built."""

    blocks: int
    params: int
    state_bytes: int  # params x STATE_BYTES_PER_PARAM: weights, grads, optimizer state, EMA
    stem_activation_bytes: int  # per image: the stem's output alone, a lower bound on the activations


@dataclass(frozen=True)
class MemoryEstimate:
    """Training memory of one model at one resolution, counted on the meta device (fp32)."""

    params: int
    param_bytes: int
    grad_bytes: int
    optimizer_bytes: int  # RMSpropTF: square_avg + momentum_buffer
    ema_bytes: int
    activation_bytes_per_image: int  # saved for backward, no checkpointing
    checkpointed_activation_bytes_per_image: int  # with timm's set_grad_checkpointing(True)
    recompute_bytes_per_image: int  # checkpointing: the largest block's activations, rebuilt during backward

    @property
    def checkpointing_saving(self) -> float:
        """How many times fewer activation bytes are saved with checkpointing (at least 4 for B0 and B7: tests/model/
        test_memory.py)."""
        return self.activation_bytes_per_image / self.checkpointed_activation_bytes_per_image

    @property
    def state_bytes(self) -> int:
        return self.param_bytes + self.grad_bytes + self.optimizer_bytes + self.ema_bytes

    def training_bytes(self, batch_size: int, grad_checkpointing: bool = False) -> int:
        """Weights, gradients, optimizer state, EMA and the activations a batch keeps until its backward pass."""
        if grad_checkpointing:  # the saved block inputs, plus one block recomputed at a time in backward
            per_image = self.checkpointed_activation_bytes_per_image + self.recompute_bytes_per_image
            return self.state_bytes + batch_size * per_image
        return self.state_bytes + batch_size * self.activation_bytes_per_image


def _number(count: int) -> str:
    """Three significant digits, also for integers beyond float range (1e500 parameters)."""
    if count < 1e300:
        return f"{count:.3g}"
    return f"1e+{len(str(count)) - 1}"


def human_bytes(count: int) -> str:
    """Decimal units, as device makers quote memory: 1 GB = 1e9 bytes."""
    if count >= 1e300:
        return f"{_number(count)} B"
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(count) >= size:
            return f"{count / size:.3g} {unit}"
    return f"{count:.0f} B"


def size_estimate(scaling: sc.Scaling, num_classes: int = 1000) -> SizeEstimate:
    """Blocks and parameters of the network `create_model(scaling)` would build, by arithmetic (network.py's
    architecture, flops.py's count): exact for any scaling, in microseconds however large the numbers."""
    if not (scaling.depth > 0 and math.isfinite(scaling.depth)) or not (
        scaling.width > 0 and math.isfinite(scaling.width)
    ):
        raise sc.ScalingError(
            f"{scaling.name}: depth and width multipliers must be positive finite numbers, "
            f"got depth {scaling.depth:g} and width {scaling.width:g}"
        )
    blocks_float = sum(scaling.depth * stage.repeats for stage in architecture(1.0, 1.0).stages)
    if blocks_float > MAX_BLOCKS:  # checked before ceil(): ceil(inf) raises OverflowError
        return SizeEstimate(math.ceil(min(blocks_float, 1e300)), 0, 0, 0)
    arch = architecture(scaling.depth, scaling.width)
    params = cost(scaling.depth, scaling.width, scaling.resolution, num_classes).params
    stem_side = math.ceil(scaling.resolution / 2)  # the stem has stride 2
    return SizeEstimate(
        blocks=arch.blocks,
        params=params,
        state_bytes=params * STATE_BYTES_PER_PARAM,
        stem_activation_bytes=arch.stem_channels * stem_side * stem_side * FP32_BYTES,
    )


def check_size(scaling: sc.Scaling, num_classes: int = 1000, limit_bytes: int = LARGEST_DEVICE_BYTES) -> SizeEstimate:
    """Refuse, by arithmetic and before anything is built, a model that cannot be trained within `limit_bytes`.

    Raises ScalingError (a UserError) with one sentence giving the estimate and the limit; returns the estimate
    otherwise.
    """
    size = size_estimate(scaling, num_classes)
    if size.blocks > MAX_BLOCKS:
        raise sc.ScalingError(
            f"{scaling.name} (depth x{scaling.depth:.3g}) would have {_number(size.blocks)} blocks; the limit is "
            f"{MAX_BLOCKS:,} (EfficientNet-L2, the largest trained, has 88): choose a smaller phi or depth"
        )
    if size.state_bytes > limit_bytes:
        raise sc.ScalingError(
            f"{scaling.name} has about {_number(size.params)} parameters, {human_bytes(size.state_bytes)} of weights, "
            f"gradients, optimizer state and EMA in fp32; the limit is {human_bytes(limit_bytes)} per device: "
            "choose a smaller phi, width or depth"
        )
    if size.state_bytes + size.stem_activation_bytes > limit_bytes:
        raise sc.ScalingError(
            f"{scaling.name} at {scaling.resolution} px keeps at least {human_bytes(size.stem_activation_bytes)} "
            f"of activations per image (the stem's output alone); the limit is {human_bytes(limit_bytes)} per "
            "device: choose a smaller resolution"
        )
    return size


def saved_activation_bytes(model: nn.Module, images: torch.Tensor) -> tuple[int, list[int]]:
    """Bytes of the per-image tensors autograd saves for backward in one forward pass of `model` on `images`: the
    total, and each block's share (in forward order).

    Per-image: a saved tensor whose first dimension is the batch (activations, dropout and drop-path masks).
    What does not grow with the batch (BatchNorm's per-channel statistics, views of the weights) is left out, and
    parameters are counted once as parameters. A tensor saved by several ops is counted once.
    """
    batch = images.shape[0]
    parameters = {id(p) for p in model.parameters()}
    saved: dict[int, int] = {}  # id -> bytes; `kept` holds the tensors so that ids stay unique meanwhile
    kept: list[torch.Tensor] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        per_image = tensor.dim() > 0 and tensor.shape[0] == batch
        if per_image and id(tensor) not in parameters and id(tensor) not in saved:
            saved[id(tensor)] = tensor.numel() * tensor.element_size()
            kept.append(tensor)
        return tensor

    blocks = [block for stage in model.blocks for block in stage]
    starts: dict[int, int] = {}
    per_block: list[int] = []
    handles = [b.register_forward_pre_hook(lambda m, a: starts.__setitem__(id(m), sum(saved.values()))) for b in blocks]
    handles += [
        b.register_forward_hook(lambda m, a, o: per_block.append(sum(saved.values()) - starts[id(m)])) for b in blocks
    ]
    try:
        with saved_tensors_hooks(pack, lambda tensor: tensor):
            model(images)
    finally:
        for handle in handles:
            handle.remove()
    return sum(saved.values()), per_block


# images in the counting pass: more than one, so BatchNorm in training has several values per channel even on a
# 1x1 map, and odd, so no channel count (a multiple of 8) is mistaken for the batch dimension
COUNTING_BATCH = 3


def activation_bytes_per_image(model: nn.Module, resolution: int, grad_checkpointing: bool = False) -> tuple[int, int]:
    """Saved-activation bytes per image in training mode, on the model's device (meta: no allocation), and the
    largest single block's share.

    One pass over COUNTING_BATCH images, counting the saved tensors whose first dimension is the batch. Without
    checkpointing, the largest block's share is what checkpointing adds back during backward: timm checkpoints
    every block separately (`checkpoint_seq`), so backward rebuilds one block's activations at a time.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.train()
    model.set_grad_checkpointing(grad_checkpointing)
    try:
        images = torch.zeros(COUNTING_BATCH, 3, resolution, resolution, device=device)
        total, blocks = saved_activation_bytes(model, images)
    finally:
        model.set_grad_checkpointing(False)
        model.train(was_training)
    return total // COUNTING_BATCH, max(blocks) // COUNTING_BATCH


def estimate(
    scaling: sc.Scaling,
    num_classes: int = 1000,
    limit_bytes: int = LARGEST_DEVICE_BYTES,
) -> MemoryEstimate:
    """Parameter, gradient, optimizer, EMA and per-image activation bytes of `scaling` at its resolution (fp32).

    `check_size` runs first, so an absurd size is refused before anything is built.
    """
    check_size(scaling, num_classes, limit_bytes)
    return _counted(scaling, num_classes)


@functools.lru_cache(maxsize=ESTIMATES_KEPT)
def _counted(scaling: sc.Scaling, num_classes: int) -> MemoryEstimate:
    """`estimate` after its size check, cached per process (the arguments are frozen values): the two meta-device
    forward passes cost about 0.3 s of CPU (phi -4 at 32 px, 2 cores), paid again at every `fit` of a study or a
    test session, and by `effnet scale` and the study's table for the same arms, otherwise."""
    with torch.device("meta"):
        model = create_model(scaling, num_classes=num_classes)
    params = sum(p.numel() for p in model.parameters())
    activations, largest_block = activation_bytes_per_image(model, scaling.resolution)
    checkpointed, _ = activation_bytes_per_image(model, scaling.resolution, grad_checkpointing=True)
    return MemoryEstimate(
        params=params,
        param_bytes=params * FP32_BYTES,
        grad_bytes=params * FP32_BYTES,
        optimizer_bytes=2 * params * FP32_BYTES,
        ema_bytes=params * FP32_BYTES,
        activation_bytes_per_image=activations,
        checkpointed_activation_bytes_per_image=checkpointed,
        recompute_bytes_per_image=largest_block,
    )


def check_fits(
    spec: sc.ScalingSpec,
    batch_size: int,
    limit_bytes: int = LARGEST_DEVICE_BYTES,
    grad_checkpointing: bool = False,
    num_classes: int = 1000,
) -> MemoryEstimate:
    """For `effnet fit`, before building the model: refuse a spec and batch whose training memory exceeds
    `limit_bytes` (e.g. the device's total memory), with one sentence giving the estimate and the limit."""
    scaling = spec.resolve()
    result = estimate(scaling, num_classes, limit_bytes)
    needed = result.training_bytes(batch_size, grad_checkpointing)
    if needed > limit_bytes:
        one_image = result.training_bytes(1, grad_checkpointing=True)
        advice = (
            "lower data.batch_size or turn on gradient checkpointing"
            if one_image <= limit_bytes
            else "choose a smaller model or resolution"
        )
        raise sc.ScalingError(
            f"{scaling.name} at {scaling.resolution} px, batch {batch_size}, needs about {human_bytes(needed)} to "
            f"train (weights, gradients, optimizer, EMA and activations); the limit is {human_bytes(limit_bytes)}: "
            f"{advice}"
        )
    return result


def device_memory_bytes(accelerator: str = "auto") -> int:
    """The memory one training process can use: the CUDA device's total memory, else the machine's RAM."""
    on_cuda = accelerator in ("cuda", "gpu") or (accelerator == "auto" and torch.cuda.is_available())
    if on_cuda and torch.cuda.is_available():
        return torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")  # POSIX
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows): the arithmetic limit only
        return LARGEST_DEVICE_BYTES


def available_memory_bytes(device: torch.device) -> int:
    """The memory a new allocation on `device` can get now. CUDA: the driver's free memory plus what torch's
    caching allocator holds unused (`mem_get_info`, `memory_reserved - memory_allocated`). CPU: the kernel's
    MemAvailable (/proc/meminfo), else free pages (POSIX sysconf), else the arithmetic
    limit."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    try:
        with open("/proc/meminfo") as meminfo:  # Linux: "MemAvailable:   12345678 kB"
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")  # free pages: less than MemAvailable
    except (ValueError, OSError, AttributeError):
        return LARGEST_DEVICE_BYTES
