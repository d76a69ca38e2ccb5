"""Gradient checkpointing that counts each batch once in BatchNorm's running statistics.

timm's `set_grad_checkpointing(True)` runs every block through `torch.utils.checkpoint.checkpoint` (its
`checkpoint_seq`, non-reentrant by default), which runs the block's forward again during backward to rebuild the
activations it did not keep. In train mode that second forward updates every BatchNorm a second time: measured
(phi -2, 32 px, 3 steps) `num_batches_tracked` read 6 instead of 3 and `running_mean` was off by 0.11 (its
largest entry 0.15): the momentum step was applied twice per batch.

torch's checkpoint can run the recomputation under its own context (`context_fn`), but `checkpoint_seq` passes
none and timm offers no way to add one. During backward, though, the only forwards are these recomputations, so
the whole backward pass runs with every BatchNorm's `momentum` at 0 (running = 0 x batch + 1 x running: left
as it is) and its `num_batches_tracked` buffer set aside (None: torch BatchNorm and timm BatchNormAct2d then skip
the count). Turning `track_running_stats` off instead would not do: the batch-norm op then saves fewer tensors
for backward and torch's checkpoint refuses a recomputation that saves a different number of tensors.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

__all__ = ["BATCH_NORMS", "batchnorm_statistics_frozen"]

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)  # timm BatchNormAct2d: BatchNorm2d


@contextmanager
def batchnorm_statistics_frozen(model: nn.Module) -> Iterator[None]:
    """Within the block no BatchNorm of `model` moves its running statistics or counts a batch, while its output
    in train mode (normalised by the batch's own statistics) is unchanged; wrap backward in it when gradient
    checkpointing is on."""
    norms = [m for m in model.modules() if isinstance(m, BATCH_NORMS) and m.track_running_stats]
    kept = [(norm.momentum, norm.num_batches_tracked) for norm in norms]
    for norm in norms:
        norm.momentum, norm.num_batches_tracked = 0.0, None
    try:
        yield
    finally:
        for norm, (momentum, count) in zip(norms, kept, strict=True):
            norm.momentum, norm.num_batches_tracked = momentum, count
