"""`effnet study table7|family|grid --config BASE.yaml [--section.key value ...]`: the paper's question, asked fairly.

Does compound scaling beat depth-, width- or resolution-only scaling at the same cost, and where do returns
diminish? Every arm is a normal `effnet fit` of the same base config and overrides; only `model.scaling`
differs. The arms are planned at counted costs (plan.py), trained at `--seeds` paired seeds, evaluated on the
test split with the checkpoint validation selected (results.py), and judged with paired confidence intervals
(verdict.py); results.md opens with the answer in words.

`--dry-run` plans without training: `<study folder>/plan.csv` and a printed table with an estimated wall time.
Folders: `<trainer.default_root_dir>/study-NAME/` holds study.yaml (what was asked, with the config's content
hash), one folder per arm with one per seed (`<arm>/seed<k>/version_N/`, result.json once evaluated), the
arm's cost.json, results.csv, runs.csv, comparisons.csv, results.md, the plots (PNG) and their TensorBoard
events. Re-running the same command skips finished units and resumes an interrupted one from its last.ckpt;
changing only how it runs (--devices, --launcher, --bench-steps, --gpus, --partition, --time, --seeds) is the
same study; a changed config file or option is refused with the first difference named.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import yaml

from effnet_lightning.errors import EXIT_CRASH, EXIT_OK, EXIT_USER_ERROR, UserError, exit_code, one_line
from effnet_lightning.model import scaling as sc
from effnet_lightning.model.solve import parse_count
from effnet_lightning.study import plan as planning
from effnet_lightning.study.results import RESULT, Trained, unit_root
from effnet_lightning.train.run_layout import RUNS_DIR

__all__ = ["KINDS", "LAUNCH_OPTIONS", "StudyError", "build_parser", "main"]

KINDS = ("table7", "family", "grid")
LAUNCH_OPTIONS = (
    "devices",
    "launcher",
    "bench_steps",
    "gpus",
    "partition",
    "time",
    "seeds",
    "dry_run",
)  # not the study
DEFAULT_SEEDS = 3  # the fewest that give a paired interval with some width


class StudyError(UserError):
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
    return p  # fmt: skip


def main(argv: Sequence[str]) -> int:
    """The study command; returns its exit code and never raises SystemExit."""
    if argv and argv[0] in ("-h", "--help"):
        build_parser().print_help()
        return EXIT_OK
    try:
        return _study(list(argv))
    except UserError as err:
        print(f"effnet study: error: {one_line(str(err))}", file=sys.stderr)
        return EXIT_USER_ERROR


def _study(argv: list[str]) -> int:
    from effnet_lightning.study import launch

    try:
        args, overrides = build_parser().parse_known_args(argv)
    except SystemExit as stop:  # --help, or a usage error already reported in one line
        return exit_code(stop)
    _check_overrides(overrides)
    config_path = Path(args.config)
    base_config = _load_config(config_path)
    root = Path(_setting(base_config, overrides, "trainer.default_root_dir") or RUNS_DIR)
    base = _base_scaling(base_config)
    plan = make_plan(args, base)
    folder = root / f"study-{args.name or args.kind}"
    seed = _setting(base_config, overrides, "seed_everything")
    base_seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else 0  # `true` (drawn): 0
    units = [launch.Unit(arm, k, base_seed + k) for k in range(args.seeds) for arm in plan.arms]  # pairs come early
    elsewhere = args.launcher == "slurm"
    trained, (datamodule, trainer) = launch.check_fit(args.config, overrides, units[0], base_seed, elsewhere)
    if elsewhere:  # each job trains on --gpus devices of its node: device-hours count those
        trained = replace(trained, devices=args.gpus)
    if args.require_test and not trained.has_test:
        raise StudyError(f"--require-test: the datamodule of {args.config} has no test split of its own (its test "
                         "would use the validation images); give it one, or leave out --require-test")  # fmt: skip
    if not trained.has_test:
        print("effnet study: the datamodule has no test split: results are validation numbers, labelled as such",
              file=sys.stderr)  # fmt: skip
    if args.dry_run:
        return dry_run(folder, plan, args, trained, datamodule, trainer)
    asked = {"kind": args.kind, "config_sha256": hashlib.sha256(config_path.read_bytes()).hexdigest(),
             "overrides": overrides}  # fmt: skip
    asked |= {k: v for k, v in vars(args).items() if k not in ("kind", "config", "name", *LAUNCH_OPTIONS)}
    _claim(folder, asked, plan)
    planning.write_plan(plan, folder / "plan.csv")
    return run(folder, plan, units, args, overrides, trained, " ".join(["effnet", "study", *argv]))


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
        raise StudyError(f"no grid point has alpha*beta^2*gamma^2 within {args.tolerance:.0%} of 2 and lands at 2x "
                         "the base's MACs; widen --tolerance or --grid")  # fmt: skip
    return plan


def _coefficients(path: Path) -> sc.Coefficients:
    """alpha, beta, gamma from a YAML file (what `effnet study grid` writes as coefficients.yaml)."""
    if not path.is_file():
        raise StudyError(f"--coefficients {path} does not exist; give the coefficients.yaml a grid study wrote")
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict) or not {"alpha", "beta", "gamma"} <= set(loaded):
        raise StudyError(f"--coefficients {path} must hold alpha, beta and gamma")
    return sc.Coefficients(float(loaded["alpha"]), float(loaded["beta"]), float(loaded["gamma"]))


def _check_overrides(overrides: list[str]) -> None:
    for item in overrides:
        if item.startswith(("--model.scaling", "--ckpt_path")):
            raise StudyError(f"{item}: the study sets model.scaling and ckpt_path per unit; leave them out")


def _load_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise StudyError(f"config {path} does not exist; pass the base fit config with --config")
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise StudyError(f"config {path} is not a YAML mapping of sections")
    return loaded


def _setting(config: dict[str, Any], overrides: list[str], dotted: str) -> Any:
    """A config value as `fit` would see it: the last `--dotted value` / `--dotted=value` override, else the YAML."""
    value: Any = config
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    for i, item in enumerate(overrides):
        if item == f"--{dotted}" and i + 1 < len(overrides):
            value = yaml.safe_load(overrides[i + 1])
        elif item.startswith(f"--{dotted}="):
            value = yaml.safe_load(item.split("=", 1)[1])
    return value


def _base_scaling(config: dict[str, Any]) -> sc.Scaling:
    section = (config.get("model") or {}).get("scaling") or {}
    try:
        return sc.ScalingSpec(**section).resolve()
    except TypeError as err:
        raise StudyError(f"model.scaling in the base config: {err}") from None


def _claim(folder: Path, asked: dict[str, Any], plan: planning.Plan) -> None:
    """Create the study folder with study.yaml, or check that an existing one was made by the same study."""
    record = folder / "study.yaml"
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


# ------------------------------------------------------------------------------------------------------ dry run
def dry_run(folder: Path, plan: planning.Plan, args: argparse.Namespace, trained: Trained, datamodule: Any,
            trainer: Any) -> int:  # fmt: skip
    """plan.csv and the plan printed with an estimated wall time; nothing trains."""
    planning.write_plan(plan, folder / "plan.csv")
    seconds = estimate_seconds(plan, trained, datamodule, trainer, args.bench_steps)
    print(format_plan(plan))
    for note in plan.notes:
        print(f"note: {note}")
    units = len(plan.arms) * args.seeds
    if seconds is None:
        print(f"{len(plan.arms)} arms x {args.seeds} seeds = {units} fits; no time estimate (--bench-steps 0)")
    else:
        total = seconds * args.seeds
        print(f"{len(plan.arms)} arms x {args.seeds} seeds = {units} fits; estimated wall time "
              f"{datetime.timedelta(seconds=round(total))} on {trained.device} ({trained.precision}, batch "
              f"{trained.batch_size}): each arm's bare training and evaluation steps as measured now, times the "
              "config's steps; data loading, logging and checkpoints come on top")  # fmt: skip
    print(f"plan written to {folder / 'plan.csv'}")
    return EXIT_OK


def format_plan(plan: planning.Plan) -> str:
    header = (f"{'arm':<22} {'depth':>7} {'width':>7} {'res':>5} {'params':>8} {'MACs':>9} {'target':>9} "
              f"{'dev':>7} {'act/img':>8}")  # fmt: skip
    lines = [header, "-" * len(header)]
    for a in plan.arms:
        target = "" if a.target_macs is None else f"{a.target_macs / 1e6:.2f}M"
        dev = "" if a.macs_deviation is None else f"{a.macs_deviation:+.2%}"
        lines.append(f"{a.name:<22} {a.depth:>7.3f} {a.width:>7.3f} {a.resolution:>5} {a.params / 1e6:>7.3g}M "
                     f"{a.macs / 1e6:>8.2f}M {target:>9} {dev:>7} {a.activations / 1e6:>7.3g}M")  # fmt: skip
    return "\n".join(lines)


def estimate_seconds(
    plan: planning.Plan, trained: Trained, datamodule: Any, trainer: Any, bench_steps: int
) -> float | None:
    """Seconds one seed of every arm takes: steps per epoch from the datamodule and the trainer's limits, times
    each arm's measured bare step (benchmark.py at the training setting)."""
    if bench_steps <= 0:
        return None
    from effnet_lightning.model import scaling as scaling
    from effnet_lightning.tools.benchmark import Setting, run

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
        setting = Setting(batch_size=trained.batch_size, device=trained.device, precision=trained.precision,
                          channels_last=trained.channels_last, grad_checkpointing=trained.grad_checkpointing,
                          steps=bench_steps, warmup=1, num_classes=trained.num_classes)  # fmt: skip
        bench = run(scaling.ScalingSpec.of(arm), setting)
        total += steps * trained.batch_size / bench.train_img_s
        total += validations * val_batches * trained.batch_size / bench.infer_img_s * 2  # raw and EMA weights
    return total


