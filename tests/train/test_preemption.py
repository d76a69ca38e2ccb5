"""Stopping and resuming runs: signals (real ones through the console script), run folders, `--ckpt_path`.

Subprocesses only where a real process matters (SIGTERM/SIGINT delivered from outside, a second signal during
the save); everything else calls `effnet` in process, with a real signal sent to this process where needed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from effnet_lightning.assembly.resume import resolve_ckpt_path
from effnet_lightning.assembly.run_dir import RunIsLive, RunLock, create_run_dir
from effnet_lightning.cli import main
from effnet_lightning.errors import EXIT_INTERRUPTED, EXIT_PREEMPTED
from effnet_lightning.train.checkpoint_format import load_checkpoint

EFFNET = str(Path(sys.executable).with_name("effnet"))  # the console script of this environment
STEPS_PER_EPOCH = 25  # 500 training images of the stand-ins / batch 20
GRACE = 30  # s; docker stop waits 10 s by default, cloud preemption notices give 30-120 s


def write_config(path: Path, data_dir: Path, runs: Path, max_epochs: int = 1, callbacks: str = "") -> Path:
    path.write_text(
        f"""# tiny: phi -4 at 32 px on the CIFAR-10 stand-ins
seed_everything: 7
trainer:
  accelerator: cpu
  max_epochs: {max_epochs}
  default_root_dir: {runs}
  limit_val_batches: 1
  enable_progress_bar: false
  enable_model_summary: false
{callbacks}
model: {{scaling: {{phi: -4, resolution: 32}}}}
data:
  class_path: CIFAR10DataModule
  init_args: {{data_dir: {data_dir}, val_size: 100, batch_size: 20, num_workers: 0}}
last:
  every_n_steps: 2
