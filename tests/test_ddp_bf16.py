"""The same debug config under 2-process CPU DDP (gloo) and in bf16-mixed, through the console script."""

from __future__ import annotations

import os

import pytest
import torch
from cifar_standin import write_cifar10, write_sitecustomize
from test_fit_cli import STEPS_PER_EPOCH, debug_args, effnet, scalars


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("ddp")
    site = write_sitecustomize(root / "site", write_cifar10(root / "cifar10")).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    return {"root": root, "env": env, "data": root / "cifar10"}


def test_two_process_ddp_scales_lr_by_global_batch_and_rank0_writes(standins):
    runs = standins["root"] / "runs_ddp"
    args = debug_args(standins["data"], runs, "--trainer.max_epochs=1", "--trainer.strategy=ddp",
                      "--trainer.devices=2", "--trainer.accelerator=cpu")  # fmt: skip
    out = effnet("fit", *args, env=standins["env"], cwd=standins["root"])
    assert out.returncode == 0, out.stderr[-3000:]
    assert sorted(p.name for p in runs.iterdir()) == ["version_0"]  # one run directory, not one per rank
    run = runs / "version_0"
    assert len(list(run.glob("events.out.tfevents*"))) == 1
    assert len(list(run.glob("config.yaml"))) == 1
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    # 0.016 per 256 images x (batch 32 x 2 processes) = 0.004
    assert checkpoint["optimizer_states"][0]["param_groups"][0]["initial_lr"] == pytest.approx(0.004)
    # each rank sees half of the 500 training images: 250 // 32 = 7 updates per epoch
    assert checkpoint["global_step"] == 7
    assert "lr 0.016 per 256 images × global batch 64" in out.stdout + out.stderr


def test_bf16_mixed_on_cpu_end_to_end(standins):
    runs = standins["root"] / "runs_bf16"
    args = debug_args(standins["data"], runs, "--trainer.max_epochs=2", "--trainer.precision=bf16-mixed")
    out = effnet("fit", *args, env=standins["env"], cwd=standins["root"])
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = scalars(runs / "version_0")
    assert metrics["val/acc1"] > 0.3  # 10 classes, chance 0.1
    checkpoint = torch.load(runs / "version_0" / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert checkpoint["global_step"] == 2 * STEPS_PER_EPOCH
    assert checkpoint["state_dict"]["model.conv_stem.weight"].dtype == torch.float32  # master weights stay fp32
