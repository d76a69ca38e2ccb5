"""What `--ckpt_path` names, and which run folder a resumed `effnet fit` keeps writing into.

Every run writes into its own folder `<trainer.default_root_dir>/version_N/` (config.yaml, checkpoints/, events),
so Lightning's own `ckpt_path="last"`, which only looks into the new run's empty checkpoints/ folder, would
silently start from scratch. Here `--ckpt_path` may be:
- `last`: the newest `*/checkpoints/last.ckpt` under `trainer.default_root_dir` (by modification time) of a
  run that is not training now (run_dir.py's lock): a live run is never picked;
- a run folder (`runs/version_3`): its `checkpoints/last.ckpt`;
- a checkpoint file; if it lies in `<run>/checkpoints/`, that run is the one resumed;
- Lightning's other special values (`best`, `hpc`, URLs), passed through unchanged.
`fit` refuses to resume a run that is training now. The CLI states the pick in one line.
"""

from __future__ import annotations

from pathlib import Path

from effnet_lightning.assembly.run_dir import RunIsLive, is_live
from effnet_lightning.errors import MissingFileError
from effnet_lightning.train.run_layout import CHECKPOINTS, LAST, last_checkpoint, last_checkpoints, run_of_checkpoint

__all__ = ["resolve_ckpt_path"]


def resolve_ckpt_path(ckpt_path: str, runs_dir: str | Path, fit: bool = True) -> tuple[str, Path | None]:
    """(the checkpoint to load, the run folder it belongs to or None). Raises MissingFileError or RunIsLive with
    what to do."""
    if ckpt_path in ("best", "hpc") or "://" in ckpt_path or ckpt_path.startswith("registry"):
        return ckpt_path, None
    if ckpt_path == "last":
        candidates = last_checkpoints(runs_dir)
        if not candidates:
            raise MissingFileError(
                f"no checkpoint to resume in {runs_dir}/ (no run has {CHECKPOINTS}/{LAST}); start without --ckpt_path"
            )
        idle = [c for c in candidates if not is_live(c.parent.parent)]
        if not idle:
            raise RunIsLive(
                f"every run with a {CHECKPOINTS}/{LAST} in {runs_dir}/ is still training; pass a run folder or "
                "a .ckpt file, or wait for it to stop"
            )
        return str(idle[-1]), idle[-1].parent.parent
    path = Path(ckpt_path)
    if path.is_dir():
        if not last_checkpoint(path).is_file():
            raise MissingFileError(
                f"no checkpoint to resume in {path} (no {CHECKPOINTS}/{LAST}); start without --ckpt_path, "
                "or pass a .ckpt file"
            )
        path, run = last_checkpoint(path), path
    elif path.is_file():
        run = run_of_checkpoint(path)
    else:
        raise MissingFileError(f"checkpoint {path} does not exist; pass a .ckpt file, a run folder or 'last'")
    if fit and run is not None and is_live(run):
        raise RunIsLive(f"run {run} is still training; stop it first, or start a new run from a copy of {path}")
    return str(path), run
