"""`effnet study table7|family|grid --config BASE.yaml [--section.key value ...]`: the paper's question, asked fairly.

Does compound scaling beat depth-, width- or resolution-only scaling at the same cost, and where do returns
diminish? Every arm is a normal `effnet fit` of the same base config and overrides; only `model.scaling`
differs. The arms are planned at counted costs (plan.py), trained at `--seeds` paired seeds (launch.py),
evaluated on the test split with the checkpoint validation selected (evaluation.py), and judged with paired
confidence intervals (verdict.py); results.md opens with the answer in words (report.py).

`--dry-run` plans without training: `<study folder>/plan.csv` and a printed table with an estimated wall time.
Folders (layout.py): `<trainer.default_root_dir>/study-NAME/` holds study.yaml (what was asked, with the config's
content hash), one folder per arm with one per seed (`<arm>/seed<k>/version_N/`, result.json once evaluated),
the arm's cost.json, results.csv, runs.csv, comparisons.csv, results.md, the plots (PNG) and their TensorBoard
events. Re-running the same command skips finished units and resumes an interrupted one from its last.ckpt;
changing only how it runs (--devices, --launcher, --bench-steps, --gpus, --partition, --time, --seeds) is the
same study; a changed config file or option is refused with the first difference named.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from effnet_lightning.console import output
from effnet_lightning.errors import ConfigError, MissingFileError
from effnet_lightning.model import scaling as sc
from effnet_lightning.model.solve import parse_count
from effnet_lightning.study import launch, layout
from effnet_lightning.study import plan as planning
from effnet_lightning.study.evaluation import Trained, bench_setting
from effnet_lightning.train.run_layout import RUNS_DIR

__all__ = ["KINDS", "LAUNCH_OPTIONS", "FitSettings", "StudyError", "build_parser", "main"]

log = logging.getLogger(__name__)

KINDS = ("table7", "family", "grid")
# how a study runs, not what it is: a re-run that changes only these resumes the same study
LAUNCH_OPTIONS = ("devices", "launcher", "bench_steps", "gpus", "partition", "time", "seeds", "dry_run")
DEFAULT_SEEDS = 3  # the fewest that give a paired interval with some width


class StudyError(ConfigError):
    """A mistake in the study command: one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise StudyError(f"{message} (see 'effnet study --help')")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number such as 3, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="effnet study",
        allow_abbrev=False,  # a fit override must never be taken for an abbreviated study option
        description="Train one arm per scaling with the same recipe (effnet fit) at paired seeds, evaluate each on "
        "the test split and judge the differences with confidence intervals. Options not listed here "
        "(--section.key value) are fit overrides applied to every arm; fit's parser checks them first.",
    )
    p.add_argument("kind", help=f"one of {', '.join(KINDS)}")
    p.add_argument("--config", required=True, help="the base fit config (recipe, data, trainer, base scaling)")
    p.add_argument("--name", help="study folder name under trainer.default_root_dir: study-NAME (default: KIND)")
    p.add_argument(
        "--seeds",
        type=_positive_int,
        default=DEFAULT_SEEDS,
        help="seeds per arm; seed k gives every arm the same init and data order (default %(default)s)",
    )
    p.add_argument("--dry-run", action="store_true", help="plan only: write plan.csv, print it with an estimated time")
    p.add_argument("--target-macs", nargs="+", help="table7: budget(s) to match, e.g. 1.2G (default: base at phi=1)")
    p.add_argument(
        "--budgets",
        nargs="+",
        type=float,
        metavar="PHI",
        help="table7: budgets as the base compound-scaled by these phi; every method at each",
    )
    p.add_argument("--variants", nargs="+", help="family: official variants b0..b7 applied to the base")
    p.add_argument("--phi", nargs="+", type=float, help="family: compound coefficients from the base")
    p.add_argument("--coefficients", help="family --phi: a YAML file with alpha, beta, gamma (grid writes one)")
    p.add_argument("--tolerance", type=float, default=0.05, help="grid: |a*b^2*g^2 - 2| / 2 at most (default 5%%)")
    p.add_argument("--grid", nargs="+", type=float, default=list(planning.GRID_STEPS), help="grid: candidate values")
    p.add_argument("--num-classes", type=int, default=1000, help="classifier size for params/MACs (effnet scale's)")
    p.add_argument("--require-test", action="store_true", help="refuse a datamodule without a test split")
    p.add_argument("--devices", type=int, default=1, help="local GPUs: N > 1 runs one unit per GPU at a time")
    p.add_argument(
        "--launcher",
        choices=("inprocess", "slurm", "local"),
        default="inprocess",
        help="slurm: one submitit job per unit (requeued on exit 75); local: the same jobs as processes "
        "on this machine (submitit's LocalExecutor), a dry run of the slurm path",
    )
    p.add_argument("--partition", help="slurm partition")
    p.add_argument("--time", type=int, default=24 * 60, help="slurm time limit per unit, minutes (default %(default)s)")
    p.add_argument("--gpus", type=int, default=1, help="slurm GPUs per job (trainer.devices should match)")
    p.add_argument("--bench-steps", type=int, default=3, help="timed benchmark steps per arm (0: skip)")
    return p


