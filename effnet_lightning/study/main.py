"""`effnet study table7|family|grid --config BASE.yaml [--section.key value ...]`: the paper's question, asked fairly.

Every arm is a normal `effnet fit` (run in this process through `cli.main`) of the same base config and the same
overrides; only `model.scaling` differs, given as explicit depth/width multipliers and a resolution in px. Arms:
- table7: the base, then depth-only, width-only, resolution-only and compound, each solved (solve.py) for the
  same MACs: `--target-macs`, by default the base compound-scaled by φ = 1 (the paper's Table 7 budget);
- family: `--variants b0 ... bk` (the official multipliers applied to the base, resolution in proportion to
  224 px) or `--phi` values (compound from the base);
- grid: the paper's step 1: α, β, γ over a grid, kept where α·β²·γ² is within `--tolerance` of 2, each at φ = 1
  from the base; short proxy runs (set the epochs in the config or overrides), ranked by accuracy.

Folders: `<trainer.default_root_dir>/study-NAME/` holds study.yaml (what was asked), one folder per arm (its runs
under `<arm>/version_N/`, a `result.json` once it finished), results.csv, results.md, the plots (PNG) and their
TensorBoard events. Re-running the same command skips finished arms and resumes an interrupted one from its
last.ckpt; an arm that fails is marked `failed` and the others still run. A different command on the same folder
is refused with the first difference named.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import queue
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from effnet_lightning.errors import EXIT_INTERRUPTED, EXIT_PREEMPTED
from effnet_lightning.model import scaling as sc
from effnet_lightning.model.solve import DIMENSIONS, PAPER, compound_target, parse_count, solve
from effnet_lightning.model.solve import measure as cost

KINDS = ("table7", "family", "grid")
RUNS_DIR = "runs"  # LightningCLI's default trainer.default_root_dir here (training_cli.py)
GRID_STEPS = (1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3, 1.35, 1.4)  # α, β, γ candidates: the paper's step 1 range
FLOPS_DOUBLING = 2.0  # α·β²·γ² ≈ 2: one unit of φ doubles the FLOPs (paper §3.3)
RESULT = "result.json"  # in an arm's folder once its fit finished and was measured
WALL = "wall_s.txt"  # one line per fit invocation of the arm: seconds it ran (a resumed arm adds up)
EXIT_STOPPED = (EXIT_PREEMPTED, EXIT_INTERRUPTED)  # last.ckpt saved; the study stops and resumes on re-run
BENCH_WARMUP = 1  # untimed benchmark steps before the timed ones


@dataclass(frozen=True)
class Arm:
    """One model of the study: absolute multipliers on B0 and the input side, as ScalingSpec takes them."""

    name: str
    depth: float
    width: float
    resolution: int  # px
    alpha: float | None = None  # grid only: the coefficients this point stands for
    beta: float | None = None
    gamma: float | None = None

    def overrides(self) -> list[str]:
        return [
            "--model.scaling.variant=null", "--model.scaling.phi=null", f"--model.scaling.depth={self.depth!r}",
            f"--model.scaling.width={self.width!r}", f"--model.scaling.resolution={self.resolution}",
        ]  # fmt: skip


@dataclass(frozen=True)
class Row:
    """One line of results.csv. Accuracies in [0, 1]; None where the run logged no such metric."""

    arm: str
    status: str  # done, failed (exit N), or pending
    depth: float
    width: float
    resolution: int
    params: int
    macs: int  # forward, one image, counted as `effnet scale` counts
    train_img_s: float | None = None  # benchmark.py's bare training step on this device, batch of the config
    peak_memory: int | None = None  # bytes
    acc1: float | None = None  # best val/acc1 over the epochs
    acc5: float | None = None
    ema_acc1: float | None = None  # best val_ema/acc1 (EMA callback)
    ema_acc5: float | None = None
    epochs: int | None = None
    wall_s: float | None = None  # seconds of `effnet fit`, summed over resumes
    alpha: float | None = None
    beta: float | None = None
    gamma: float | None = None

    @property
    def accuracy(self) -> float | None:
        """The number ranked and plotted: EMA top-1 where the run had EMA, raw top-1 otherwise."""
        return self.ema_acc1 if self.ema_acc1 is not None else self.acc1


class StudyError(ValueError):
    """A user mistake in the study command: one line, exit 2."""


# ---------------------------------------------------------------------------------------------------- the command
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise StudyError(f"{message} (see 'effnet study --help')")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="effnet study",
        allow_abbrev=False,  # a fit override must never be taken for an abbreviated study option
        description="Train one arm per scaling with the same recipe (effnet fit); options not listed here "
        "(--section.key value) are fit overrides applied to every arm.",
    )
    p.add_argument("kind", help=f"one of {', '.join(KINDS)}")
    p.add_argument("--config", required=True, help="the base fit config (recipe, data, trainer, base scaling)")
    p.add_argument("--name", help="study folder name under trainer.default_root_dir: study-NAME (default: KIND)")
    p.add_argument("--target-macs", help="table7: the MACs every arm is solved for (default: base at phi=1)")
    p.add_argument("--variants", nargs="+", help="family: official variants b0..b7 applied to the base")
    p.add_argument("--phi", nargs="+", type=float, help="family: compound coefficients from the base")
    p.add_argument("--tolerance", type=float, default=0.05, help="grid: |a*b^2*g^2 - 2| / 2 at most (default 5%%)")
    p.add_argument("--grid", nargs="+", type=float, default=list(GRID_STEPS), help="grid: candidate values")
    p.add_argument("--num-classes", type=int, default=1000, help="classifier size for params/MACs (effnet scale's)")
    p.add_argument("--devices", type=int, default=1, help="local GPUs: N > 1 runs one arm per GPU at a time")
    p.add_argument("--launcher", choices=("inprocess", "slurm", "local"), default="inprocess",
                   help="slurm: one submitit job per arm (requeued on exit 75); local: the same jobs as processes "
                   "on this machine (submitit's LocalExecutor), a dry run of the slurm path")  # fmt: skip
    p.add_argument("--partition", help="slurm partition")
    p.add_argument("--time", type=int, default=24 * 60, help="slurm time limit per arm, minutes (default %(default)s)")
    p.add_argument("--gpus", type=int, default=1, help="slurm GPUs per arm job (trainer.devices should match)")
    p.add_argument("--bench-steps", type=int, default=3, help="timed benchmark steps per arm (0: skip)")
    return p


def main(argv: Sequence[str]) -> int:
    from effnet_lightning.train.run import main as effnet_main

    if argv and argv[0] in ("-h", "--help"):
        build_parser().print_help()
        return 0
    try:
        args, overrides = build_parser().parse_known_args(list(argv))
        _check_overrides(overrides)
        base_config = _load_config(Path(args.config))
        root = Path(_setting(base_config, overrides, "trainer.default_root_dir") or RUNS_DIR)
        base = _base_scaling(base_config, overrides)
        arms = plan(args, base)
        folder = root / f"study-{args.name or args.kind}"
        asked = {"kind": args.kind, "config": str(Path(args.config).resolve()), "overrides": overrides}
        asked |= {k: v for k, v in vars(args).items() if k not in ("kind", "config", "name")}
        _claim(folder, asked, arms)
    except (StudyError, ValueError, OSError) as err:
        print(f"effnet study: error: {err}", file=sys.stderr)
        return 2
    batch_size = int(_setting(base_config, overrides, "data.init_args.batch_size") or 32)
    todo = []
    for arm in arms:
        if (folder / arm.name / RESULT).is_file():
            print(f"effnet study: {arm.name}: finished before, skipped", file=sys.stderr)
        else:
            todo.append(arm)
    if args.launcher != "inprocess":  # one submitit job per arm; each job measures its own arm on its GPU
        finished = run_submitit(todo, args, folder, overrides, batch_size)
    elif args.devices > 1:  # arms in parallel, one per GPU; measured afterwards, when no arm trains beside them
        finished = run_parallel(todo, args.devices, folder, args.config, overrides)
    else:  # one after another in this process, each measured at once
        finished = []
        for arm in todo:
            code = run_arm(effnet_main, folder, arm, args.config, overrides)
            finished.append((arm, code))
            if code in EXIT_STOPPED:
                break
            if code == 0:
                measure(folder, arm, args.num_classes, batch_size, args.bench_steps)
    stopped = None
    for arm, code in finished:
        if code == 0 and not (folder / arm.name / RESULT).is_file():
            measure(folder, arm, args.num_classes, batch_size, args.bench_steps)
        elif code in EXIT_STOPPED:
            stopped = code
            print(f"effnet study: stopped during {arm.name}; run the same command again to resume", file=sys.stderr)
        elif code != 0:
            print(f"effnet study: {arm.name} failed (exit {code}); the others ran", file=sys.stderr)
            (folder / arm.name / "failed").write_text(f"{code}\n")
    if stopped is not None:
        write_results(folder, arms, args.num_classes, args.kind)
        return stopped
    rows = write_results(folder, arms, args.num_classes, args.kind)
    from effnet_lightning.study.plots import plot

    plot(folder, rows, args.kind)
    print(f"effnet study: results in {folder}/results.md", file=sys.stderr)
    return 0


def _check_overrides(overrides: list[str]) -> None:
    for item in overrides:
        if item.startswith(("--model.scaling", "--ckpt_path")):
            raise StudyError(f"{item}: the study sets model.scaling and ckpt_path per arm; leave them out")


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


def _base_scaling(config: dict[str, Any], overrides: list[str]) -> sc.Scaling:
    section = (config.get("model") or {}).get("scaling") or {}
    try:
        return sc.ScalingSpec(**section).resolve()
    except TypeError as err:
        raise StudyError(f"model.scaling in the base config: {err}") from None


# ------------------------------------------------------------------------------------------------------- the arms
def plan(args: argparse.Namespace, base: sc.Scaling) -> list[Arm]:
    """The arms of the study `args` asks for, from the base config's scaling."""
    if args.kind not in KINDS:
        raise StudyError(f"unknown study kind {args.kind!r}; choose one of {', '.join(KINDS)}")
    spec = sc.ScalingSpec(depth=base.depth, width=base.width, resolution=base.resolution)
    if args.kind == "table7":
        target = parse_count(args.target_macs) if args.target_macs else compound_target(spec, 1.0, args.num_classes)
        arms = [Arm("baseline", base.depth, base.width, base.resolution)]
        for scale in DIMENSIONS:
            s = solve(target, scale, spec, num_classes=args.num_classes)
            arms.append(Arm(scale, s.depth, s.width, s.resolution))
        return arms
    if args.kind == "family":
        if bool(args.variants) == bool(args.phi):
            raise StudyError("family: give --variants b0 ... bk or --phi values (one of them)")
        if args.variants:
            official = [sc.official(v) for v in args.variants]
            return [
                Arm(
                    v.name,
                    base.depth * v.depth,
                    base.width * v.width,
                    sc.round_resolution(base.resolution * v.resolution / sc.BASE_RESOLUTION),
                )
                for v in official
            ]
        return [_compound_arm(f"phi{phi:g}", base, phi, PAPER) for phi in args.phi]
    points = [
        (a, b, g)
        for a, b, g in itertools.product(args.grid, repeat=3)
        if abs(sc.Coefficients(a, b, g).flops_growth - FLOPS_DOUBLING) <= args.tolerance * FLOPS_DOUBLING
    ]
    if not points:
        raise StudyError(
            f"no grid point has alpha*beta^2*gamma^2 within {args.tolerance:.0%} of 2; widen --tolerance or --grid"
        )
    return [
        _compound_arm(f"a{a:g}-b{b:g}-g{g:g}", base, 1.0, sc.Coefficients(a, b, g), (a, b, g)) for a, b, g in points
    ]


