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
- `ResumableLoader` is a DataLoader with `state_dict`/`load_state_dict`: its `TrainPosition` (seed, epoch,
  samples done). Lightning (>= 2.2) saves the state of such a loader in every checkpoint and loads it back
  before training resumes. It counts the batches its iterator has handed to the training loop, in the main
  process, so batches that workers loaded ahead are not counted; Lightning's fetcher takes a batch from a
  loader with a length only when the loop runs it (`_PrefetchDataFetcher` prefetches only without a length).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

__all__ = ["KeyedDataset", "ResumableLoader", "ResumableSampler", "SampleKey", "TrainPosition", "epoch_order"]


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


class ResumableSampler(DistributedSampler):
    """Shuffled epochs from (seed, epoch), split across `num_replicas` ranks, starting `start` samples in.

    Lightning calls `set_epoch` every epoch; iterating again without it starts the next epoch (like a
    RandomSampler). `len()` stays the full epoch even when starting part-way: Lightning sizes an epoch from it
    before resuming and then expects the loader to yield only the remaining batches.
    """

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.start = 0  # samples of `epoch` already trained on, all ranks together
        self._epoch_set = True  # set_epoch (or the constructor) chose the epoch of the next pass

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.start = 0
        self.epoch = epoch
        self._epoch_set = True

    def resume_at(self, position: TrainPosition) -> None:
        """The next pass continues `position` (a checkpoint's): its seed, epoch and samples done."""
        self.seed, self.epoch, self.start = position.seed, position.epoch, position.samples_done
        self._epoch_set = True

    def begin_pass(self) -> TrainPosition:
        """Called once per pass over the data, before iterating: where this pass starts."""
        if not self._epoch_set:
            self.set_epoch(self.epoch + 1)
        self._epoch_set = False
        return TrainPosition(self.seed, self.epoch, self.start)

    def __iter__(self) -> Iterator[SampleKey]:
        order = epoch_order(len(self.dataset), self.seed, self.epoch, self.total_size)
        for index in order[self.start :][self.rank :: self.num_replicas]:
            yield SampleKey(index, self.epoch, self.seed)


class ResumableLoader(DataLoader):
    """A DataLoader over a `ResumableSampler` whose state is the training position; Lightning saves it in
    checkpoints (`loops.fit_loop.state_dict.combined_loader`) and restores it on resume."""

    sampler: ResumableSampler

    def __iter__(self) -> Iterator[Any]:
        self._pass = self.sampler.begin_pass()
        self._batches = 0  # batches handed to the training loop in this pass
        for batch in super().__iter__():
            self._batches += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """Where training stands: the batches trained on, not those loaded ahead by workers."""
        start = getattr(self, "_pass", None)
        if start is None:  # no pass yet: the position the sampler will start at
            return TrainPosition(self.sampler.seed, self.sampler.epoch, self.sampler.start).to_dict()
        done = start.samples_done + self._batches * self.batch_size * self.sampler.num_replicas
        return TrainPosition(start.seed, start.epoch, done).to_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.sampler.resume_at(TrainPosition.from_dict(state_dict))


def epoch_order(length: int, seed: int, epoch: int, total_size: int) -> list[int]:
    """Sample indices of one epoch, padded by wrapping around to `total_size` (as DistributedSampler does)."""
    generator = torch.Generator().manual_seed(seed + epoch)  # DistributedSampler's seeding
    order = torch.randperm(length, generator=generator).tolist()
    return (order * math.ceil(total_size / length))[:total_size]


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