def main(argv: Sequence[str]) -> int | None:
    """The study command. A mistake found before anything trains raises a UserError (one line, exit 2); `--help`
    exits through argparse. Returns None when the study ended or the dry run planned it, else the exit code the
    study decided: 75/130 when a signal stopped a unit (the same command resumes it), 1 when every unit failed
    (each unit's error.log says why)."""
    args, overrides = build_parser().parse_known_args(list(argv))
    _check_overrides(overrides)
    config_path = Path(args.config)
    base_config = _load_config(config_path)
    fit = FitSettings.read(base_config, overrides)
    plan = make_plan(args, _base_scaling(base_config))
    folder = layout.study_folder(fit.root, args.name or args.kind)
    units = [launch.Unit(arm, k, fit.base_seed + k) for k in range(args.seeds) for arm in plan.arms]  # pairs first
    elsewhere = args.launcher == "slurm"
    trained, (datamodule, trainer) = launch.check_fit(args.config, overrides, units[0], fit.base_seed, elsewhere)
    if elsewhere:  # each job trains on --gpus devices of its node: device-hours count those
        trained = replace(trained, devices=args.gpus)
    if args.require_test and not trained.has_test:
        raise StudyError(
            f"--require-test: the datamodule of {args.config} has no test split of its own (its test would use the "
            "validation images); give it one, or leave out --require-test"
        )
    if not trained.has_test:
        log.warning("effnet study: the datamodule has no test split: results are validation numbers, labelled as such")
    if args.dry_run:
        dry_run(folder, plan, args, trained, datamodule, trainer)
        return None
    _claim(folder, _asked(args, config_path, overrides), plan)
    planning.write_plan(plan, folder / layout.PLAN)
    how = launch.Launch(
        config=args.config,
        overrides=tuple(overrides),
        seeds=args.seeds,
        launcher=args.launcher,
        devices=args.devices,
        bench_steps=args.bench_steps,
        partition=args.partition,
        time=args.time,
        gpus=args.gpus,
    )
    return launch.run_study(folder, plan, units, how, trained, " ".join(["effnet", "study", *argv]))


def make_plan(args: argparse.Namespace, base: sc.Scaling) -> planning.Plan:
    if args.kind not in KINDS:
        raise StudyError(f"unknown study kind {args.kind!r}; choose one of {', '.join(KINDS)}")
    if args.num_classes < 1:
        raise StudyError(f"--num-classes must be >= 1, got {args.num_classes}")
    if args.kind == "table7":
        targets = [parse_count(t) for t in args.target_macs or []]
        return planning.table7(base, args.num_classes, phis=args.budgets, target_macs=targets)
    if args.kind == "family":
        if bool(args.variants) == bool(args.phi):
            raise StudyError("family: give --variants b0 ... bk or --phi values (one of them)")
        coefficients = _coefficients(Path(args.coefficients)) if args.coefficients else planning.PAPER
        return planning.family(base, args.num_classes, args.variants, args.phi, coefficients)
    plan = planning.grid(base, args.num_classes, tuple(args.grid), args.tolerance)
    if not plan.arms:
        raise StudyError(
            f"no grid point has alpha*beta^2*gamma^2 within {args.tolerance:.0%} of 2 and lands at 2x "
            "the base's MACs; widen --tolerance or --grid"
        )
    return plan


