"""Exact resume through the `effnet` CLI: training N epochs straight and training with an interruption give the
same weights, raw and EMA (max difference <= 1e-6), mid-epoch, with and without loader workers; interrupted
between the end of an epoch's training and the end of its validation, also the same validations, metrics and
best checkpoint.

CPU, a φ=-4 EfficientNet at 32 px on the CIFAR-10 stand-ins (100 training images, 5 steps of 20 per epoch),
with dropout, drop-path, augmentation, RMSpropTF, the LR schedule and EMA all drawing random numbers or carrying
state. The resumed runs pass another seed on purpose: everything must come from the checkpoint. Every run is
`effnet fit` in process, so the Trainer, its callbacks and plugins are the CLI's own.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest
import torch
from cifar_standin import checksum_constants, write_cifar10
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torchvision.datasets import CIFAR10

from effnet_lightning.cli import main
from effnet_lightning.errors import EXIT_CRASH, EXIT_PREEMPTED
from effnet_lightning.train.checkpoint_format import load_checkpoint

STEPS_PER_EPOCH = 5  # 100 training images (600 stand-ins, 500 held out) / batch 20
EPOCHS = 2
TOLERANCE = 1e-6  # max abs difference of any weight


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("cifar10")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in checksum_constants(write_cifar10(root)).items():
            patch.setattr(CIFAR10, name, value)
        patch.setattr(sys, "argv", ["effnet"])
        yield root


def config(path: Path, data_dir: Path, runs: Path, seed: int, workers: int = 0, interrupt: str = "") -> Path:
    path.write_text(
        f"""seed_everything: {seed}
trainer:
  accelerator: cpu
  max_epochs: {EPOCHS}
  limit_val_batches: 1
  default_root_dir: {runs}
  enable_model_summary: false
  enable_progress_bar: false
  callbacks:
    - class_path: effnet_lightning.callbacks.EMA
      init_args: {{decay: 0.9}}
{interrupt}
model:
  scaling: {{phi: -4, resolution: 32}}
  dropout: 0.2
  drop_path_rate: 0.2
  lr: 0.05
  warmup_epochs: 0.5
  decay_rate: 0.9
  decay_epochs: 0.5
data:
  class_path: CIFAR10DataModule
  init_args: {{data_dir: {data_dir}, val_size: 500, batch_size: 20, num_workers: {workers}, persistent_workers: true}}
