"""What `--ckpt_path` names, and which run directory a resumed `effnet fit` keeps writing into.

Every run writes into its own folder `<trainer.default_root_dir>/version_N/` (config.yaml, checkpoints/, events),
so Lightning's own `ckpt_path="last"`, which only looks into the new run's empty checkpoints/ folder, would
silently start from scratch. Here `--ckpt_path` may be:
- `last`: the newest `*/checkpoints/last.ckpt` under `trainer.default_root_dir` (by modification time: the run
  that was training most recently);
- a run directory (`runs/version_3`): its `checkpoints/last.ckpt`;
- a checkpoint file; if it lies in `<run>/checkpoints/`, that run is the one resumed;
- Lightning's other special values (`best`, `hpc`, URLs), passed through unchanged.
A resumed `fit` logs into the run it resumes, so one run keeps one folder however often it was preempted.
"""

from __future__ import annotations

from pathlib import Path

LAST = "last.ckpt"  # ModelCheckpoint.CHECKPOINT_NAME_LAST + FILE_EXTENSION
CHECKPOINTS = "checkpoints"  # the folder ModelCheckpoint uses inside the logger's log_dir


def resolve_ckpt_path(ckpt_path: str, runs_dir: str | Path) -> tuple[str, Path | None]:
    """(the checkpoint to load, the run directory it belongs to or None). Raises FileNotFoundError with what to do."""
    if ckpt_path in ("best", "hpc") or "://" in ckpt_path or ckpt_path.startswith("registry"):
        return ckpt_path, None
    if ckpt_path == "last":
        candidates = sorted(Path(runs_dir).glob(f"*/{CHECKPOINTS}/{LAST}"), key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise FileNotFoundError(
                f"no checkpoint to resume in {runs_dir}/ (no run has {CHECKPOINTS}/{LAST}); start without --ckpt_path"
            )
        return str(candidates[-1]), candidates[-1].parent.parent
    path = Path(ckpt_path)
    if path.is_dir():
        if not (path / CHECKPOINTS / LAST).is_file():
            raise FileNotFoundError(
                f"no checkpoint to resume in {path} (no {CHECKPOINTS}/{LAST}); start without --ckpt_path, "
                "or pass a .ckpt file"
            )
        return str(path / CHECKPOINTS / LAST), path
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; pass a .ckpt file, a run directory or 'last'")
    return str(path), path.parent.parent if path.parent.name == CHECKPOINTS else None