def _coefficients(path: Path) -> sc.Coefficients:
    """alpha, beta, gamma from a YAML file (what `effnet study grid` writes as coefficients.yaml)."""
    if not path.is_file():
        raise MissingFileError(f"--coefficients {path} does not exist; give the coefficients.yaml a grid study wrote")
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict) or not {"alpha", "beta", "gamma"} <= set(loaded):
        raise StudyError(f"--coefficients {path} must hold alpha, beta and gamma")
    return sc.Coefficients(float(loaded["alpha"]), float(loaded["beta"]), float(loaded["gamma"]))


@dataclass(frozen=True)
class FitSettings:
    """The fit settings the study itself reads, as `effnet fit` sees them: the last `--key value` or `--key=value`
    among the overrides, else the config file's value."""

    root: Path  # trainer.default_root_dir: the study folder goes under it
    base_seed: int  # seed_everything; 0 where it is `true` (drawn at random) or not set

    @classmethod
    def read(cls, config: dict[str, Any], overrides: list[str]) -> FitSettings:
        keys = ("trainer.default_root_dir", "seed_everything")
        parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
        for key in keys:
            parser.add_argument(f"--{key}", dest=key, type=yaml.safe_load, default=argparse.SUPPRESS)
        try:
            given = vars(parser.parse_known_args(overrides)[0])
        except argparse.ArgumentError:  # e.g. an option without its value: fit's own parser reports it (check_fit)
            given = {}
        root, seed = (given[key] if key in given else _in_config(config, key) for key in keys)
        return cls(Path(str(root or RUNS_DIR)), seed if isinstance(seed, int) and not isinstance(seed, bool) else 0)


def _in_config(config: dict[str, Any], dotted: str) -> Any:
    """`section.key` of a config mapping; None where it is not set."""
    value: Any = config
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _check_overrides(overrides: list[str]) -> None:
    for item in overrides:
        if item.startswith(("--model.scaling", "--ckpt_path")):
            raise StudyError(f"{item}: the study sets model.scaling and ckpt_path per unit; leave them out")


def _load_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise MissingFileError(f"config {path} does not exist; pass the base fit config with --config")
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise StudyError(f"config {path} is not a YAML mapping of sections")
    return loaded


def _base_scaling(config: dict[str, Any]) -> sc.Scaling:
    section = (config.get("model") or {}).get("scaling") or {}
    try:
        return sc.ScalingSpec(**section).resolve()
    except TypeError as err:
        raise StudyError(f"model.scaling in the base config: {err}") from None


def _claim(folder: Path, asked: dict[str, Any], plan: planning.Plan) -> None:
    """Create the study folder with study.yaml, or check that an existing one was made by the same study."""
    record = folder / layout.RECORD
    if record.is_file():
        before = (yaml.safe_load(record.read_text()) or {}).get("asked", {})
        for key in sorted(set(before) | set(asked)):
            if before.get(key) != asked.get(key):
                what = "the config file's content" if key == "config_sha256" else key
                raise StudyError(
                    f"{folder} was made by a different study ({what}: {before.get(key)!r} then, {asked.get(key)!r} "
                    "now); use the same command and config to resume, or --name for a new study"
                )
        return
    folder.mkdir(parents=True, exist_ok=True)
    record.write_text(yaml.safe_dump({"asked": asked, "arms": [asdict(a) for a in plan.arms]}, sort_keys=False))


def _asked(args: argparse.Namespace, config: Path, overrides: list[str]) -> dict[str, Any]:
    """What makes the study this study (study.yaml's `asked`): its kind, the config's content, the overrides and
    the planning options; not how it runs (LAUNCH_OPTIONS)."""
    asked = {
        "kind": args.kind,
        "config_sha256": hashlib.sha256(config.read_bytes()).hexdigest(),
        "overrides": overrides,
    }
    return asked | {k: v for k, v in vars(args).items() if k not in ("kind", "config", "name", *LAUNCH_OPTIONS)}