def _compound_arm(
    name: str, base: sc.Scaling, phi: float, c: sc.Coefficients, coefficients: tuple | None = None
) -> Arm:
    s = sc.compound(phi, c.alpha, c.beta, c.gamma, base.resolution, base.depth, base.width)
    a, b, g = coefficients or (None, None, None)
    return Arm(name, s.depth, s.width, s.resolution, a, b, g)


def _claim(folder: Path, asked: dict[str, Any], arms: list[Arm]) -> None:
    """Create the study folder with study.yaml, or check that an existing one was made by the same command."""
    record = folder / "study.yaml"
    if record.is_file():
        before = yaml.safe_load(record.read_text()).get("asked", {})
        for key in sorted(set(before) | set(asked)):
            if before.get(key) != asked.get(key):
                raise StudyError(
                    f"{folder} was made by a different study command ({key}: {before.get(key)!r} then, "
                    f"{asked.get(key)!r} now); use the same command to resume, or --name for a new study"
                )
        return
    folder.mkdir(parents=True, exist_ok=True)
    record.write_text(yaml.safe_dump({"asked": asked, "arms": [asdict(a) for a in arms]}, sort_keys=False))


def run_arm(effnet_main: Any, folder: Path, arm: Arm, config: str, overrides: list[str]) -> int:
    """`effnet fit` for one arm in this process; resumes from the arm's newest last.ckpt when it has one."""
    arm_root = folder / arm.name
    argv = fit_argv(arm_root, arm, config, overrides)
    print(f"effnet study: {arm.name}: effnet {' '.join(argv)}", file=sys.stderr)
    (arm_root / "failed").unlink(missing_ok=True)
    started = time.monotonic()
    typed = sys.argv
    sys.argv = [typed[0], *argv]  # the arm's command line as LightningCLI's own: it warns when both differ
    try:
        code = effnet_main(argv)
    except SystemExit as exit_:  # argparse-style exits inside LightningCLI
        code = 0 if exit_.code is None else int(exit_.code)
    except Exception as err:  # a crash in one arm must not stop the study; the traceback is the arm's own
        print(f"effnet study: {arm.name} crashed: {type(err).__name__}: {err}", file=sys.stderr)
        code = 1
    finally:
        sys.argv = typed
    arm_root.mkdir(parents=True, exist_ok=True)
    with open(arm_root / WALL, "a") as out:
        out.write(f"{time.monotonic() - started:.3f}\n")
    return code


