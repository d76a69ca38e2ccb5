"""Untrusted files: checkpoints load weights-only, archives cannot write outside the data directory."""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import shutil
import sys
import tarfile
from pathlib import Path

import pytest
import torch
from effnet_run import debug_args
from torchvision.datasets import CIFAR10

from effnet_lightning.cli import main
from effnet_lightning.datamodules.cifar10 import CIFAR10DataModule
from effnet_lightning.train.checkpoint_format import load_checkpoint


class OpensAFile:
    """Unpickling this creates `path`: what a malicious checkpoint or pickle would do, harmlessly."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def tiny_config(path: Path, data_dir: Path, runs: Path) -> Path:
    path.write_text(
        f"""
trainer: {{accelerator: cpu, max_epochs: 1, default_root_dir: {runs}, enable_progress_bar: false}}
model: {{scaling: {{phi: -4, resolution: 32}}}}
data:
  class_path: CIFAR10DataModule
  init_args: {{data_dir: {data_dir}, val_size: 100, batch_size: 50, num_workers: 0}}
"""
    )
    return path


@pytest.mark.parametrize("where", ["hyper_parameters", "state_dict"])
def test_fit_refuses_a_checkpoint_that_would_run_code(cifar10_root, tmp_path, capsys, monkeypatch, where):
    monkeypatch.setattr(sys, "argv", ["effnet"])
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    payload = {"state_dict": {}, "hyper_parameters": {"scaling": {"phi": -4}}}
    payload[where] = {"x": OpensAFile(marker)}
    torch.save(payload, evil)
    config = tiny_config(tmp_path / "tiny.yaml", cifar10_root, tmp_path / "runs")
    assert main(["fit", "--config", str(config), "--ckpt_path", str(evil)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"effnet fit: error: {evil} holds Python objects that weights-only loading refuses")
    assert "Pass --weights_only false only if you trust where it came from" in error and "\n" not in error
    assert not marker.exists()


def test_weights_only_false_loads_a_trusted_checkpoint_with_objects(
    cifar10_root, trained_run, tmp_path, capsys, monkeypatch
):
    """A checkpoint that names a harmless non-tensor global (an argparse Namespace) is refused by default and accepted
    with --weights_only false, through LightningCLI's own weights-only read of its hyperparameters too."""
    monkeypatch.setattr(sys, "argv", ["effnet"])
    run = tmp_path / "copied" / "version_0"  # the session's run (conftest.py), copied: validating writes into it
    shutil.copytree(trained_run, run)
    checkpoint = load_checkpoint(run / "checkpoints" / "last.ckpt")
    checkpoint["extra"] = argparse.Namespace(steps=1)  # e.g. the args of a script that trained it
    torch.save(checkpoint, run / "checkpoints" / "objects.ckpt")
    data = debug_args(cifar10_root, tmp_path / "runs")  # the options it was trained with
    evaluate = ["validate", *data, "--ckpt_path", str(run / "checkpoints" / "objects.ckpt")]
    capsys.readouterr()
    assert main(evaluate) == 2
    assert "holds Python objects" in capsys.readouterr().err
    assert main([*evaluate, "--weights_only", "false"]) == 0
    assert argparse.Namespace not in torch.serialization.get_safe_globals()  # trusted for that command only


def good_checkpoint_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "global_step": 1}, path)
    return path.read_bytes()


@pytest.mark.parametrize("damage", ["empty", "truncated", "random bytes"])
def test_a_corrupt_checkpoint_is_called_corrupt_not_unsafe(cifar10_root, tmp_path, capsys, monkeypatch, damage):
    """Before: a random file was reported as "holds Python objects ... pass --weights_only false", which pushes
    users to turn off the safety check for a file that is simply damaged."""
    monkeypatch.setattr(sys, "argv", ["effnet"])
    bad = tmp_path / "bad.ckpt"
    content = {
        "empty": b"",
        "truncated": good_checkpoint_bytes(tmp_path)[:-300],
        "random bytes": bytes(range(256)) * 40,
    }[damage]
    bad.write_bytes(content)
    config = tiny_config(tmp_path / "tiny.yaml", cifar10_root, tmp_path / "runs")
    assert main(["fit", "--config", str(config), "--ckpt_path", str(bad)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"effnet fit: error: {bad} is not a valid checkpoint (corrupt") and error.count("\n") == 1
    assert "weights_only" not in error


def malicious_cifar_archive(folder: Path) -> bytes:
    """A .tar.gz with a member '../evil' next to the real-looking folder."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in [("cifar-10-batches-py/readme.html", b"hello"), ("../evil", b"outside")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), mtime=0)


def test_archive_member_cannot_escape_the_data_directory(tmp_path, monkeypatch, tarfile_flavour):
    data_dir = tmp_path / "data" / "cifar10"
    data_dir.mkdir(parents=True)
    archive = malicious_cifar_archive(data_dir)
    (data_dir / CIFAR10.filename).write_bytes(archive)
    monkeypatch.setattr(CIFAR10, "tgz_md5", hashlib.md5(archive).hexdigest())  # as if the mirror were hostile
    with pytest.raises(OSError, match=r"Refused to extract .*cifar-10-python.tar.gz.*outside the destination"):
        CIFAR10DataModule(str(data_dir), download=True).prepare_data()
    assert not (data_dir.parent / "evil").exists() and not (tmp_path / "evil").exists()
