"""Training data that resumes exactly, mid-epoch included: the order of an epoch and every sample's augmentation
are pure functions of (seed, epoch, index), so a checkpoint only records where in the epoch training was.

Why this is needed: Lightning restores weights, optimizer and loop counters, but a shuffled DataLoader draws a
new order from the global RNG, restarts the epoch at its first sample, and an albumentations pipeline's RNG
lives in worker processes that no checkpoint can reach. Here:
- `ResumableSampler` orders an epoch with `randperm` seeded by seed + epoch, splits it across ranks round-robin
  (it is a DistributedSampler, so Lightning does not swap in its own under DDP) and starts at a global sample
  offset. It yields `SampleKey(index, epoch, seed)`.
- `KeyedDataset` reseeds the dataset's albumentations pipeline from the key before loading the sample, in
  whichever worker loads it: workers, their number and their persistence do not change the images.
- `TrainPosition` (seed, epoch, samples done) is what the datamodule saves in checkpoints; it is computed from
  Lightning's own loop counters at save time, so the batches the loader prefetched but training never saw are
  not counted as done.
"""

from __future__ import annotations

import math
import os
import random
import warnings
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler


class SampleKey(NamedTuple):
    """What the sampler hands the dataset: which sample, and what seeds its augmentation."""

    index: int
    epoch: int
    seed: int


@dataclass(frozen=True)
class TrainPosition:
    """Where training stands in its data: the epoch to continue and how many of its samples (all ranks
    together) were trained on. Stored in checkpoints as a plain dict (loadable with weights_only=True)."""

    seed: int
    epoch: int
    samples_done: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> TrainPosition:
        return cls(int(state["seed"]), int(state["epoch"]), int(state["samples_done"]))


def train_sampler(dataset: Dataset, trainer: pl.Trainer | None, resume: TrainPosition | None) -> ResumableSampler:
    """The sampler for a new training loader: at `resume` (from a checkpoint), else at the start of the epoch
    the trainer is about to run, seeded like Lightning's own samplers by the `seed_everything` seed."""
    if resume is None:
        epoch = trainer.fit_loop.epoch_progress.current.processed if trainer is not None else 0
        resume = TrainPosition(int(os.environ.get("PL_GLOBAL_SEED", 0)), epoch)
    replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
    return ResumableSampler(dataset, replicas, rank, resume.seed, resume.epoch, resume.samples_done)


class ResumableSampler(DistributedSampler):
    """Shuffled epochs from (seed, epoch), split across `num_replicas` ranks, starting `start` samples in.

    Lightning calls `set_epoch` every epoch; iterating again without it starts the next epoch (like a
    RandomSampler). `len()` stays the full epoch even when starting part-way: Lightning sizes an epoch from it
    before resuming and then expects the loader to yield only the remaining batches.
    """

    def __init__(
        self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0, epoch: int = 0, start: int = 0
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.epoch = epoch
        self.start = start  # samples of `epoch` already trained on, all ranks together
        self._epoch_set = True  # set_epoch (or the constructor) chose the epoch of the next iteration

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.start = 0
        self.epoch = epoch
        self._epoch_set = True

    def __iter__(self):
        if not self._epoch_set:
            self.set_epoch(self.epoch + 1)
        self._epoch_set = False
        order = epoch_order(len(self.dataset), self.seed, self.epoch, self.total_size)
        for index in order[self.start :][self.rank :: self.num_replicas]:
            yield SampleKey(index, self.epoch, self.seed)

    def position(self, trainer: pl.Trainer, batch_size: int) -> TrainPosition:
        """The position after the batches Lightning's loop has finished in this epoch (not those prefetched)."""
        batches = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        if batches >= trainer.num_training_batches:  # the epoch is over; limit_train_batches may end it early
            return TrainPosition(self.seed, self.epoch + 1, 0)
        return TrainPosition(self.seed, self.epoch, batches * batch_size * self.num_replicas)


def epoch_order(length: int, seed: int, epoch: int, total_size: int) -> list[int]:
    """Sample indices of one epoch, padded by wrapping around to `total_size` (as DistributedSampler does)."""
    generator = torch.Generator().manual_seed(seed + epoch)  # DistributedSampler's seeding
    order = torch.randperm(length, generator=generator).tolist()
    return (order * math.ceil(total_size / length))[:total_size]


def silence_lightning_resume_warning() -> None:
    """Lightning warns that a mid-epoch resume is unreliable unless the DataLoader itself has a state_dict;
    ours comes from the datamodule's checkpoint state instead, so the warning does not apply."""
    warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")


class KeyedDataset(Dataset):
    """Loads `SampleKey`s: reseeds `dataset.transform` (an albumentations Compose) from the key, then loads
    `dataset[key.index]`. Plain integer indices pass through unchanged."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: SampleKey | int) -> Any:
        if isinstance(key, SampleKey):
            transform = getattr(self.dataset, "transform", None)
            if hasattr(transform, "set_random_state"):
                rng = np.random.default_rng([key.seed, key.epoch, key.index])
                transform.set_random_state(rng, random.Random(int(rng.integers(2**63))))
            key = key.index
        return self.dataset[key]
