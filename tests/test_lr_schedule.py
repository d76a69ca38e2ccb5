"""The paper's LR schedule: a pure function of the update index, applied per optimizer update."""

import math

import pytest
import torch
from callbacks_testkit import LRRecorder, TinyLinear, make_trainer, vector_loader
from effnet_lightning.callbacks import LRSchedule, lr_at

BASE = 0.016  # paper: lr 0.016 per 256 images


def test_warmup_is_linear_from_start_factor_to_base():
    lrs = [lr_at(u, 10, BASE, warmup_epochs=5, warmup_start_factor=0.01) for u in range(50)]
    assert lrs[0] == pytest.approx(0.01 * BASE)
    steps = [b - a for a, b in zip(lrs, lrs[1:], strict=False)]
    assert steps == pytest.approx([(1 - 0.01) * BASE / 50] * 49)
    assert lrs[25] == pytest.approx(BASE * (0.01 + 0.99 * 0.5))


def test_after_warmup_the_decay_counts_from_update_zero_as_in_tf():
    # TF build_learning_rate: at the end of a 5-epoch warm-up the exponent is floor(5 / 2.4) == 2.
    assert lr_at(50, 10, BASE) == pytest.approx(BASE * 0.97**2)
    assert lr_at(0, 10, BASE) == 0.0  # TF warm-up starts from 0 by default


@pytest.mark.parametrize("updates_per_epoch", [5, 10, 1251])  # 1251: ImageNet at global batch 1024
def test_staircase_drops_by_097_every_24_epochs(updates_per_epoch):
    decay_updates = 2.4 * updates_per_epoch
    for update in range(0, 30 * updates_per_epoch, max(1, updates_per_epoch // 7)):
        expected = BASE * 0.97 ** math.floor(update / decay_updates + 1e-9)
        assert lr_at(update, updates_per_epoch, BASE, warmup_epochs=0) == pytest.approx(expected, rel=1e-12)
    # Exactly at a boundary the step has happened, despite 2.4 * 5 == 12.000000000000002 in floats.
    assert lr_at(12, 5, BASE, warmup_epochs=0) == pytest.approx(BASE * 0.97)
    assert lr_at(11, 5, BASE, warmup_epochs=0) == BASE


def test_smooth_variant_decays_continuously():
    assert lr_at(60, 10, BASE, warmup_epochs=0, staircase=False) == pytest.approx(BASE * 0.97**2.5)
    assert lr_at(61, 10, BASE, warmup_epochs=0, staircase=False) < lr_at(
        60, 10, BASE, warmup_epochs=0, staircase=False
    )


def test_cosine_reaches_min_lr_at_max_epochs():
    kwargs = dict(schedule="cosine", warmup_epochs=0, max_epochs=10, min_lr=1e-5)
    assert lr_at(0, 10, BASE, **kwargs) == pytest.approx(BASE)
    assert lr_at(50, 10, BASE, **kwargs) == pytest.approx((BASE + 1e-5) / 2)
    assert lr_at(100, 10, BASE, **kwargs) == pytest.approx(1e-5)
    assert lr_at(150, 10, BASE, **kwargs) == pytest.approx(1e-5)  # clamped past the end
    with pytest.raises(ValueError, match="max_epochs"):
        lr_at(5, 10, BASE, schedule="cosine")


def test_bad_arguments_say_what_to_do():
    with pytest.raises(ValueError, match="exponential"):
        LRSchedule(schedule="step")
    with pytest.raises(ValueError, match="warmup_start_factor"):
        LRSchedule(warmup_start_factor=2.0)


def test_accumulation_and_limit_train_batches_in_a_real_fit(tmp_path):
    # 7 batches per epoch, an update every 3 batches (and on the last) -> ceil(7 / 3) == 3 updates per epoch.
    schedule = LRSchedule(warmup_epochs=1, warmup_start_factor=0.1, decay_epochs=0.5)
    recorder = LRRecorder()
    trainer = make_trainer(
        tmp_path, [schedule, recorder], max_epochs=4, limit_train_batches=7, accumulate_grad_batches=3
    )
    module = TinyLinear(lr=0.1)
    trainer.fit(module, vector_loader(num_batches=20))
    assert sorted(recorder.lrs) == list(range(12))
    for step, (body_lr, head_lr) in recorder.lrs.items():
        assert body_lr == pytest.approx(schedule.lr(step, 3, 0.1, None))
        assert head_lr == pytest.approx(schedule.lr(step, 3, 0.01, None))  # each group from its own base
    # What is logged is what the last update used.
    assert trainer.callback_metrics["train/lr"].item() == pytest.approx(recorder.lrs[11][0])


def test_resuming_at_an_arbitrary_update_gives_the_continuous_lrs(tmp_path):
    def run(max_steps, ckpt_path=None):
        recorder = LRRecorder()
        schedule = LRSchedule(warmup_epochs=1, decay_epochs=0.4, warmup_start_factor=0.05)
        trainer = make_trainer(tmp_path, [schedule, recorder], max_epochs=3, max_steps=max_steps)
        trainer.fit(TinyLinear(), vector_loader(num_batches=10), ckpt_path=ckpt_path)
        return trainer, recorder.lrs

    _, continuous = run(max_steps=-1)
    assert len(continuous) == 30
    stopped, first = run(max_steps=13)  # mid-epoch
    stopped.save_checkpoint(tmp_path / "step13.ckpt")
    _, resumed = run(max_steps=-1, ckpt_path=tmp_path / "step13.ckpt")
    # (How many batches Lightning replays after a mid-epoch restart is its business; the LR of every update
    # it makes must be the LR the uninterrupted run used at that update index.)
    assert min(resumed) == 13 and len(resumed) >= 5
    assert sorted(first) == list(range(13))
    assert {step: continuous[step] for step in first | resumed} == first | resumed


def test_refuses_a_second_scheduler(tmp_path):
    trainer = make_trainer(tmp_path, [LRSchedule()], max_steps=1)
    with pytest.raises(ValueError, match="remove the lr_scheduler"):
        trainer.fit(TinyLinear(with_scheduler=True), vector_loader(num_batches=2))


def test_unsized_dataloader_gets_a_clear_error(tmp_path):
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter([(torch.randn(8), torch.tensor(0))] * 4)

    trainer = make_trainer(tmp_path, [LRSchedule()], max_steps=1)
    with pytest.raises(ValueError, match="limit_train_batches"):
        trainer.fit(TinyLinear(), torch.utils.data.DataLoader(Stream(), batch_size=2))
