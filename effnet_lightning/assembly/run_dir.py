"""Run folders: `<root>/version_N/`, created atomically, and locked while a process trains in them.

- Two runs starting at once must not share a folder: `create_run_dir` takes the first free `version_N` with
  `mkdir`, which fails if the folder exists, and tries N+1 then. Only the winner writes there.
- `--ckpt_path last` must never pick a run that is still training: the training process holds an
  exclusive `flock` on `<run>/run.lock` (which also names its host and pid). The kernel drops the lock when the
  process dies, even by kill -9, so a stale lock file is never mistaken for a live run. On filesystems without
  flock (some NFS set-ups) the lock cannot be taken and runs are treated as not live.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import IO

from effnet_lightning.errors import UserError
from effnet_lightning.train.run_layout import CONFIG, LOCK, VERSION, version_dir

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are never reported live
    fcntl = None  # type: ignore[assignment]

__all__ = ["RootIsAFile", "RunIsLive", "RunLock", "create_run_dir", "discard_if_unused", "is_live"]


class RunIsLive(UserError, OSError):
    """Another process is training in this run folder."""


class RootIsAFile(UserError, NotADirectoryError):
    """The folder meant to hold runs is a file."""


def create_run_dir(root: str | Path) -> Path:
    """Create and return the first free `root/version_N` (atomic: a folder another run made is skipped)."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise RootIsAFile(f"trainer.default_root_dir {root} is a file; point it at a folder")
    root.mkdir(parents=True, exist_ok=True)
    taken = [int(m.group(1)) for p in root.iterdir() if (m := VERSION.match(p.name))]
    version = max(taken, default=-1) + 1
    while True:
        candidate = version_dir(root, version)
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            version += 1


def discard_if_unused(run: Path, root_is_new: bool = False) -> None:
    """Remove a run folder that a failed start left without any result (only its lock and config), and the root
    folder if this start created it and it is empty: a typo in a config must not leave an empty `version_N`
    behind for every try. Anything else is kept."""
    leftovers = {LOCK, CONFIG}
    if run.is_dir() and all(p.name in leftovers and p.is_file() for p in run.iterdir()):
        for name in leftovers:
            (run / name).unlink(missing_ok=True)
        run.rmdir()
        if root_is_new:
            with contextlib.suppress(OSError):  # not empty: another run started there meanwhile
                run.parent.rmdir()


class RunLock:
    """An exclusive lock on `<run>/run.lock`, held while this process trains in the run."""

    def __init__(self, run: Path) -> None:
        self.run = run
        self._file: IO[str] | None = None

    def acquire(self) -> RunLock:
        """Raises `RunIsLive` if another process holds the lock."""
        if fcntl is None:
            return self
        file = open(self.run / LOCK, "a+")  # noqa: SIM115 - held open for the whole run
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            file.seek(0)
            owner = file.read().strip() or "another process"
            file.close()
            raise RunIsLive(f"run {self.run} is still training ({owner}); stop it first or resume another run") from err
        file.seek(0)
        file.truncate()
        file.write(f"host {socket.gethostname()} pid {os.getpid()}\n")
        file.flush()
        self._file = file
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None


def is_live(run: Path) -> bool:
    """Whether a process holds `run`'s lock now."""
    if fcntl is None or not (run / LOCK).is_file():
        return False
    with open(run / LOCK) as file:
        try:
            fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(file, fcntl.LOCK_UN)
    return False
