"""Preemption through the console script: SIGTERM mid-epoch -> last.ckpt at that step, exit 75 -> resume
finishes in the same run directory. Plus what `--ckpt_path` accepts and says when there is nothing to resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from effnet_lightning.cli import EXIT_PREEMPTED, main
from effnet_lightning.resume import resolve_ckpt_path

EFFNET = str(Path(sys.executable).with_name("effnet"))  # the console script of this environment
STEPS_PER_EPOCH = 25  # 500 training images of the stand-ins / batch 20
GRACE = 30  # s; docker stop waits 10 s by default, cloud preemption notices give 30-120 s


def write_config(path: Path, data_dir: Path, runs: Path, max_epochs: int = 1) -> Path:
    path.write_text(
        f"""# tiny: phi -4 at 32 px on the CIFAR-10 stand-ins
seed_everything: 7
trainer:
  accelerator: cpu
  max_epochs: {max_epochs}
  default_root_dir: {runs}
  limit_val_batches: 1
  enable_progress_bar: false
model: {{phi: -4, resolution: 32}}
data:
  class_path: CIFAR10DataModule
  init_args: {{data_dir: {data_dir}, val_size: 100, batch_size: 20, num_workers: 0}}
last:
  every_n_steps: 2
"""
    )
    return path


def last_checkpoint(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")


def test_sigterm_saves_the_step_reached_and_resume_finishes(cifar10_root, cifar10_env, tmp_path):
    runs = tmp_path / "runs"
    config = write_config(tmp_path / "tiny.yaml", cifar10_root, runs)
    command = [EFFNET, "fit", "--config", str(config)]
    process = subprocess.Popen(command, env=cifar10_env, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    last = runs / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists():  # the first periodic checkpoint (step 2): training is under way
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-2000:]
        time.sleep(0.05)
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=GRACE)
    assert process.returncode == EXIT_PREEMPTED, stderr[-2000:]
    assert time.monotonic() - signalled < GRACE

    run = runs / "version_0"
    stopped = last_checkpoint(run)
    step = stopped["global_step"]
    assert 2 <= step < STEPS_PER_EPOCH, "stopped mid-epoch"
    assert stopped["CIFAR10DataModule"]["train_position"] == {"seed": 7, "epoch": 0, "samples_done": step * 20}
    assert f"stopped by SIGTERM at step {step} (epoch 0); saved {last}" in stderr
    assert f"--ckpt_path {run}" in stderr

    resume = [EFFNET, "fit", "--config", str(run / "config.yaml")]
    done = subprocess.run(
        [*resume, "--ckpt_path", str(run)], env=cifar10_env, capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in runs.iterdir()) == ["version_0"]  # the run kept its folder
    assert last_checkpoint(run)["global_step"] == STEPS_PER_EPOCH


@pytest.fixture
def argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["effnet"])  # main(args) in-process, as from the command line


def test_resume_without_checkpoint_is_one_line_exit_2(cifar10_root, tmp_path, capsys, argv):
    runs = tmp_path / "runs"
    config = write_config(tmp_path / "tiny.yaml", cifar10_root, runs)
    assert main(["fit", "--config", str(config), "--ckpt_path", "last"]) == 2
    assert capsys.readouterr().err == (
        f"effnet fit: error: no checkpoint to resume in {runs}/ (no run has checkpoints/last.ckpt); "
        "start without --ckpt_path\n"
    )
    (runs / "version_0").mkdir(parents=True)  # a run that died before its first checkpoint
    assert main(["fit", "--config", str(config), "--ckpt_path", str(runs / "version_0")]) == 2
    assert capsys.readouterr().err.startswith(f"effnet fit: error: no checkpoint to resume in {runs / 'version_0'}")


def touch(path: Path, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    os.utime(path, (mtime, mtime))
    return path


def test_ckpt_path_forms(tmp_path):
    runs = tmp_path / "runs"
    older = touch(runs / "version_0" / "checkpoints" / "last.ckpt", 1_000)
    newer = touch(runs / "version_1" / "checkpoints" / "last.ckpt", 2_000)
    best = touch(runs / "version_0" / "checkpoints" / "best-epoch3-step40.ckpt", 3_000)
    elsewhere = touch(tmp_path / "downloads" / "model.ckpt", 4_000)
    (runs / "version_2").mkdir()  # newest folder, but no checkpoint: "last" means the newest last.ckpt
    assert resolve_ckpt_path("last", runs) == (str(newer), runs / "version_1")
    assert resolve_ckpt_path(str(runs / "version_0"), runs) == (str(older), runs / "version_0")
    assert resolve_ckpt_path(str(best), runs) == (str(best), runs / "version_0")
    assert resolve_ckpt_path(str(elsewhere), runs) == (str(elsewhere), None)  # a new run starts from it
    assert resolve_ckpt_path("s3://bucket/last.ckpt", runs) == ("s3://bucket/last.ckpt", None)
    with pytest.raises(FileNotFoundError, match="checkpoint .*missing.ckpt does not exist"):
        resolve_ckpt_path(str(tmp_path / "missing.ckpt"), runs)
