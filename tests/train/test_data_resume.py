"""The training data position resumes exactly: the batches trained on before an interruption and after resuming
are, image for image, those of an uninterrupted run (order, augmentation and position within the epoch).

A tiny recording module on the CIFAR-10 stand-ins (500 training images, batch 50: 10 steps per epoch) keeps
this fast; tests/test_resume.py checks the weights of the full recipe.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from callbacks_testkit import make_trainer
from torch import nn

from effnet_lightning.datamodules.cifar10 import CIFAR10DataModule
from effnet_lightning.train.checkpoint_format import load_checkpoint

STEPS_PER_EPOCH = 10  # 500 training images (600 stand-ins, 100 held out) / batch 50
BATCH = 50


class Recorder(pl.LightningModule):
    """Trains a linear probe and records (epoch, image checksum, labels) of every batch it trains on."""

    def __init__(self) -> None:
        super().__init__()
        self.probe = nn.Linear(3, 10)
        self.seen: list[tuple[int, float, list[int]]] = []

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        self.seen.append((self.current_epoch, images.double().sum().item(), labels.tolist()))
        return F.cross_entropy(self.probe(images.mean(dim=(2, 3))), labels)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


class SaveAndDieAt(pl.Callback):
    """After optimizer step `step`: save a checkpoint, then die as under kill -9."""

    def __init__(self, step: int, path: Path) -> None:
        self.step, self.path = step, path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            trainer.save_checkpoint(self.path)
            raise RuntimeError("simulated kill -9")


def fit(
    root: Path, seed: int, workers: int, ckpt: Path | None = None, extra=(), module=None, **trainer_kwargs
) -> Recorder:
    pl.seed_everything(seed)
    module = module or Recorder()
    data = CIFAR10DataModule(
        str(root), val_size=100, resolution=32, batch_size=BATCH, num_workers=workers, seed=seed if ckpt is None else 99
    )
    trainer = make_trainer(root.parent, list(extra), **{"limit_val_batches": 0, "max_epochs": 2, **trainer_kwargs})
    trainer.fit(module, datamodule=data, ckpt_path=ckpt, weights_only=True)
    return module


@pytest.mark.parametrize(
    ("step", "workers", "limit"),
    [
        (3, 0, None),  # mid-epoch 0
        (13, 2, None),  # mid-epoch 1, with workers that have loaded batches ahead
        (10, 0, None),  # at the last batch of epoch 0
        (6, 2, 6),  # at the last batch of an epoch shortened by limit_train_batches
    ],
)
def test_resume_trains_on_the_same_batches(cifar10_root: Path, tmp_path: Path, step, workers, limit) -> None:
    kwargs = {} if limit is None else {"limit_train_batches": limit}
    straight = fit(cifar10_root, seed=7, workers=workers, **kwargs).seen
    assert len(straight) == 2 * (limit or STEPS_PER_EPOCH)
    ckpt = tmp_path / "stopped.ckpt"
    first = Recorder()
    with pytest.raises(RuntimeError, match="simulated kill -9"):
        fit(cifar10_root, seed=7, workers=workers, extra=[SaveAndDieAt(step, ckpt)], module=first, **kwargs)
    assert first.seen == straight[:step]
    # The position counts the batches trained on (all ranks together), not those the workers loaded ahead.
    state = load_checkpoint(ckpt)["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    per_epoch = limit or STEPS_PER_EPOCH
    assert state == [
        {"seed": 7, "epoch": (step - 1) // per_epoch, "samples_done": ((step - 1) % per_epoch + 1) * BATCH}
    ]
    resumed = fit(cifar10_root, seed=123, workers=workers, ckpt=ckpt, **kwargs).seen  # another seed: ckpt wins
    assert first.seen + resumed == straight


def test_seed_orders_the_data(cifar10_root: Path) -> None:
    """The data order follows the datamodule's seed (which the CLI links from seed_everything)."""
    runs = [fit(cifar10_root, seed=seed, workers=0, max_epochs=1, limit_train_batches=2).seen for seed in (1, 1, 2)]
    assert runs[0] == runs[1] and runs[0] != runs[2]