# ------------------------------------------------------------------------------------------------------ dry run
def dry_run(
    folder: Path, plan: planning.Plan, args: argparse.Namespace, trained: Trained, datamodule: Any, trainer: Any
) -> None:
    """plan.csv, and the plan on stdout with an estimated wall time; nothing trains."""
    planning.write_plan(plan, folder / layout.PLAN)
    seconds = estimate_seconds(plan, trained, datamodule, trainer, args.bench_steps)
    out = output()
    out.info(format_plan(plan))
    for note in plan.notes:
        out.info(f"note: {note}")
    fits = f"{len(plan.arms)} arms x {args.seeds} seeds = {len(plan.arms) * args.seeds} fits"
    if seconds is None:
        out.info(f"{fits}; no time estimate (--bench-steps 0)")
    else:
        wall = datetime.timedelta(seconds=round(seconds * args.seeds))
        out.info(
            f"{fits}; estimated wall time {wall} on {trained.device} ({trained.precision}, batch "
            f"{trained.batch_size}): each arm's bare training and evaluation steps as measured now, times the "
            "config's steps; data loading, logging and checkpoints come on top"
        )
    out.info(f"plan written to {folder / layout.PLAN}")


PLAN_TABLE = (  # the printed plan's columns: (header, format spec of the cell)
    ("arm", "<22"),
    ("depth", ">7"),
    ("width", ">7"),
    ("res", ">5"),
    ("params", ">8"),
    ("MACs", ">9"),
    ("target", ">9"),
    ("dev", ">7"),
    ("act/img", ">8"),
)


def format_plan(plan: planning.Plan) -> str:
    """The plan as a table of fixed-width columns."""

    def line(cells: Sequence[str]) -> str:
        return " ".join(f"{cell:{spec}}" for cell, (_, spec) in zip(cells, PLAN_TABLE, strict=True))

    header = line([name for name, _ in PLAN_TABLE])
    lines = [header, "-" * len(header)]
    for a in plan.arms:
        target = "" if a.target_macs is None else f"{a.target_macs / 1e6:.2f}M"
        dev = "" if a.macs_deviation is None else f"{a.macs_deviation:+.2%}"
        cells = [a.name, f"{a.depth:.3f}", f"{a.width:.3f}", str(a.resolution), f"{a.params / 1e6:.3g}M"]
        cells += [f"{a.macs / 1e6:.2f}M", target, dev, f"{a.activations / 1e6:.3g}M"]
        lines.append(line(cells))
    return "\n".join(lines)


def estimate_seconds(
    plan: planning.Plan, trained: Trained, datamodule: Any, trainer: Any, bench_steps: int
) -> float | None:
    """Seconds one seed of every arm takes: steps per epoch from the datamodule and the trainer's limits, times
    each arm's measured bare step (benchmark.py at the training setting)."""
    if bench_steps <= 0:
        return None
    from effnet_lightning.tools.measure import run

    datamodule.setup("fit")
    train_batches = _limited(len(datamodule.train_dataloader()), trainer.limit_train_batches)
    val_batches = _limited(len(datamodule.val_dataloader()), trainer.limit_val_batches)
    epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 1
    steps = train_batches * epochs
    if trainer.max_steps and trainer.max_steps > 0:
        steps = min(steps, trainer.max_steps) if trainer.max_epochs else trainer.max_steps
    validations = max(1, epochs // (trainer.check_val_every_n_epoch or 1))
    total = 0.0
    for arm in plan.arms:
        bench = run(sc.ScalingSpec.of(arm), bench_setting(trained, bench_steps))
        total += steps * trained.batch_size / bench.train_img_s
        total += validations * val_batches * trained.batch_size / bench.infer_img_s * 2  # raw and EMA weights
    return total


def _limited(batches: int, limit: int | float) -> int:
    return min(batches, limit) if isinstance(limit, int) else int(batches * limit)
