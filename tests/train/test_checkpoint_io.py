"""Checkpoint writes: atomic (a crash or a full disk leaves the previous file intact and loadable), never with
NaN/inf weights, and the temporaries a kill -9 left are cleaned up."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch

from effnet_lightning.train.checkpoint_io import AtomicCheckpointIO, remove_stale_temporaries
from effnet_lightning.train.finite import NonFiniteStateError


def checkpoint(step: int) -> dict:
    return {"global_step": step, "state_dict": {"w": torch.full((256, 256), float(step))}}  # 256 KiB of weights


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


def test_disk_full_says_where_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """Before: a RuntimeError from torch's zip writer ("unexpected pos ...") with a traceback."""
    last = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint(checkpoint(1), last)
    real_save = torch.save

    def save_onto_a_full_disk(obj, file, *args, **kwargs):
        class Full:  # the file object torch writes through: the disk fills after 64 KiB
            written = 0

            def write(self, data):
                Full.written += len(data)
                if Full.written > 65536:
                    raise OSError(errno.ENOSPC, "No space left on device")
                return file.write(data)

            def flush(self):
                file.flush()

        real_save(obj, Full(), *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_onto_a_full_disk)
    with pytest.raises(OSError, match=f"no space left on {last.parent} while writing last.ckpt; the previous file"):
        io.save_checkpoint(checkpoint(2), last)
    monkeypatch.undo()
    assert io.load_checkpoint(last, weights_only=True)["global_step"] == 1
    assert os.listdir(last.parent) == ["last.ckpt"]


@pytest.mark.parametrize("where", ["state_dict", "optimizer_states"])
def test_a_checkpoint_with_nan_or_inf_is_never_written(tmp_path, where):
    last = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint(checkpoint(1), last)
    broken = checkpoint(2)
    broken[where] = {"bn.running_var": torch.tensor([1.0, float("inf")])}
    with pytest.raises(NonFiniteStateError, match=rf"refused to write {last}: 1 tensors hold NaN/inf"):
        io.save_checkpoint(broken, last)
    assert io.load_checkpoint(last, weights_only=True)["global_step"] == 1
    io.save_checkpoint({**checkpoint(3), "callbacks": {"best_k": {"kth_value": torch.tensor(float("-inf"))}}}, last)


def test_temporaries_left_by_kill_9_are_removed_on_the_next_start(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    stale = [folder / ".last.ckpt.tmp-4242", folder / ".best-epoch1-step10.ckpt.tmp-77"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    (folder / "last.ckpt").write_bytes(b"kept")
    ours = folder / f".last.ckpt.tmp-{os.getpid()}"  # a write of this process in flight
    ours.write_bytes(b"")
    assert sorted(remove_stale_temporaries(folder)) == sorted(stale)
    assert sorted(p.name for p in folder.iterdir()) == sorted(["last.ckpt", ours.name])
