"""Checkpoint writes that a crash or power cut cannot corrupt: temp file in the same folder, fsync, rename.

Lightning's `TorchCheckpointIO` writes through an fsspec transaction. For local paths fsspec puts the temporary
file in the system temp folder (`tempfile.mkstemp()` without `dir`) and commits with `shutil.move`. When that
folder is on another filesystem (a tmpfs /tmp, a Docker volume for runs/), the move falls back to copying
*into* the existing `last.ckpt`, truncating it first: a kill during the copy leaves a torn file where the last
good checkpoint was (reproduced in tests/test_checkpoint_io.py). Nothing is fsynced either, so after a power cut
the renamed file can be empty. Here the temporary file sits next to the target, so `os.replace` is one atomic
rename, and data and directory entry are flushed to disk first. Remote paths (s3://, gs://) keep Lightning's
behaviour: object stores publish an upload only once it is complete.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO
from typing_extensions import override


class AtomicCheckpointIO(TorchCheckpointIO):
    """`TorchCheckpointIO` with atomic, durable local writes; the previous file stays intact until the new
    one is complete on disk."""

    @override
    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if storage_options is not None or not _is_local_file_protocol(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")  # hidden: not taken for a "last*" file
        try:
            with open(temporary, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        fsync_directory(path.parent)


def fsync_directory(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX; Windows cannot open a folder for fsync)."""
    if os.name != "posix":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
