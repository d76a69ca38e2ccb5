"""The error contract of `effnet fit`: a mistake the user can fix is one line and exit 2; anything else raised
during a run is a crash: exit 1, its traceback with a note saying where the run's log and last.ckpt are, and a last
line naming the command and the exception. Either way last.ckpt stays as the run left it."""

from __future__ import annotations

import json

import pytest
from effnet_run import STEPS_PER_EPOCH, debug_args, effnet, error_lines
from raising_callback import MESSAGE

from effnet_lightning.train.checkpoint_format import load_checkpoint

RAISE_AT = STEPS_PER_EPOCH + 5  # in epoch 1: epoch 0's validation wrote last.ckpt at step 15


@pytest.mark.parametrize("kind", ["bug", "user"])
def test_an_error_raised_in_a_callback_mid_fit(cifar10_module, tmp_path, capfd, kind):
    callback = {"class_path": "raising_callback.RaiseAtStep", "init_args": {"step": RAISE_AT, "kind": kind}}
    args = debug_args(cifar10_module, tmp_path / "runs", "--trainer.max_epochs=2")
    done = effnet(capfd, "fit", *args, f"--trainer.callbacks+={json.dumps(callback)}")
    run = tmp_path / "runs" / "version_0"
    last = run / "checkpoints" / "last.ckpt"
    assert load_checkpoint(last)["global_step"] == STEPS_PER_EPOCH  # kept
    message = MESSAGE.format(step=RAISE_AT)
    if kind == "bug":  # a ValueError from code: a crash, not "one line, exit 2"
        assert done.returncode == 1, done.stderr[-3000:]
        assert "Traceback (most recent call last)" in done.stderr and f"ValueError: {message}" in done.stderr
        assert done.stderr.strip().splitlines()[-3:] == [
            f"ValueError: {message}",
            f"effnet fit: the run's log (config.yaml, TensorBoard events) is in {run}, the last checkpoint is {last}",
            "effnet fit: crashed with ValueError (traceback above)",
        ]
    else:  # a UserError: one line that says what to do
        assert done.returncode == 2, done.stderr[-3000:]
        assert error_lines(done.stderr) == [f"effnet fit: error: {message}"]
        assert "Traceback" not in done.stderr


def test_a_crash_before_the_run_folder_says_so(tmp_path, capfd, monkeypatch):
    """A bug during start-up (here: in the plugin discovery) is a crash too, and nothing was written."""
    from effnet_lightning.assembly import plugins

    def broken() -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(plugins, "load_and_report", broken)
    done = effnet(capfd, "fit", "--trainer.default_root_dir", str(tmp_path / "runs"))
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert done.stderr.strip().splitlines()[-2:] == [
        "effnet fit: no run folder was written",
        "effnet fit: crashed with KeyError (traceback above)",
    ]
    assert not (tmp_path / "runs").exists()
