"""The debug config under 2-process CPU DDP (gloo), through the console script (only real processes show how
ranks share the work and the writing, a frozen backbone under DDP's reducer, and whether the ranks' BatchNorm
statistics agree), and in bf16-mixed, in process."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from cifar_standin import write_cifar10, write_sitecustomize
from effnet_run import STEPS_PER_EPOCH, debug_args, effnet, effnet_process, scalars, subprocess_env
from learning import learning_seed
from pretrained import backbone_difference, pretrained_state

from effnet_lightning.train.checkpoint_format import load_checkpoint

SUPPORT = Path(__file__).parents[1] / "support"  # batchnorm_dump.py, importable by the ranks


def test_two_process_ddp_fine_tunes_scales_lr_writes_once_and_ranks_agree(tmp_path: Path) -> None:
    """One 2-process launch (each is slow to start) shows:
    - the LR scales by the global batch, and rank 0 alone writes one run folder;
    - fine-tuning from pretrained weights with DDP's default find_unused_parameters=False: the frozen first epoch
      keeps the backbone on both ranks' reduced updates, the second trains it;
    - precise BN gives both ranks the same statistics. Their training statistics differ (each rank updates them
      from its own batches after DDP broadcasts rank 0's), so equal files show the recomputation, over the same
      images on every rank, for the raw and the EMA weights; in the frozen epoch nothing is recomputed and the
      loaded statistics stay."""
    env = subprocess_env(write_sitecustomize(tmp_path / "site", write_cifar10(tmp_path / "cifar10")).parent)
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(SUPPORT)])
    pretrained = pretrained_state()
    torch.save(pretrained, tmp_path / "pretrained.pth")
    runs, dumps = tmp_path / "runs_ddp", tmp_path / "batchnorm"
    dump = {"class_path": "batchnorm_dump.DumpBatchNorm", "init_args": {"folder": str(dumps)}}
    ddp = ["--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu"]
    finetune = [f"--model.init={tmp_path / 'pretrained.pth'}", "--model.frozen_epochs=1"]
    every_epoch = ["--checkpoint.monitor=null", "--checkpoint.save_top_k=-1"]
    # half of each rank's batches: floor(0.5 x 7) = 3 steps per epoch when the ranks share the data, 7 if not
    extra = ["--trainer.max_epochs=2", "--trainer.limit_train_batches=0.5", *ddp, *finetune, *every_epoch]
    args = debug_args(tmp_path / "cifar10", runs, *extra, "--trainer.num_sanity_val_steps=0")
    out = effnet_process("fit", *args, f"--trainer.callbacks+={json.dumps(dump)}", env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert sorted(p.name for p in runs.iterdir()) == ["version_0"]  # one run directory, not one per rank
    run = runs / "version_0"
    assert len(list(run.glob("events.out.tfevents*"))) == 1
    assert len(list(run.glob("config.yaml"))) == 1
    first, last = (load_checkpoint(run / "checkpoints" / name) for name in ("best-epoch0-step3.ckpt", "last.ckpt"))
    # 0.016 per 256 images x (batch 32 x 2 processes) = 0.004
    assert last["optimizer_states"][0]["param_groups"][0]["initial_lr"] == pytest.approx(0.004)
    # each rank sees half of the 500 training images: 250 // 32 = 7 batches per epoch, half of them trained
    assert last["global_step"] == 2 * 3
    assert "lr 0.016 per 256 images × global batch 64" in out.stdout + out.stderr
    assert "sync_dist" not in out.stderr  # per-class accuracy is logged already reduced (confusion_matrix.py)

    assert "epoch 0: training classifier only (backbone frozen)" in out.stdout + out.stderr
    assert "epoch 1: training all layers (backbone unfrozen)" in out.stdout + out.stderr
    assert backbone_difference(first["current_model_state"], pretrained) == 0
    assert backbone_difference(last["current_model_state"], pretrained) > 1e-3

    names = [f"rank{rank}_step{step}.pt" for step in (3, 6) for rank in (0, 1)]
    assert sorted(p.name for p in dumps.iterdir()) == sorted(names)
    for step in (3, 6):
        rank0, rank1 = (torch.load(dumps / f"rank{r}_step{step}.pt", weights_only=True) for r in (0, 1))
        assert rank0.keys() == rank1.keys() and any(k.startswith("ema.") for k in rank0)
        unequal = [key for key in rank0 if not torch.equal(rank0[key], rank1[key])]
        assert not unequal, (step, unequal[:5])
    # the last validation's statistics are last.ckpt's: EMA weights as `state_dict`, the raw ones beside them
    saved = {"ema.": last["state_dict"], "raw.": last["current_model_state"]}
    assert all(torch.equal(saved[key[:4]][key[4:]], value) for key, value in rank0.items())


@pytest.mark.learning
def test_bf16_mixed_on_cpu_end_to_end(
    cifar10_root: Path, tmp_path: Path, capfd: pytest.CaptureFixture, record_property: Callable
) -> None:
    runs = tmp_path / "runs_bf16"
    args = debug_args(
        cifar10_root,
        runs,
        "--trainer.max_epochs=2",
        "--trainer.log_every_n_steps=1",
        "--trainer.precision=bf16-mixed",
        "--model.lr=0.064",
        f"--seed_everything={learning_seed()}",
    )
    done = effnet(capfd, "fit", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    # It trains: the loss falls from chance (ln 10 = 2.30, where the 1000-class classifier init starts it; lr 4x the
    # debug config's, which fell only to 0.76-0.82 of it in 30 steps). Validation accuracy after 30 steps is too
    # noisy to bound (0.15-0.63 over seeds, in fp32 alike); the bound sits below the cross-machine table's worst
    # last-5 / first-5 mean loss (BENCHMARKS.md; 0.57-0.63 over seeds 0-2 here).
    loss = scalars(runs / "version_0")["train/loss"]
    assert len(loss) == 2 * STEPS_PER_EPOCH
    record_property("loss ratio", sum(loss[-5:]) / sum(loss[:5]))
    assert sum(loss[-5:]) < 0.85 * sum(loss[:5]), loss
    checkpoint = load_checkpoint(runs / "version_0" / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 2 * STEPS_PER_EPOCH
    assert checkpoint["state_dict"]["model.conv_stem.weight"].dtype == torch.float32  # master weights stay fp32