def _limited(batches: int, limit: int | float) -> int:
    return min(batches, limit) if isinstance(limit, int) else int(batches * limit)


# --------------------------------------------------------------------------------------------------- the run
def run(folder: Path, plan: planning.Plan, units: list[Any], args: argparse.Namespace, overrides: list[str],
        trained: Trained, command: str) -> int:  # fmt: skip
    """Train what is left, evaluate, measure and tabulate after every unit; the verdict and plots at the end."""
    from effnet_lightning.study import launch
    from effnet_lightning.study.results import write_results

    todo = [u for u in units if not (unit_root(folder, u.arm, u.index) / RESULT).is_file()]
    if len(todo) < len(units):
        print(f"effnet study: {len(units) - len(todo)} of {len(units)} units finished before, skipped", file=sys.stderr)
    progress = Progress(units, todo)
    finished: list[tuple[Any, int]] = []
    stopped = None
    if args.launcher != "inprocess":
        done = launch.run_submitit(todo, args, folder, args.config, overrides, trained)
    elif args.devices > 1:
        done = launch.run_parallel(todo, args.devices, folder, args.config, overrides)
    else:
        done = _one_after_another(folder, todo, args, overrides, trained, progress)
    for u, code in done:
        finished.append((u, code))
        progress.finished(u)
        if code in launch.EXIT_STOPPED:
            stopped = code
            print(f"effnet study: stopped during {u.arm.name} seed {u.seed}; run the same command again to resume",
                  file=sys.stderr)  # fmt: skip
            break
        if code != 0:
            print(f"effnet study: {u.arm.name} seed {u.seed} failed (exit {code}); see "
                  f"{unit_root(folder, u.arm, u.index) / 'error.log'}; the others go on", file=sys.stderr)  # fmt: skip
        write_results(folder, plan, args.seeds, trained, command)
    if args.launcher == "inprocess" and args.devices > 1:  # trained in processes: evaluated and measured here,
        for u, code in finished:  # one at a time, with no training beside them on the device
            if code == 0 and not (unit_root(folder, u.arm, u.index) / RESULT).is_file():
                launch.evaluate(folder, u, args.config, overrides)
        for arm in plan.arms:
            launch.measure(folder, arm, trained, args.bench_steps)
    tables = write_results(folder, plan, args.seeds, trained, command)
    if stopped is not None:
        return stopped
    from effnet_lightning.study.plots import plot

    plot(folder, plan, tables.rows, tables.comparisons, tables.scores)
    if plan.kind == "grid":
        write_coefficients(folder, tables.rows)
    for line in tables.verdict:
        print(f"effnet study: {line}", file=sys.stderr)
    print(f"effnet study: results in {folder}/results.md", file=sys.stderr)
    if not any(r.n for r in tables.rows):
        print("effnet study: error: every unit failed; see the error.log of each", file=sys.stderr)
        return EXIT_CRASH
    return EXIT_OK