last: {{every_n_steps: 3}}
precise_bn: {{num_images: 40}}  # 2 batches, not the whole stand-in training split
"""
    )
    return path


def signal_at(step: int) -> str:
    return f"    - {{class_path: interrupts.SignalAt, init_args: {{steps: [{step}], signum: {int(signal.SIGTERM)}}}}}"


def signal_in_validation(epoch: int) -> str:
    return f"    - {{class_path: interrupts.SignalInValidation, init_args: {{epoch: {epoch}, batch: 0}}}}"


def crash_at(step: int) -> str:
    return f"    - {{class_path: interrupts.CrashAt, init_args: {{step: {step}}}}}"


def final_weights(run: Path) -> tuple[dict, dict]:
    """The weights of last.ckpt (written when training ends): `state_dict` (with EMA, Lightning's
    WeightAveraging stores the averaged weights there) and `current_model_state` (the raw weights)."""
    checkpoint = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == EPOCHS * STEPS_PER_EPOCH
    return checkpoint["state_dict"], checkpoint.get("current_model_state", {})


def last_step(run: Path) -> int:
    return load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"]


@pytest.fixture(scope="module")
def straight_run(cifar_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("straight")
    assert main(["fit", "--config", str(config(tmp / "c.yaml", cifar_dir, tmp / "runs", seed=0))]) == 0
    return tmp / "runs" / "version_0"


@pytest.fixture(scope="module")
def straight(straight_run: Path) -> tuple[dict, dict]:
    return final_weights(straight_run)


def assert_same_weights(resumed: tuple[dict, dict], straight: tuple[dict, dict]) -> None:
    def tensors(state, prefix=""):
        if isinstance(state, torch.Tensor):
            yield prefix, state
        elif isinstance(state, dict):
            for k, v in state.items():
                yield from tensors(v, f"{prefix}.{k}")

    for got, want in zip(resumed, straight, strict=True):
        got, want = dict(tensors(got)), dict(tensors(want))
        assert got.keys() == want.keys()
        worst = max(
            (got[k].double() - want[k].double()).abs().max().item() for k in want if want[k].is_floating_point()
        )
        assert worst <= TOLERANCE, f"max abs weight difference {worst:.3g}"


def resume(cifar_dir: Path, tmp: Path, run: Path, workers: int = 0) -> None:
    again = config(tmp / "again.yaml", cifar_dir, tmp / "runs", seed=123, workers=workers)  # another seed
    assert main(["fit", "--config", str(again), "--ckpt_path", str(run)]) == 0
    assert sorted(p.name for p in (tmp / "runs").iterdir()) == ["version_0"]  # the run kept its folder


def test_resume_mid_epoch_after_sigterm(cifar_dir, tmp_path, straight):
    first = config(tmp_path / "c.yaml", cifar_dir, tmp_path / "runs", seed=0, interrupt=signal_at(7))
    assert main(["fit", "--config", str(first)]) == EXIT_PREEMPTED
    run = tmp_path / "runs" / "version_0"
    assert last_step(run) == 7  # epoch 1, 2 of 5 batches done
    resume(cifar_dir, tmp_path, run)
    assert_same_weights(final_weights(run), straight)


def test_resume_mid_epoch_from_periodic_checkpoint_with_workers(cifar_dir, tmp_path, straight):
    """Killed after step 7 with nothing saved then; last.ckpt is from step 6 (last.every_n_steps 3). Two loader
    workers here, none in the straight run: augmentations do not depend on the workers."""
    first = config(tmp_path / "c.yaml", cifar_dir, tmp_path / "runs", seed=0, workers=2, interrupt=crash_at(7))
    assert main(["fit", "--config", str(first)]) == EXIT_CRASH  # a crash: its traceback, last.ckpt kept
    run = tmp_path / "runs" / "version_0"
    assert last_step(run) == 6  # epoch 1, 1 of 5 batches done
    resume(cifar_dir, tmp_path, run, workers=2)
    assert_same_weights(final_weights(run), straight)


def validations(run: Path) -> dict[str, list[tuple[str, float]]]:
    """What the run's validations recorded: every val* scalar (logged step, value) and the best-k state of the
    `checkpoint:` ModelCheckpoint in last.ckpt (file names, scores)."""
    checkpoint = load_checkpoint(run / "checkpoints" / "last.ckpt")
    (best_k,) = [state for key, state in checkpoint["callbacks"].items() if key.startswith("ModelCheckpoint")]
    logged = {tag: values for tag, values in scalars_with_steps(run).items() if tag.startswith("val")}
    best = [(Path(best_k["best_model_path"]).name, float(best_k["best_model_score"]))]
    kept = sorted((Path(path).name, float(score)) for path, score in best_k["best_k_models"].items())
    return {**logged, "best": best, "best_k": kept}


def scalars_with_steps(run: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(run))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_resume_after_sigterm_inside_validation(cifar_dir, tmp_path, straight_run):
    """SIGTERM while epoch 0 validates: the resumed run validates epoch 0 (before, it resumed past it: one
    validation fewer, and best-k never saw epoch 0's weights). The stop right after the last training batch:
    tests/callbacks/test_last_checkpoint.py."""
    first = config(tmp_path / "c.yaml", cifar_dir, tmp_path / "runs", seed=0, interrupt=signal_in_validation(0))
    assert main(["fit", "--config", str(first)]) == EXIT_PREEMPTED
    run = tmp_path / "runs" / "version_0"
    assert last_step(run) == STEPS_PER_EPOCH - 1  # the state before the batch that validation follows
    resume(cifar_dir, tmp_path, run)
    resumed, want = validations(run), validations(straight_run)
    assert len(want["val/acc1"]) == EPOCHS and len(want["best"]) == 1
    assert resumed == want
    assert_same_weights(final_weights(run), final_weights(straight_run))
