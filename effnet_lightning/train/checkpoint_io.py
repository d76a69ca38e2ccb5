"""Checkpoint writes that a crash or power cut cannot corrupt: temp file in the same folder, fsync, rename.

Lightning's `TorchCheckpointIO` writes through an fsspec transaction. For local paths fsspec puts the temporary
file in the system temp folder (`tempfile.mkstemp()` without `dir`) and commits with `shutil.move`. When that
folder is on another filesystem (a tmpfs /tmp, a Docker volume for runs/), the move falls back to copying
*into* the existing `last.ckpt`, truncating it first: a kill during the copy leaves a torn file where the last
good checkpoint was (seen with Lightning 2.6 and fsspec 2025). Nothing is fsynced either, so after a power cut
the renamed file can be empty. Here the temporary file sits next to the target, so `os.replace` is one atomic
rename, and data and directory entry are flushed to disk first. Remote paths (s3://, gs://) keep Lightning's
behaviour: object stores publish an upload only once it is complete.

Two more guarantees for every write (last.ckpt and best-k alike):
- a checkpoint whose weights, buffers or optimizer state hold NaN/inf is refused (`NonFiniteStateError`), so a diverged
  run can never replace a good file;
- a full disk says "no space left on <folder>" (a `DiskFullError`, which `effnet` reports in one line) and the
  previous file stays intact.
A kill -9 during a write leaves `.<name>.tmp-<pid>`; `remove_stale_temporaries` deletes those on the next start.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from fsspec.utils import get_protocol
from lightning.pytorch.plugins.io import TorchCheckpointIO
from typing_extensions import override

from effnet_lightning.errors import DiskFullError, is_disk_full
from effnet_lightning.train.finite import NonFiniteStateError, nonfinite_names

__all__ = ["AtomicCheckpointIO", "fsync_directory", "remove_stale_temporaries"]

CHECKED = ("state_dict", "optimizer_states")  # weights, buffers, optimizer moments (callback states may hold
# legitimate infinities, e.g. ModelCheckpoint's kth_value before the first best-k file)
TEMPORARY = ".{name}.tmp-{pid}"  # hidden: never taken for a checkpoint by a glob for "*.ckpt" or "last*"


class AtomicCheckpointIO(TorchCheckpointIO):
    """`TorchCheckpointIO` with atomic, durable local writes; the previous file stays intact until the new
    one is complete on disk."""

    @override
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or get_protocol(str(path)) != "file":
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        bad = nonfinite_names({k: checkpoint.get(k) for k in CHECKED})
        if bad:
            raise NonFiniteStateError(
                f"refused to write {path}: {len(bad)} tensors hold NaN/inf (e.g. {', '.join(bad[:3])}); "
                "the previous file is kept."
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(TEMPORARY.format(name=path.name, pid=os.getpid()))
        try:
            with open(temporary, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException as err:
            temporary.unlink(missing_ok=True)
            if is_disk_full(err):  # torch.save reports it as a RuntimeError wrapping the write's OSError
                raise DiskFullError(
                    f"no space left on {path.parent} while writing {path.name}; the previous "
                    "file is intact. Free space (or point trainer.default_root_dir elsewhere) and resume"
                ) from err
            raise
        fsync_directory(path.parent)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete `.*.tmp-<pid>` files that a kill -9 during a write left in `folder` (each up to a full checkpoint).

    Only the run that owns the folder calls this (the run lock keeps a second live run out)."""
    removed = []
    for temporary in folder.glob(TEMPORARY.format(name="*", pid="*")) if folder.is_dir() else ():
        if temporary.name.rsplit("-", 1)[-1] != str(os.getpid()):
            temporary.unlink(missing_ok=True)
            removed.append(temporary)
    return removed


def fsync_directory(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX; Windows cannot open a folder for fsync)."""
    if os.name != "posix":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