def run_parallel(
    arms: list[Arm], devices: int, folder: Path, config: str, overrides: list[str]
) -> list[tuple[Arm, int]]:
    """Each arm as its own `effnet fit` process seeing one GPU (CUDA_VISIBLE_DEVICES), at most `devices` at once.

    concurrent.futures does the scheduling; a queue hands each process a GPU no other arm is using.
    """
    free: queue.Queue[int] = queue.Queue()
    for device in range(devices):
        free.put(device)

    def on_a_free_device(arm: Arm) -> int:
        device = free.get()
        try:
            return launch(folder, arm, config, overrides, device)
        finally:
            free.put(device)

    with ThreadPoolExecutor(max_workers=devices) as pool:
        codes = list(pool.map(on_a_free_device, arms))
    return list(zip(arms, codes, strict=True))


@dataclass(frozen=True)
class ArmJob:
    """What a submitit job runs: the arm's `effnet fit` (resuming from its last.ckpt, decided when the job starts,
    so a requeued job continues), then the arm's measurement on the job's own device."""

    folder: Path
    arm: Arm
    config: str
    overrides: tuple[str, ...]
    num_classes: int
    batch_size: int
    bench_steps: int

    def __call__(self) -> int:
        from effnet_lightning.train.run import main as effnet_main

        code = run_arm(effnet_main, self.folder, self.arm, self.config, list(self.overrides))
        if code == EXIT_PREEMPTED and os.environ.get("SLURM_JOB_ID"):  # SIGTERM saved last.ckpt: run again
            subprocess.run(["scontrol", "requeue", os.environ["SLURM_JOB_ID"]], check=False, timeout=60)
        elif code == 0:
            measure(self.folder, self.arm, self.num_classes, self.batch_size, self.bench_steps)
        return code

    def checkpoint(self) -> Any:
        """submitit calls this on its timeout signal and requeues what it returns: the same arm, which resumes."""
        import submitit

        return submitit.helpers.DelayedSubmission(self)


