"""Fine-tuning through the `effnet` CLI: a frozen first epoch keeps the loaded backbone (BatchNorm statistics
included) unchanged, the second trains everything, and a run stopped in the frozen epoch and resumed across the
unfreeze point ends with the weights of an uninterrupted run (max difference 0), with Mixup/CutMix, layer-wise LR
decay and EMA on. CPU, φ=-4 at 32 px on the CIFAR-10 stand-ins (100 training images, 5 steps of 20 per epoch)."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest
import torch
from cifar_standin import checksum_constants, write_cifar10
from effnet_run import scalars
from pretrained import backbone_difference, pretrained_state
from safetensors.torch import save_file
from torchvision.datasets import CIFAR10

from effnet_lightning.cli import main
from effnet_lightning.errors import EXIT_PREEMPTED, EXIT_USER_ERROR
from effnet_lightning.train.checkpoint_format import load_checkpoint

STEPS_PER_EPOCH = 5  # 100 training images / batch 20
EPOCHS = 2
LAYER_DECAY = 0.8
PRETRAINED_MEAN, PRETRAINED_STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]


@pytest.fixture(scope="module")
def setting(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """The stand-ins, and pretrained weights (a 1000-class timm state dict with shifted BN statistics) saved as .pth
    and as a timm hub folder whose config.json records the preprocessing (PRETRAINED_MEAN/STD)."""
    root = tmp_path_factory.mktemp("finetune")
    state = pretrained_state()
    torch.save(state, root / "pretrained.pth")
    (root / "hub").mkdir()
    save_file(state, str(root / "hub" / "model.safetensors"))
    cfg = {"mean": PRETRAINED_MEAN, "std": PRETRAINED_STD, "interpolation": "bicubic", "crop_pct": 0.875}
    (root / "hub" / "config.json").write_text(json.dumps({"pretrained_cfg": cfg}))
    with pytest.MonkeyPatch.context() as patch:
        for name, value in checksum_constants(write_cifar10(root / "cifar10")).items():
            patch.setattr(CIFAR10, name, value)
        patch.setattr(sys, "argv", ["effnet"])
        yield root, state


def config(root: Path, runs: Path, seed: int, interrupt: str = "", batch: int = 20, frozen: str = "1") -> Path:
    path = runs.parent / f"c{seed}.yaml"
    path.write_text(
        f"""seed_everything: {seed}
trainer:
  accelerator: cpu
  max_epochs: {EPOCHS}
  limit_val_batches: 1
  log_every_n_steps: 1
  default_root_dir: {runs}
  enable_model_summary: false
  enable_progress_bar: false
  callbacks:
    - class_path: effnet_lightning.callbacks.EMA
      init_args: {{decay: 0.9}}
{interrupt}
model:
  scaling: {{phi: -4, resolution: 32}}
  init: {root / "hub"}
  frozen_epochs: {frozen}
  layer_decay: {LAYER_DECAY}
  mixup_alpha: 0.2
  cutmix_alpha: 1.0
  mixup_switch_prob: 0.5
  dropout: 0.2
  drop_path_rate: 0.2
  lr: 0.05
  warmup_epochs: 0.5
data:
  class_path: CIFAR10DataModule
  init_args: {{data_dir: {root / "cifar10"}, val_size: 500, batch_size: {batch}, num_workers: 0}}
last: {{every_n_steps: 3}}
confusion_matrix: null
prediction_grid: null
cam_images: null
"""
    )
    return path


def checkpoint(run: Path) -> dict:
    return load_checkpoint(run / "checkpoints" / "last.ckpt")


@pytest.fixture(scope="module")
def straight(setting, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root, _ = setting
    tmp = tmp_path_factory.mktemp("straight")
    assert main(["fit", "--config", str(config(root, tmp / "runs", seed=0))]) == 0
    return tmp / "runs" / "version_0"


def test_frozen_epoch_keeps_backbone_then_all_train_and_resume_is_exact(setting, straight, tmp_path) -> None:
    root, pretrained = setting
    interrupt = f"    - {{class_path: interrupts.SignalAt, init_args: {{steps: [3], signum: {int(signal.SIGTERM)}}}}}"
    first = config(root, tmp_path / "runs", seed=0, interrupt=interrupt)
    assert main(["fit", "--config", str(first)]) == EXIT_PREEMPTED
    run = tmp_path / "runs" / "version_0"
    stopped = checkpoint(run)
    assert stopped["global_step"] == 3  # in the frozen epoch
    assert backbone_difference(stopped["current_model_state"], pretrained) == 0  # raw weights and BN statistics
    assert backbone_difference(stopped["state_dict"], pretrained) == 0  # EMA weights
    assert not torch.equal(
        stopped["current_model_state"]["model.classifier.weight"],
        checkpoint(straight)["current_model_state"]["model.classifier.weight"],
    )

    again = config(root, tmp_path / "runs", seed=123)  # another seed: everything comes from the checkpoint
    assert main(["fit", "--config", str(again), "--ckpt_path", str(run)]) == 0
    resumed, uninterrupted = checkpoint(run), checkpoint(straight)
    for final in (resumed, uninterrupted):  # the datamodule normalised with the weights' statistics (none set)
        assert final["data_config"]["mean"] == pytest.approx(PRETRAINED_MEAN)
        assert final["data_config"]["std"] == pytest.approx(PRETRAINED_STD)
    assert resumed["global_step"] == uninterrupted["global_step"] == EPOCHS * STEPS_PER_EPOCH
    assert backbone_difference(uninterrupted["current_model_state"], pretrained) > 1e-3  # epoch 2 trained it all
    for key in ("state_dict", "current_model_state"):
        for name, tensor in uninterrupted[key].items():
            assert torch.equal(resumed[key][name], tensor), f"{key} {name}"


def test_layer_decay_scales_each_group_and_mixup_hides_train_accuracy(straight) -> None:
    groups = checkpoint(straight)["optimizer_states"][0]["param_groups"]
    scales = sorted({group["lr_scale"] for group in groups})
    assert scales[-1] == 1.0 and scales[0] == pytest.approx(LAYER_DECAY ** (len(scales) - 1))
    head_lr = max(group["lr"] for group in groups)
    for group in groups:
        assert group["lr"] == pytest.approx(head_lr * group["lr_scale"])
    logged = scalars(straight)
    assert "train/loss" in logged and "train/acc1" not in logged  # no accuracy against mixed targets
    assert logged["train/lr"][-1] == pytest.approx(head_lr, rel=1e-6)


def test_odd_batch_with_mixup_is_refused_up_front(setting, tmp_path, capfd) -> None:
    root, _ = setting
    code = main(["fit", "--config", str(config(root, tmp_path / "runs", seed=0, batch=19))])
    assert code == EXIT_USER_ERROR
    assert "needs an even data.batch_size, got 19" in capfd.readouterr().err


def test_linear_probe_never_changes_the_backbone(setting, tmp_path) -> None:
    root, pretrained = setting
    args = ["fit", "--config", str(config(root, tmp_path / "runs", seed=0, frozen="all")), "--trainer.max_epochs=1"]
    assert main(args) == 0
    final = checkpoint(tmp_path / "runs" / "version_0")
    assert backbone_difference(final["current_model_state"], pretrained) == 0
    assert backbone_difference(final["state_dict"], pretrained) == 0