def _one_after_another(folder: Path, todo: list[Any], args: argparse.Namespace, overrides: list[str],
                       trained: Trained, progress: Progress) -> Any:  # fmt: skip
    """In this process: each unit trains, is evaluated, and its arm measured (once) as soon as it finished."""
    from effnet_lightning.study import launch

    for u in todo:
        progress.starting(u)
        code = launch.run_unit(folder, u, args.config, overrides)
        if code == 0:
            launch.measure(folder, u.arm, trained, args.bench_steps)
        yield u, code


class Progress:
    """`unit 3/15 (width, seed 1) ... ETA 0:41:00`: the ETA from this run's seconds per MAC so far."""

    def __init__(self, units: list[Any], todo: list[Any]) -> None:
        self.total, self.todo = len(units), list(todo)
        self.before = len(units) - len(todo)
        self.started = time.monotonic()
        self.done_macs = 0
        self.count = 0

    def starting(self, u: Any) -> None:
        eta = "--"
        if self.done_macs:
            remaining = sum(v.arm.macs for v in self.todo)
            eta = str(datetime.timedelta(seconds=round((time.monotonic() - self.started) / self.done_macs * remaining)))
        number = self.before + self.count + 1
        print(f"effnet study: unit {number}/{self.total} ({u.arm.name}, seed {u.seed}) ... ETA {eta}",
              file=sys.stderr, flush=True)  # fmt: skip

    def finished(self, u: Any) -> None:
        self.count += 1
        self.done_macs += u.arm.macs
        self.todo = [v for v in self.todo if v != u]


def write_coefficients(folder: Path, rows: Sequence[Any]) -> None:
    """coefficients.yaml: the best grid point's alpha, beta, gamma, for `family --phi ... --coefficients` (or
    `--model.scaling.alpha ... --model.scaling.beta ... --model.scaling.gamma ...`)."""
    best = next((r for r in rows if r.test_acc1_mean is not None), None)
    if best is None:
        return
    lines = [
        f"# effnet study grid: the best point by mean top-1 ({best.arm}, {100 * best.test_acc1_mean:.1f}% over "
        f"{best.n} seed(s)); results.md says whether it is distinguishable from the runner-up.",
        f"# Use: effnet study family --config BASE.yaml --phi 0 1 2 --coefficients {folder / 'coefficients.yaml'}",
        f"#  or: --model.scaling.alpha={best.alpha:g} --model.scaling.beta={best.beta:g} "
        f"--model.scaling.gamma={best.gamma:g}",
        f"alpha: {best.alpha:g}",
        f"beta: {best.beta:g}",
        f"gamma: {best.gamma:g}",
    ]
    (folder / "coefficients.yaml").write_text("\n".join(lines) + "\n")