def run_submitit(
    arms: list[Arm], args: argparse.Namespace, folder: Path, overrides: list[str], batch_size: int
) -> list[tuple[Arm, int]]:
    """One submitit job per arm (Slurm, or local processes), waited for here; a job that raised counts as exit 1."""
    import submitit

    logs = folder / "submitit"
    if args.launcher == "local":
        executor: Any = submitit.LocalExecutor(folder=logs)
        executor.update_parameters(timeout_min=args.time)
    else:
        executor = submitit.AutoExecutor(folder=logs, cluster="slurm")
        executor.update_parameters(timeout_min=args.time, slurm_partition=args.partition,
                                   gpus_per_node=args.gpus, tasks_per_node=args.gpus, name="effnet-study")  # fmt: skip
    jobs = [
        executor.submit(
            ArmJob(folder, arm, args.config, tuple(overrides), args.num_classes, batch_size, args.bench_steps)
        )  # fmt: skip
        for arm in arms
    ]
    for arm, job in zip(arms, jobs, strict=True):
        print(f"effnet study: {arm.name}: submitit job {job.job_id}, logs in {logs}", file=sys.stderr)
    codes = []
    for job in jobs:
        try:
            codes.append(int(job.result()))
        except Exception as err:  # submitit re-raises the job's exception (or its failure) here
            print(f"effnet study: job {job.job_id} failed: {_first_line(err)}", file=sys.stderr)
            codes.append(1)
    return list(zip(arms, codes, strict=True))


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[-1]


