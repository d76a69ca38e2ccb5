"""ImageThroughputMonitor: Lightning's ThroughputMonitor, counting images, with the FLOPs from our MAC counter.

Logs `train/samples_per_sec` (img/s) and `train/flops_per_sec` (FLOP/s; TensorBoard shows e.g. 1.2e+12 for
1.2 TFLOP/s), per device under `train/device/...`, and `train/device/mfu` where Lightning knows the device's
peak FLOP/s. The FLOPs come from `EfficientNetModule.flops_per_batch`: the MACs of one forward pass counted once
with torch's FlopCounterMode on the meta device (flops.py), 2 FLOPs per MAC, and a training step counted as
3x the forward pass (forward, backward to the activations, backward to the weights: the usual convention, e.g.
Kaplan et al. 2020, arXiv 2001.08361, sec. 2.1). Averages run over the last `window_size` batches, so nothing
is logged before that many batches have run.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import ThroughputMonitor

__all__ = ["ImageThroughputMonitor", "images_in_batch"]


def images_in_batch(batch: Any) -> int:
    """The number of images in an `(images, targets)` batch, or in a bare tensor of images."""
    images = batch[0] if isinstance(batch, (tuple, list)) else batch
    return images.size(0)


class ImageThroughputMonitor(ThroughputMonitor):
    def __init__(self, window_size: int = 100, separator: str = "/") -> None:  # batches; metric name separator
        super().__init__(batch_size_fn=images_in_batch, window_size=window_size, separator=separator)
