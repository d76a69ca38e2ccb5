"""What `--ckpt_path` names, which run folder a resumed `effnet fit` keeps writing into, and whether the
checkpoint was trained with the settings given now.

Every run writes into its own folder `<trainer.default_root_dir>/version_N/` (config.yaml, checkpoints/, events),
so Lightning's own `ckpt_path="last"`, which only looks into the new run's empty checkpoints/ folder, would
silently start from scratch. Here `--ckpt_path` may be:
- `last`: the newest `*/checkpoints/last.ckpt` under `trainer.default_root_dir` (by modification time) of a
  run that is not training now (run_dir.py's lock): a live run is never picked;
- a run folder (`runs/version_3`): its `checkpoints/last.ckpt`;
- a checkpoint file; if it lies in `<run>/checkpoints/`, that run is the one resumed;
- Lightning's other special values (`best`, `hpc`, URLs), passed through unchanged.
`fit` refuses to resume a run that is training now. The CLI states the pick in one line.

A checkpoint continues only with the settings it was trained with (`check_compatible`): the model's are in the
checkpoint's hyperparameters, the data's in its run's config.yaml. Only those in `RESUME_MAY_CHANGE` may differ;
any other difference stops the command with one line that lists them all.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import Namespace

from effnet_lightning.assembly.run_dir import RunIsLive, is_live
from effnet_lightning.errors import ConfigError, MissingFileError
from effnet_lightning.train.run_layout import (
    CHECKPOINTS,
    CONFIG,
    LAST,
    last_checkpoint,
    last_checkpoints,
    run_of_checkpoint,
)

__all__ = ["RESUME_MAY_CHANGE", "best_k_dirpath", "check_compatible", "explicit_values", "resolve_ckpt_path"]

RESUME_MAY_CHANGE = {  # settings a resumed fit may change; any other model/data difference stops it (exit 2)
    # num_classes: linked from the data; channels_last, checkpointing and compile change speed or memory only
    "model": {"lr", "weight_decay", "num_classes", "channels_last", "grad_checkpointing", "compile", "compile_backend"},
    "data": {
        "data_dir",
        "num_workers",
        "pin_memory",
        "persistent_workers",
        "download",
        "resolution",  # linked from the model
        "seed",  # linked from seed_everything; the checkpoint's data position carries the seed it was trained with
    },
}


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


def check_compatible(
    path: str,
    run: Path | None,
    checkpoint: dict[str, Any],
    model_given: dict[str, Any],
    data_given: Namespace | None,
    check_data: bool,
) -> None:
    """Raise ConfigError naming every setting given now that differs from what `checkpoint` was trained with:
    the model settings in `model_given` (those set by the user, `explicit_values`; one left at its default takes
    the checkpoint's value, as in LightningCLI) and, with `check_data` (fit), every data setting."""
    differing = _differing_keys(model_given, data_given, _recorded_config(run, checkpoint), check_data)
    if differing:
        raise ConfigError(
            f"{path} was trained with other settings: {'; '.join(differing)}. Resume with the config it was "
            f"trained with ({run / CONFIG if run else 'its run folder has it'}), changing at most "
            "model.lr, model.weight_decay or trainer limits, or start a new run without --ckpt_path"
        )


def best_k_dirpath(checkpoint: dict[str, Any]) -> str | None:
    """The folder a ModelCheckpoint saved into, from its `state_dict()` in the checkpoint's callback states."""
    for state in checkpoint.get("callbacks", {}).values():
        if isinstance(state, dict) and "best_k_models" in state and isinstance(state.get("dirpath"), str):
            return state["dirpath"]
    return None


def explicit_values(values: dict[str, Any], cls: type) -> dict[str, Any]:
    """The constructor arguments whose value differs from the class's default (i.e. were set by the user)."""
    parameters = inspect.signature(cls.__init__).parameters
    return {k: v for k, v in values.items() if k in parameters and v != _plain(parameters[k].default)}


def _recorded_config(run: Path | None, checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The settings the checkpoint was trained with: the model's from the checkpoint, the data's from the run's
    config.yaml (datamodules save no hyperparameters)."""
    hparams = checkpoint.get("hyper_parameters") or {}
    recorded: dict[str, Any] = {"model": {key: _plain(value) for key, value in hparams.items()}}
    config_file = run / CONFIG if run else None
    if config_file is not None and config_file.is_file():
        recorded["data"] = (yaml.safe_load(config_file.read_text()) or {}).get("data")
    return recorded


def _differing_keys(
    model_given: dict[str, Any], data_given: Namespace | None, recorded: dict[str, Any], check_data: bool
) -> list[str]:
    """`model.x: checkpoint A, now B` for every model setting given that differs, and with `check_data` for every
    differing data setting."""
    differing = []
    for key, value in model_given.items():
        if key in recorded["model"] and key not in RESUME_MAY_CHANGE["model"]:
            differing += _differences(f"model.{key}", recorded["model"][key], value)
    data_then = recorded.get("data")
    if check_data and isinstance(data_then, dict) and isinstance(data_given, Namespace):
        data_now = data_given.as_dict()
        if data_then.get("class_path") != data_now.get("class_path"):
            differing.append(
                f"data.class_path: checkpoint {data_then.get('class_path')}, now {data_now.get('class_path')}"
            )
        else:
            then, now = data_then.get("init_args") or {}, data_now.get("init_args") or {}
            for key in sorted(set(then) | set(now)):
                if key not in RESUME_MAY_CHANGE["data"] and _comparable(then.get(key)) != _comparable(now.get(key)):
                    differing.append(f"data.{key}: checkpoint {then.get(key)!r}, now {now.get(key)!r}")
    return differing


def _differences(key: str, then: Any, now: Any) -> list[str]:
    """`key: checkpoint A, now B`, one per differing leaf of a nested section (`model.scaling.phi: ...`)."""
    if isinstance(then, dict) and isinstance(now, dict):
        return [d for k in sorted(set(then) | set(now)) for d in _differences(f"{key}.{k}", then.get(k), now.get(k))]
    return [] if _comparable(then) == _comparable(now) else [f"{key}: checkpoint {then!r}, now {now!r}"]


def _comparable(value: Any) -> Any:
    """A setting as config.yaml holds it: YAML has no tuples, so a parsed `scale: (0.08, 1.0)` reads back as a list."""
    if isinstance(value, tuple | list):
        return [_comparable(v) for v in value]
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    return value


def _plain(value: Any) -> Any:
    """A dataclass (the `scaling` section's ScalingSpec) as the dict a parsed config holds."""
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
