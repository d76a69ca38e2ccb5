"""Saves the global random number generators in checkpoints and restores them when training resumes.

Lightning's checkpoints hold weights, optimizer, loop counters and callback states, but not the RNGs, so a resumed
run draws different dropout and drop-path masks than the run it continues. This callback stores Python's,
NumPy's and torch's global generator states (CPU, and CUDA on the training device) as plain values and tensors,
so the checkpoint still loads with `torch.load(weights_only=True)`.

They are restored in `on_train_start`, the last hook before the first resumed batch, so that nothing that
draws random numbers while the trainer sets up (a sanity check, a new data loader) shifts the streams.
Under DDP the checkpoint holds rank 0's states and every rank restores them: ranks seeded alike draw alike.
"""

from __future__ import annotations

import random
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

__all__ = ["RNGState", "collect_rng_states", "set_rng_states"]


def collect_rng_states(device: torch.device) -> dict[str, Any]:
    """The global RNG states as weights-only-loadable values (tuples, ints, floats, tensors)."""
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached_gaussian),
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def set_rng_states(states: dict[str, Any], device: torch.device) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached_gaussian))
    torch.set_rng_state(states["torch"])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)


class RNGState(Callback):
    """Global RNG states in every checkpoint; restored when `fit` resumes from one."""

    def __init__(self) -> None:
        self._device = torch.device("cpu")
        self._to_restore: dict[str, Any] | None = None

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._device = trainer.strategy.root_device

    @override
    def state_dict(self) -> dict[str, Any]:
        return collect_rng_states(self._device)

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._to_restore = state_dict

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._to_restore is not None:
            set_rng_states(self._to_restore, self._device)
            self._to_restore = None