precise_bn: {{num_images: 40}}  # 2 batches, not the whole stand-in training split
"""
    )
    return path


def last_checkpoint(run: Path) -> dict:
    return load_checkpoint(run / "checkpoints" / "last.ckpt")


def start_and_signal(command: list[str], env: dict, cwd: Path, last: Path, signums: list[int], gap: float):
    """Starts `command`, waits for its first periodic last.ckpt, sends `signums` `gap` s apart; (rc, stderr)."""
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, cwd=cwd)
    deadline = time.monotonic() + 120
    while not last.exists():  # the first periodic checkpoint (step 2): training is under way
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-2000:]
        time.sleep(0.05)
    signalled = time.monotonic()
    for signum in signums:
        process.send_signal(signum)
        time.sleep(gap)
    _, stderr = process.communicate(timeout=GRACE)
    assert time.monotonic() - signalled < GRACE
    return process.returncode, stderr


def test_sigterm_saves_the_step_reached_and_resume_finishes(cifar10_root, cifar10_env, tmp_path):
    runs = tmp_path / "runs"
    config = write_config(tmp_path / "tiny.yaml", cifar10_root, runs)
    last = runs / "version_0" / "checkpoints" / "last.ckpt"
    rc, stderr = start_and_signal(
        [EFFNET, "fit", "--config", str(config)], cifar10_env, tmp_path, last, [signal.SIGTERM], 0
    )
    assert rc == EXIT_PREEMPTED, stderr[-2000:]

    run = runs / "version_0"
    stopped = last_checkpoint(run)
    step = stopped["global_step"]
    assert 2 <= step < STEPS_PER_EPOCH, "stopped mid-epoch"
    assert stopped["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"seed": 7, "epoch": 0, "samples_done": step * 20}
    ]
    assert f"stopped by SIGTERM at step {step} (epoch 0); saved {last}" in stderr
    assert f"--ckpt_path {run}" in stderr

    # the resume needs no real process (in process: one Python start-up less)
    assert main(["fit", "--config", str(run / "config.yaml"), "--ckpt_path", str(run)]) == 0
    assert sorted(p.name for p in runs.iterdir()) == ["version_0"]  # the run kept its folder
    assert last_checkpoint(run)["global_step"] == STEPS_PER_EPOCH


def test_ctrl_c_saves_and_exits_130_and_a_second_signal_does_not_abort_the_save(cifar10_root, cifar10_env, tmp_path):
    """Before: Ctrl-C exited 1 without saving; a second SIGTERM 0.1-1.5 s after the first gave exit 143."""
    runs = tmp_path / "runs"
    config = write_config(tmp_path / "tiny.yaml", cifar10_root, runs)
    last = runs / "version_0" / "checkpoints" / "last.ckpt"
    signums = [signal.SIGINT, signal.SIGTERM, signal.SIGTERM, signal.SIGINT]
    rc, stderr = start_and_signal([EFFNET, "fit", "--config", str(config)], cifar10_env, tmp_path, last, signums, 0.1)
    assert rc == EXIT_INTERRUPTED, stderr[-2000:]
    step = last_checkpoint(runs / "version_0")["global_step"]
    assert 2 <= step < STEPS_PER_EPOCH
    assert f"stopped by SIGINT at step {step} (epoch 0); saved {last}" in stderr
    assert "Traceback" not in stderr


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


def test_signal_during_start_up_is_one_line_and_a_defined_exit(cifar10_root, tmp_path, capsys, argv, monkeypatch):
    """A SIGTERM while the command starts (here: while it loads plugins) stops it with exit 75 and one line."""
    config = write_config(tmp_path / "tiny.yaml", cifar10_root, tmp_path / "runs")
    monkeypatch.setattr(
        "effnet_lightning.assembly.plugins.load_and_report", lambda: os.kill(os.getpid(), signal.SIGTERM)
    )
    assert main(["fit", "--config", str(config)]) == EXIT_PREEMPTED
    assert capsys.readouterr().err == "effnet fit: stopped by SIGTERM during start-up; nothing was saved\n"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored for the rest of the process


SIGNAL_AT = "  callbacks: [{{class_path: interrupts.SignalAt, init_args: {{steps: {steps}}}}}]"


def test_moved_run_folder_resumes_the_newest_step_with_one_last_ckpt(cifar10_root, tmp_path, capsys, argv):
    """Before: after `mv runs_a runs_b` the next save went to last-v1.ckpt and resuming reloaded the old
    last.ckpt, so a requeue loop restarted from the same step for ever."""
    runs_a, runs_b = tmp_path / "runs_a", tmp_path / "runs_b"
    config = write_config(
        tmp_path / "a.yaml", cifar10_root, runs_a, max_epochs=1, callbacks=SIGNAL_AT.format(steps=[3, 6])
    )
    assert main(["fit", "--config", str(config)]) == EXIT_PREEMPTED
    runs_a.rename(runs_b)
    run = runs_b / "version_0"
    stale = run / "checkpoints" / f".last.ckpt.tmp-{2**22 + 1}"  # a kill -9 during a write left this
    stale.write_bytes(b"half a checkpoint")
    for step in (6, STEPS_PER_EPOCH):  # preempted again at 6, then finishes
        rc = main(["fit", "--config", str(run / "config.yaml"), "--ckpt_path", str(run)])
        assert rc == (EXIT_PREEMPTED if step == 6 else 0)
        assert last_checkpoint(run)["global_step"] == step
        assert sorted(p.name for p in (run / "checkpoints").iterdir() if "last" in p.name) == ["last.ckpt"]
    assert not runs_a.exists() and sorted(p.name for p in runs_b.iterdir()) == ["version_0"]
    assert "resuming " in capsys.readouterr().err


def test_last_never_picks_a_live_run_and_states_its_pick(cifar10_root, tmp_path, capsys, argv):
    runs = tmp_path / "runs"
    config = write_config(tmp_path / "tiny.yaml", cifar10_root, runs, callbacks=SIGNAL_AT.format(steps=[2]))
    assert main(["fit", "--config", str(config)]) == EXIT_PREEMPTED
    live = touch(runs / "version_1" / "checkpoints" / "last.ckpt", time.time() + 60)  # newer, being written
    lock = RunLock(live.parent.parent).acquire()
    try:
        assert resolve_ckpt_path("last", runs) == (
            str(runs / "version_0" / "checkpoints" / "last.ckpt"),
            runs / "version_0",
        )
        with pytest.raises(RunIsLive, match="version_1 is still training"):
            resolve_ckpt_path(str(runs / "version_1"), runs)
        capsys.readouterr()
        assert main(["fit", "--config", str(config), "--ckpt_path", "last", "--trainer.max_steps", "3"]) == 0
        picked = [line for line in capsys.readouterr().err.splitlines() if "resuming" in line]
        assert picked == [
            f"effnet fit: resuming {runs / 'version_0' / 'checkpoints' / 'last.ckpt'} (step 2, epoch 0) into run "
            f"{runs / 'version_0'}"
        ]
        assert main(["fit", "--config", str(config), "--ckpt_path", str(runs / "version_1")]) == 2
        assert "is still training" in capsys.readouterr().err
    finally:
        lock.release()


def test_resume_with_other_model_or_data_settings_exits_2_listing_them(cifar10_root, tmp_path, capsys, argv):
    """Before, the checkpoint's model settings silently won, and other data settings went unnoticed."""
    runs = tmp_path / "runs"
    config = write_config(tmp_path / "tiny.yaml", cifar10_root, runs, callbacks=SIGNAL_AT.format(steps=[2]))
    assert main(["fit", "--config", str(config)]) == EXIT_PREEMPTED
    run = runs / "version_0"
    capsys.readouterr()
    other = ["--model.scaling.phi", "-3", "--model.drop_path_rate", "0.1", "--data.init_args.batch_size", "10"]
    assert main(["fit", "--config", str(run / "config.yaml"), "--ckpt_path", str(run), *other]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("effnet fit: error: "), error
    for key in (
        "model.scaling.phi: checkpoint -4.0, now -3.0",
        "model.drop_path_rate",
        "data.batch_size: checkpoint 20, now 10",
    ):
        assert key in error, error


def test_lr_and_weight_decay_given_at_resume_are_used_and_logged(cifar10_root, tmp_path, capsys, argv):
    runs = tmp_path / "runs"
    config = write_config(tmp_path / "tiny.yaml", cifar10_root, runs, callbacks=SIGNAL_AT.format(steps=[2]))
    constant = "--model.lr_schedule=constant"  # LRs at steps 2 and 3 comparable (the schedule's part: test_lr_schedule)
    assert main(["fit", "--config", str(config), constant]) == EXIT_PREEMPTED
    run = runs / "version_0"
    before = last_checkpoint(run)["optimizer_states"][0]["param_groups"]
    capsys.readouterr()
    new = ["--model.lr", "0.008", "--model.weight_decay", "0.001", "--trainer.max_steps", "3"]
    assert main(["fit", "--config", str(run / "config.yaml"), "--ckpt_path", str(run), *new]) == 0
    assert "resumed with model.lr 0.016 -> 0.008, model.weight_decay 1e-05 -> 0.001" in capsys.readouterr().err
    after = last_checkpoint(run)["optimizer_states"][0]["param_groups"]
    for old, now in zip(before, after, strict=True):
        assert now["lr"] == pytest.approx(old["lr"] / 2)  # the LR position of the schedule is kept, scaled
        assert now["weight_decay"] == (0.001 if old["weight_decay"] else 0.0)
    assert last_checkpoint(run)["hyper_parameters"]["lr"] == 0.008


def test_run_folders_are_created_atomically(tmp_path, monkeypatch):
    """Two runs starting at once must not share version_N. Here the other run creates version_0
    between our listing and our mkdir."""
    runs = tmp_path / "runs"
    runs.mkdir()
    real_mkdir = Path.mkdir

    def racing_mkdir(self, *args, **kwargs):
        if self.name == "version_0" and not self.exists():
            real_mkdir(self)  # the other run wins the race
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", racing_mkdir)
    assert create_run_dir(runs) == runs / "version_1"
    monkeypatch.undo()
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="is a file"):
        create_run_dir(tmp_path / "file")
