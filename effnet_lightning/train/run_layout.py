"""The layout of a run folder on disk: the one place its names are written.

    <trainer.default_root_dir, default runs>/version_N/        one folder per training run (run_dir.py)
        config.yaml                                          the resolved config (LightningCLI's SaveConfigCallback)
        run.lock                                             held while a fit trains there (run_dir.py)
        checkpoints/last.ckpt                                the file a stopped run resumes from (LastCheckpoint)
        checkpoints/best-*.ckpt                              ModelCheckpoint's best-k files
        eval/version_N/                                      validate/test/predict on one of its checkpoints
        events.out.tfevents.*                                TensorBoard

Light to import (no torch): `effnet` reports a crash's run folder with it.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = [
    "CHECKPOINTS",
    "CONFIG",
    "EVAL_DIR",
    "LAST",
    "LOCK",
    "RUNS_DIR",
    "VERSION",
    "VERSION_GLOB",
    "checkpoints_dir",
    "last_checkpoint",
    "last_checkpoints",
    "run_of_checkpoint",
    "version_dir",
]

RUNS_DIR = "runs"  # trainer.default_root_dir when a config names none
VERSION = re.compile(r"version_(\d+)$")  # a run folder's name; N counts up from 0 per root folder
VERSION_GLOB = "version_*"
CONFIG = "config.yaml"
LOCK = "run.lock"
CHECKPOINTS = "checkpoints"  # the folder inside the run folder, as for Lightning's ModelCheckpoint
LAST = "last.ckpt"
EVAL_DIR = "eval"  # validate/test/predict on a run's checkpoint write into <run>/eval/version_N/


def version_dir(root: str | Path, version: int) -> Path:
    """`root/version_N`."""
    return Path(root) / f"version_{version}"


def checkpoints_dir(run: str | Path) -> Path:
    """`<run>/checkpoints`."""
    return Path(run) / CHECKPOINTS


def last_checkpoint(run: str | Path) -> Path:
    """`<run>/checkpoints/last.ckpt`."""
    return checkpoints_dir(run) / LAST


def last_checkpoints(root: str | Path, runs: str = "*") -> list[Path]:
    """Every `<root>/<run>/checkpoints/last.ckpt` (run folders matching the glob `runs`), oldest first by mtime."""
    return sorted(Path(root).glob(f"{runs}/{CHECKPOINTS}/{LAST}"), key=lambda p: p.stat().st_mtime)


def run_of_checkpoint(ckpt: str | Path) -> Path | None:
    """The run folder of `<run>/checkpoints/x.ckpt`; None for a checkpoint outside a run's checkpoints/."""
    ckpt = Path(ckpt)
    return ckpt.parent.parent if ckpt.parent.name == CHECKPOINTS else None