def launch(folder: Path, arm: Arm, config: str, overrides: list[str], device: int) -> int:
    """`effnet fit` for one arm in a new process on GPU `device`; its output goes to `<arm>/fit.log`."""
    arm_root = folder / arm.name
    arm_root.mkdir(parents=True, exist_ok=True)
    argv = fit_argv(arm_root, arm, config, overrides)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": str(device)}
    print(f"effnet study: {arm.name} on GPU {device}: effnet {' '.join(argv)}", file=sys.stderr)
    (arm_root / "failed").unlink(missing_ok=True)
    started = time.monotonic()
    with open(arm_root / "fit.log", "a") as log:
        code = subprocess.run([sys.executable, "-m", "effnet_lightning.cli", *argv], env=env, stdout=log,
                              stderr=subprocess.STDOUT).returncode  # fmt: skip
    with open(arm_root / WALL, "a") as out:
        out.write(f"{time.monotonic() - started:.3f}\n")
    return code


def fit_argv(arm_root: Path, arm: Arm, config: str, overrides: list[str]) -> list[str]:
    """The arm's `effnet fit` command line; resumes from its newest last.ckpt when it has one."""
    resume = sorted(arm_root.glob("version_*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    argv = ["fit", "--config", config, *overrides, *arm.overrides(), f"--trainer.default_root_dir={arm_root}"]
    if resume:
        argv.append(f"--ckpt_path={resume[-1].parent.parent}")
        print(f"effnet study: {arm.name}: resuming from {resume[-1]}", file=sys.stderr)
    return argv


# ---------------------------------------------------------------------------------------------------- the results
def measure(folder: Path, arm: Arm, num_classes: int, batch_size: int, bench_steps: int) -> None:
    """Throughput and peak memory from benchmark.py on this machine's device; accuracies from the run's events."""
    import torch

    from effnet_lightning.tools.benchmark import Setting, run

    train_img_s = peak = None
    if bench_steps > 0:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        setting = Setting(batch_size=batch_size, device=device, steps=bench_steps, warmup=BENCH_WARMUP,
                          num_classes=num_classes)  # fmt: skip
        bench = run(sc.ScalingSpec(depth=arm.depth, width=arm.width, resolution=arm.resolution), setting)
        train_img_s, peak = bench.train_img_s, bench.peak_memory
    result = {"train_img_s": train_img_s, "peak_memory": peak, **_best_metrics(folder / arm.name)}
    (folder / arm.name / RESULT).write_text(json.dumps(result, indent=1) + "\n")


def _best_metrics(arm_root: Path) -> dict[str, Any]:
    """Best val and val_ema top-1/top-5 and the number of validated epochs, from the arm's TensorBoard events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values: dict[str, list[float]] = {}
    for run in sorted(arm_root.glob("version_*")):
        events = EventAccumulator(str(run))
        events.Reload()
        for tag in events.Tags()["scalars"]:
            values.setdefault(tag, []).extend(e.value for e in events.Scalars(tag))
    best = {key: max(values[tag]) if values.get(tag) else None for key, tag in METRIC_TAGS.items()}
    best["epochs"] = len(values.get("val/acc1", [])) or None
    return best


METRIC_TAGS = {"acc1": "val/acc1", "acc5": "val/acc5", "ema_acc1": "val_ema/acc1", "ema_acc5": "val_ema/acc5"}


def collect(folder: Path, arms: list[Arm], num_classes: int) -> list[Row]:
    rows = []
    for arm in arms:
        arm_root = folder / arm.name
        macs, params = cost(arm.depth, arm.width, arm.resolution, num_classes)
        walls = (arm_root / WALL).read_text().split() if (arm_root / WALL).is_file() else []
        wall = sum(float(w) for w in walls) if walls else None
        extra: dict[str, Any] = {}
        if (arm_root / RESULT).is_file():
            status, extra = "done", json.loads((arm_root / RESULT).read_text())
        elif (arm_root / "failed").is_file():
            status = f"failed (exit {(arm_root / 'failed').read_text().strip()})"
        else:
            status = "pending"
        rows.append(
            Row(arm.name, status, arm.depth, arm.width, arm.resolution, params, macs, wall_s=wall,
                alpha=arm.alpha, beta=arm.beta, gamma=arm.gamma, **extra)
        )  # fmt: skip
    return rows


def write_results(folder: Path, arms: list[Arm], num_classes: int, kind: str) -> list[Row]:
    """results.csv (every field) and results.md, both ranked by accuracy for a grid, in arm order otherwise."""
    rows = collect(folder, arms, num_classes)
    rows = ranked(rows) if kind == "grid" else rows
    with open(folder / "results.csv", "w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([f.name for f in fields(Row)])
        writer.writerows([("" if v is None else v) for v in asdict(r).values()] for r in rows)
    (folder / "results.md").write_text(format_markdown(rows) + "\n")
    return rows


def ranked(rows: list[Row]) -> list[Row]:
    """Finished arms by accuracy, best first; the others after them in their order."""
    done = [r for r in rows if r.accuracy is not None]
    return sorted(done, key=lambda r: -r.accuracy) + [r for r in rows if r.accuracy is None]  # type: ignore[operator]


def format_markdown(rows: list[Row]) -> str:
    def pct(v: float | None) -> str:
        return "" if v is None else f"{100 * v:.1f}"

    lines = [
        "| arm | status | depth | width | res | params | MACs | train img/s | peak mem | top-1 | top-5 | "
        "EMA top-1 | EMA top-5 | epochs | wall s |",
        "|" + "---|" * 15,
    ]
    for r in rows:
        img_s = "" if r.train_img_s is None else f"{r.train_img_s:.0f}"
        mem = "" if r.peak_memory is None else f"{r.peak_memory / 2**20:.0f} MiB"
        wall = "" if r.wall_s is None else f"{r.wall_s:.0f}"
        lines.append(
            f"| {r.arm} | {r.status} | {r.depth:.3g} | {r.width:.3g} | {r.resolution} | {r.params / 1e6:.2f}M | "
            f"{r.macs / 1e6:.1f}M | {img_s} | {mem} | {pct(r.acc1)} | {pct(r.acc5)} | {pct(r.ema_acc1)} | "
            f"{pct(r.ema_acc5)} | {r.epochs or ''} | {wall} |"
        )
    return "\n".join(lines)
