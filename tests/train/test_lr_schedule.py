"""The paper's LR schedule: timm's schedulers, a pure function of the update index, stepped per optimizer update."""

import math

import lightning.pytorch as pl
import pytest
import torch
from callbacks_testkit import SANITY_STEPS, make_trainer
from torch.utils.data import DataLoader, TensorDataset

from effnet_lightning.model.scaling import ScalingSpec
from effnet_lightning.train.lr_schedule import create_lr_scheduler, epochs_done
from effnet_lightning.train.module import EfficientNetModule

BASE = 0.016  # paper: lr 0.016 per 256 images
PAPER = dict(warmup_epochs=5.0, warmup_lr=0.0, decay_rate=0.97, decay_epochs=2.4, cosine_epochs=0.0, min_lr=0.0)


def lrs(schedule: str, updates: int, updates_per_epoch: int, base: float = BASE, **overrides) -> list[float]:
    """The LR timm's scheduler sets for updates 0 .. updates-1."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
    scheduler = create_lr_scheduler(optimizer, schedule, **{**PAPER, **overrides})
    out = []
    for update in range(updates):
        scheduler.step_update(num_updates=epochs_done(update, updates_per_epoch))
        out.append(optimizer.param_groups[0]["lr"])
    return out


def test_warmup_is_linear_from_its_start_to_the_base_lr():
    got = lrs("step", 50, 10, warmup_lr=0.01 * BASE)
    assert got[0] == pytest.approx(0.01 * BASE)
    steps = [b - a for a, b in zip(got, got[1:], strict=False)]
    assert steps == pytest.approx([(1 - 0.01) * BASE / 50] * 49)


def test_after_warmup_the_decay_counts_from_update_zero_as_in_tf():
    # TF build_learning_rate: at the end of a 5-epoch warm-up the exponent is floor(5 / 2.4) == 2.
    got = lrs("step", 51, 10)
    assert got[50] == pytest.approx(BASE * 0.97**2)
    assert got[0] == pytest.approx(0.0, abs=1e-10)  # TF warms up from 0 (+ EPOCH_EPSILON of warm-up)


@pytest.mark.parametrize("updates_per_epoch", [5, 10, 1251])  # 1251: ImageNet at global batch 1024
def test_staircase_drops_by_097_every_24_epochs(updates_per_epoch):
    got = lrs("step", 30 * updates_per_epoch, updates_per_epoch, warmup_epochs=0.0)
    for update in range(0, 30 * updates_per_epoch, max(1, updates_per_epoch // 7)):
        expected = BASE * 0.97 ** math.floor(update / (2.4 * updates_per_epoch) + 1e-9)
        assert got[update] == pytest.approx(expected, rel=1e-12)
    # On a boundary the drop has happened, though 2.4 * 5 == 12.000000000000002 and 36 / 5 // 2.4 == 2 in floats.
    if updates_per_epoch == 5:
        assert (got[11], got[12], got[35], got[36]) == pytest.approx(
            (BASE, BASE * 0.97, BASE * 0.97**2, BASE * 0.97**3)
        )


def test_cosine_reaches_min_lr_at_its_end_and_stays():
    got = lrs("cosine", 151, 10, warmup_epochs=0.0, cosine_epochs=10.0, min_lr=1e-5)
    assert got[0] == pytest.approx(BASE)
    assert got[50] == pytest.approx((BASE + 1e-5) / 2)
    assert got[100] == pytest.approx(1e-5) and got[150] == pytest.approx(1e-5)


# ---- in the module --------------------------------------------------------------------------------------------
def loader(batches: int, batch_size: int = 8) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batches * batch_size, 3, 32, 32, generator=generator)
    return DataLoader(TensorDataset(images, torch.arange(batches * batch_size) % 3), batch_size=batch_size)


class Data(pl.LightningDataModule):
    batch_size = 8

    def train_dataloader(self) -> DataLoader:
        return loader(10)


class LRRecorder(pl.Callback):
    """{global_step: LR of the first param group} right before each optimizer update."""

    def __init__(self) -> None:
        self.lrs: dict[int, float] = {}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.lrs[trainer.global_step] = optimizer.param_groups[0]["lr"]


def fit(tmp_path, module, ckpt_path=None, **kwargs) -> tuple[pl.Trainer, dict[int, float]]:
    recorder = LRRecorder()
    trainer = make_trainer(tmp_path, [recorder], **{"num_sanity_val_steps": SANITY_STEPS, **kwargs})
    trainer.fit(module, datamodule=Data(), ckpt_path=ckpt_path, weights_only=True)
    return trainer, recorder.lrs


def tiny(**kwargs) -> EfficientNetModule:
    return EfficientNetModule(ScalingSpec(phi=-4, resolution=32), num_classes=3, bn_momentum=0.1, **kwargs)


def test_the_paper_schedule_is_the_default(tmp_path):
    """A config that says nothing about the schedule warms up and decays; it does not train at a constant LR."""
    trainer, got = fit(tmp_path, tiny(), max_steps=3)
    scaled = 0.016 * 8 / 256  # per 256 images x batch 8
    updates_per_epoch = 10
    assert got == pytest.approx({u: scaled * u / (5 * updates_per_epoch) for u in range(3)}, abs=1e-10)
    assert trainer.callback_metrics["train/lr"].item() == pytest.approx(got[2])


def test_accumulation_and_limit_train_batches_in_a_real_fit(tmp_path):
    # 7 batches per epoch, an update every 3 batches (and on the last) -> ceil(7 / 3) == 3 updates per epoch.
    module = tiny(lr=0.256, warmup_epochs=1.0, warmup_lr_factor=0.1, decay_epochs=0.5)
    _, got = fit(tmp_path, module, max_epochs=4, limit_train_batches=7, accumulate_grad_batches=3)
    assert sorted(got) == list(range(12))
    scaled = 0.256 * 24 / 256  # global batch 8 x 3
    expected = lrs("step", 12, 3, base=scaled, warmup_epochs=1.0, warmup_lr=0.1 * scaled, decay_epochs=0.5)
    assert [got[u] for u in range(12)] == pytest.approx(expected)


@pytest.mark.parametrize("schedule", ["step", "cosine"])
def test_resuming_mid_epoch_gives_the_lrs_of_an_uninterrupted_run(tmp_path, schedule):
    def module():
        return tiny(lr_schedule=schedule, warmup_epochs=1.0, decay_epochs=0.4, warmup_lr_factor=0.05)

    _, continuous = fit(tmp_path, module(), max_epochs=3)
    assert len(continuous) == 30
    stopped, first = fit(tmp_path, module(), max_epochs=3, max_steps=13)
    stopped.save_checkpoint(tmp_path / "step13.ckpt")
    _, resumed = fit(tmp_path, module(), max_epochs=3, ckpt_path=tmp_path / "step13.ckpt")
    assert sorted(first) == list(range(13)) and min(resumed) == 13
    assert {step: continuous[step] for step in first | resumed} == first | resumed


def test_a_new_lr_at_resume_rescales_the_rest_of_the_schedule(tmp_path):
    """ "Lower the LR and resume": the schedulers keep no state in checkpoints, so the restored run follows the
    schedule of the new LR (timm's own state_dict would bring back the old base LR)."""

    def module(lr: float) -> EfficientNetModule:
        return tiny(lr=lr, warmup_epochs=1.0, decay_epochs=0.4, warmup_lr_factor=0.05)

    _, continuous = fit(tmp_path, module(0.016), max_epochs=3)
    stopped, _ = fit(tmp_path, module(0.016), max_epochs=3, max_steps=13)
    stopped.save_checkpoint(tmp_path / "step13.ckpt")
    _, resumed = fit(tmp_path, module(0.008), max_epochs=3, ckpt_path=tmp_path / "step13.ckpt")
    later = sorted(u for u in resumed if u > 13)  # 13 runs on the restored optimizer's LR (the CLI rescales it)
    assert len(later) >= 8  # through a decay boundary (every 4 updates)
    assert [resumed[u] for u in later] == pytest.approx([continuous[u] / 2 for u in later])


def test_constant_is_an_explicit_choice(tmp_path):
    _, got = fit(tmp_path, tiny(lr_schedule="constant"), max_steps=3)
    assert list(got.values()) == pytest.approx([0.016 * 8 / 256] * 3)


def test_bad_arguments_say_what_to_do():
    with pytest.raises(ValueError, match="decay_rate in"):
        tiny(decay_rate=1.5)
