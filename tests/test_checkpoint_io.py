"""Atomic checkpoint writes: a crash while writing leaves the previous last.ckpt intact and loadable."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from effnet_lightning.checkpoint_io import AtomicCheckpointIO


def checkpoint(step: int) -> dict:
    return {"global_step": step, "state_dict": {"w": torch.full((256, 256), float(step))}}  # 256 KiB of weights


def crash_partway(monkeypatch: pytest.MonkeyPatch, target, name: str) -> None:
    """`target.name(src, dst)` writes half of what it should to `dst`, then the process 'dies'."""

    def half_then_die(source, destination, *args, **kwargs):
        data = source.read() if hasattr(source, "read") else Path(source).read_bytes()
        (destination.write if hasattr(destination, "write") else Path(destination).write_bytes)(data[: len(data) // 2])
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(target, name, half_then_die)


def test_crash_during_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    last = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint(checkpoint(1), last)

    def torch_save_half(obj, file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a zip archive")
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(torch, "save", torch_save_half)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint(checkpoint(2), last)
    monkeypatch.undo()

    loaded = io.load_checkpoint(last, weights_only=True)
    assert loaded["global_step"] == 1 and torch.equal(loaded["state_dict"]["w"], checkpoint(1)["state_dict"]["w"])
    assert os.listdir(last.parent) == ["last.ckpt"]  # no temporary file left behind
    io.save_checkpoint(checkpoint(2), last)
    assert io.load_checkpoint(last, weights_only=True)["global_step"] == 2


def test_write_is_flushed_to_disk_before_and_after_the_rename(tmp_path, monkeypatch):
    synced: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd)))
    AtomicCheckpointIO().save_checkpoint(checkpoint(1), tmp_path / "last.ckpt")
    assert Path(synced[0]).name.startswith(".last.ckpt.tmp-")  # the data, before it replaces last.ckpt
    assert Path(synced[1]) == tmp_path  # the directory entry of the rename


def test_lightning_default_io_tears_last_ckpt_across_filesystems(tmp_path, monkeypatch):
    """Why AtomicCheckpointIO exists: Lightning's write goes through fsspec, whose temporary file lies in the
    system temp folder; when that is another filesystem (rename fails with EXDEV, as for a tmpfs /tmp or a
    Docker volume), shutil.move copies into the existing last.ckpt, and a kill during the copy tears it."""
    last = tmp_path / "last.ckpt"
    TorchCheckpointIO().save_checkpoint(checkpoint(1), last)

    def cross_device(source, destination):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "rename", cross_device)
    crash_partway(monkeypatch, shutil, "_fastcopy_sendfile")
    with pytest.raises(KeyboardInterrupt):
        TorchCheckpointIO().save_checkpoint(checkpoint(2), last)
    monkeypatch.undo()
    with pytest.raises(RuntimeError):  # the previous good checkpoint is gone: a truncated zip
        torch.load(last, weights_only=True)
