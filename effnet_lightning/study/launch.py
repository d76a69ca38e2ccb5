"""How a study runs: its units (arm x seed) train in this process, one process per local GPU, or one submitit job
each; after every unit the tables are rewritten, and at the end come the verdict and the plots.

Every unit is a normal `effnet fit` of the base config with the study's overrides, the arm's `model.scaling` and
`seed_everything` = base seed + k; it resumes from its own newest last.ckpt when it has one. In this process the
fit runs as `effnet fit` would (assembly/in_process.py): a unit that fails keeps its traceback (or, where the fit
reported its own one line, that output) in `<arm>/seed<k>/error.log`, and the study goes on.

Before any unit trains, `check_fit` gives the whole command line of the first unit to fit's own parser and
builds what it names (LightningCLI with run=False, in a scratch folder): an option neither the study nor fit
knows is one line and exit 2 here, not a failure of every arm. It also reads how the arms train (precision,
memory format, batch, device, test split) for the cost measurements and the tables.
"""

from __future__ import annotations

import datetime
import logging
import os
import queue
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from effnet_lightning.console import console
from effnet_lightning.errors import EXIT_CRASH, EXIT_INTERRUPTED, EXIT_PREEMPTED, ConfigError, one_line
from effnet_lightning.study import layout
from effnet_lightning.study.evaluation import (
    NeverValidated,
    Trained,
    clear_failure,
    evaluate_unit,
    has_test_split,
    measure_arm,
    record_failure,
    record_not_validated,
    record_output,
    record_wall,
)
from effnet_lightning.study.plan import Arm, Plan
from effnet_lightning.train.run_layout import VERSION_GLOB, last_checkpoints

__all__ = [
    "EXIT_STOPPED",
    "ArmJob",
    "FitOptionsError",
    "Launch",
    "Progress",
    "Unit",
    "check_fit",
    "evaluate",
    "fit_argv",
    "launch",
    "measure",
    "run_parallel",
    "run_study",
    "run_submitit",
    "run_unit",
]

log = logging.getLogger(__name__)

EXIT_STOPPED = (EXIT_PREEMPTED, EXIT_INTERRUPTED)  # last.ckpt saved; the study stops and resumes on re-run
ERROR_TAIL = 20_000  # characters of a failed fit's output kept in error.log
CPU_CHECK = (  # check_fit for units that train elsewhere, on a machine without a GPU: the trainer on this CPU
    "--trainer.accelerator=cpu",
    "--trainer.devices=1",
    "--trainer.num_nodes=1",
    "--trainer.strategy=auto",
    "--trainer.precision=32-true",
)


class FitOptionsError(ConfigError):
    """The study's fit overrides (or the base config) do not parse as `effnet fit` options."""


@dataclass(frozen=True)
class Launch:
    """How a study's units run: the fit command line they share, and the launch options of `effnet study` (a
    re-run that changes only these is the same study)."""

    config: str  # the base fit config
    overrides: tuple[str, ...]  # fit options for every unit
    seeds: int  # per arm
    launcher: str  # inprocess; slurm: one submitit job per unit; local: those jobs as processes on this machine
    devices: int  # inprocess: local GPUs, one unit on each at a time
    bench_steps: int  # timed benchmark steps per arm (0: not measured)
    partition: str | None  # slurm partition
    time: int  # slurm time limit per unit, minutes
    gpus: int  # slurm GPUs per job


@dataclass(frozen=True)
class Unit:
    """One fit of the study: an arm at one seed."""

    arm: Arm
    index: int  # k: the k-th seed
    seed: int  # base seed + k


def fit_argv(unit: Path, u: Unit, config: str, overrides: list[str], subcommand: bool = True) -> list[str]:
    """The unit's `effnet fit` command line; resumes from its newest last.ckpt when it has one."""
    argv = ["--config", config, *overrides, *u.arm.overrides(), f"--seed_everything={u.seed}"]
    if not subcommand:
        return argv
    argv = ["fit", *argv, f"--trainer.default_root_dir={unit}"]
    resume = last_checkpoints(unit, VERSION_GLOB)
    if resume:
        argv.append(f"--ckpt_path={resume[-1].parent.parent}")
    return argv


def _unit_folder(folder: Path, u: Unit) -> Path:
    return layout.unit_folder(folder, u.arm.name, u.index)


def check_fit(
    config: str, overrides: list[str], u: Unit, base_seed: int, elsewhere: bool = False
) -> tuple[Trained, Any]:
    """Parse and build the first unit as `effnet fit` would (nothing trains; a scratch run folder), and read how
    the arms train. Raises FitOptionsError (one line) for an option fit does not take. Returns the setting and
    the datamodule (for the dry run's step count).

    `elsewhere`: the units train on other machines (submitit). Without a GPU here, the check builds the trainer
    on this CPU in fp32, so that a GPU config can be checked from a login node; each job measures its own setting.
    """
    from jsonargparse import ArgumentError

    from effnet_lightning.assembly.config_checks import DataModuleInitError
    from effnet_lightning.assembly.in_process import build

    with tempfile.TemporaryDirectory() as scratch:
        args = [
            *fit_argv(Path(scratch), u, config, overrides, subcommand=False),
            f"--trainer.default_root_dir={scratch}",
        ]
        if elsewhere and not _has_cuda():
            args += CPU_CHECK
        try:
            cli = build(args)
        except ArgumentError as err:
            raise FitOptionsError(f"effnet fit does not take these options: {one_line(str(err))}") from None
        except DataModuleInitError as err:
            raise FitOptionsError(one_line(str(err))) from None
    trainer, model = cli.trainer, cli.model
    device = trainer.strategy.root_device.type
    wanted = model.hparams.get("channels_last")
    trained = Trained(
        precision=str(trainer.precision),
        channels_last=device == "cuda" if wanted is None else bool(wanted),
        grad_checkpointing=bool(model.hparams.get("grad_checkpointing", False)),
        batch_size=int(getattr(cli.datamodule, "batch_size", 0) or 0),
        device=device,
        devices=trainer.num_devices * trainer.num_nodes,
        has_test=has_test_split(cli.datamodule),
        num_classes=int(model.hparams.num_classes),
        base_seed=base_seed,
    )
    return trained, (cli.datamodule, trainer)


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# --------------------------------------------------------------------------------------------------- the study
def run_study(
    folder: Path,
    plan: Plan,
    units: list[Unit],
    how: Launch,
    trained: Trained,
    command: str,
) -> int | None:
    """Train what is left, evaluate, measure and tabulate after every unit; the verdict and plots at the end.
    None when the study ended; the exit code it decided otherwise: 75/130 when a signal stopped a unit (the same
    command resumes), 1 when every unit failed (each unit's error.log says why)."""
    from effnet_lightning.study.results import write_coefficients, write_results

    todo = [u for u in units if not (_unit_folder(folder, u) / layout.RESULT).is_file()]
    if len(todo) < len(units):
        log.info(f"effnet study: {len(units) - len(todo)} of {len(units)} units finished before, skipped")
    progress = Progress(units, todo)
    finished: list[tuple[Unit, int]] = []
    stopped = None
    overrides = list(how.overrides)
    if how.launcher != "inprocess":
        done = run_submitit(todo, how, folder, trained)
    elif how.devices > 1:
        done = run_parallel(todo, how.devices, folder, how.config, overrides)
    else:
        done = _one_after_another(folder, todo, how, trained, progress)
    for u, code in done:
        finished.append((u, code))
        progress.finished(u)
        if code in EXIT_STOPPED:
            stopped = code
            log.warning(
                f"effnet study: stopped during {u.arm.name} seed {u.seed}; run the same command again to resume"
            )
            break
        if code != 0:
            error_log = _unit_folder(folder, u) / layout.ERROR_LOG
            log.warning(
                f"effnet study: {u.arm.name} seed {u.seed} failed (exit {code}); see {error_log}; the others go on"
            )
        write_results(folder, plan, how.seeds, trained, command)
    if how.launcher == "inprocess" and how.devices > 1:  # trained in processes: evaluated and measured here,
        for u, code in finished:  # one at a time, with no training beside them on the device
            if code == 0 and not (_unit_folder(folder, u) / layout.RESULT).is_file():
                evaluate(folder, u, how.config, overrides)
        for arm in plan.arms:
            measure(folder, arm, trained, how.bench_steps)
    tables = write_results(folder, plan, how.seeds, trained, command)
    if stopped is not None:
        return stopped
    from effnet_lightning.study.plots import plot

    plot(folder, plan, tables.rows, tables.comparisons, tables.scores)
    if plan.kind == "grid":
        write_coefficients(folder, tables.rows)
    for line in tables.verdict:
        log.info(f"effnet study: {line}")
    log.info(f"effnet study: results in {folder / layout.REPORT}")
    if not any(r.n for r in tables.rows):
        log.error("effnet study: error: every unit failed; see the error.log of each")
        return EXIT_CRASH
    return None


def _one_after_another(
    folder: Path, todo: list[Unit], how: Launch, trained: Trained, progress: Progress
) -> Iterator[tuple[Unit, int]]:
    """In this process: each unit trains, is evaluated, and its arm measured (once) as soon as it finished."""
    for u in todo:
        progress.starting(u)
        code = run_unit(folder, u, how.config, list(how.overrides))
        if code == 0:
            measure(folder, u.arm, trained, how.bench_steps)
        yield u, code


class Progress:
    """`unit 3/15 (width, seed 1) ... ETA 0:41:00`: the ETA from this run's seconds per MAC so far."""

    def __init__(self, units: list[Unit], todo: list[Unit]) -> None:
        self.total, self.todo = len(units), list(todo)
        self.before = len(units) - len(todo)
        self.started = time.monotonic()
        self.done_macs = 0
        self.count = 0

    def starting(self, u: Unit) -> None:
        eta = "--"
        if self.done_macs:
            remaining = sum(v.arm.macs for v in self.todo)
            seconds = (time.monotonic() - self.started) / self.done_macs * remaining
            eta = str(datetime.timedelta(seconds=round(seconds)))
        number = self.before + self.count + 1
        log.info(f"effnet study: unit {number}/{self.total} ({u.arm.name}, seed {u.seed}) ... ETA {eta}")

    def finished(self, u: Unit) -> None:
        self.count += 1
        self.done_macs += u.arm.macs
        self.todo = [v for v in self.todo if v != u]


# ------------------------------------------------------------------------------------------------ in this process
def run_unit(folder: Path, u: Unit, config: str, overrides: list[str]) -> int:
    """`effnet fit` for one unit in this process, then its test evaluation; the exit code (1: a crash)."""
    from effnet_lightning.assembly.in_process import run_command

    unit = _unit_folder(folder, u)
    unit.mkdir(parents=True, exist_ok=True)
    argv = fit_argv(unit, u, config, overrides)
    log.info(f"effnet study: {u.arm.name} seed {u.seed}: effnet {' '.join(argv)}")
    clear_failure(unit)
    started = time.monotonic()
    try:
        ended = run_command(argv, keep=ERROR_TAIL)
    finally:
        record_wall(unit, time.monotonic() - started)
    if ended.code == EXIT_CRASH and ended.error is not None:  # a crash: error.log keeps its traceback
        log.warning(f"effnet study: {u.arm.name} seed {u.seed} crashed: {type(ended.error).__name__}: {ended.error}")
        record_failure(unit, ended.code, ended.error)
    elif ended.code not in (0, *EXIT_STOPPED):  # a user error, a non-finite loss: the fit's own lines
        record_failure(unit, ended.code)
        record_output(unit, ended.stderr)
    if ended.code == 0:
        return evaluate(folder, u, config, overrides)
    return ended.code


def evaluate(folder: Path, u: Unit, config: str, overrides: list[str]) -> int:
    """The unit's test evaluation; a failure is recorded as the unit's (exit 1, traceback in error.log)."""
    unit = _unit_folder(folder, u)
    try:
        evaluate_unit(unit, fit_argv(unit, u, config, overrides, subcommand=False), u.seed)
    except NeverValidated as err:  # flagged, not done: a re-run of the study tries it again
        log.warning(f"effnet study: {u.arm.name} seed {u.seed}: {err}")
        record_not_validated(unit, err)
        return EXIT_CRASH
    except Exception as err:  # a fault while evaluating is the unit's, not the study's end
        log.warning(f"effnet study: {u.arm.name} seed {u.seed}: test evaluation failed: {err}")
        record_failure(unit, EXIT_CRASH, err, what="test")
        return EXIT_CRASH
    return 0


def measure(folder: Path, arm: Arm, trained: Trained, bench_steps: int) -> None:
    record = measure_arm(folder, arm, trained, bench_steps)
    if "error" in record:
        log.warning(f"effnet study: {arm.name}: measuring failed ({record['error']}); see its row")


# ------------------------------------------------------------------------------------------ one process per GPU
def launch(folder: Path, u: Unit, config: str, overrides: list[str], device: int) -> int:
    """`effnet fit` for one unit in a new process on GPU `device` (on a machine without one: on the CPU, `device`
    numbering the parallel slot); its output goes to `<arm>/seed<k>/fit.log`."""
    unit = _unit_folder(folder, u)
    unit.mkdir(parents=True, exist_ok=True)
    argv = fit_argv(unit, u, config, overrides)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": str(device)}
    where = f"on GPU {device}" if _has_cuda() else f"on the CPU (parallel slot {device}; no GPU here)"
    log.info(f"effnet study: {u.arm.name} seed {u.seed} {where}: effnet {' '.join(argv)}")
    clear_failure(unit)
    started = time.monotonic()
    fit_log = unit / layout.FIT_LOG
    with open(fit_log, "a") as out:
        command = [sys.executable, "-m", "effnet_lightning.cli", *argv]
        code = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    record_wall(unit, time.monotonic() - started)
    if code not in (0, *EXIT_STOPPED):
        record_failure(unit, code)
        record_output(unit, fit_log.read_text()[-ERROR_TAIL:])
    return code


def run_parallel(
    units: list[Unit], devices: int, folder: Path, config: str, overrides: list[str]
) -> Iterator[tuple[Unit, int]]:
    """Each unit as its own `effnet fit` process seeing one GPU (CUDA_VISIBLE_DEVICES), at most `devices` at
    once, yielded as they finish. concurrent.futures schedules; a queue hands each process a free GPU."""
    free: queue.Queue[int] = queue.Queue()
    for device in range(devices):
        free.put(device)

    def on_a_free_device(u: Unit) -> int:
        device = free.get()
        try:
            return launch(folder, u, config, overrides, device)
        finally:
            free.put(device)

    with ThreadPoolExecutor(max_workers=devices) as pool:
        futures = {pool.submit(on_a_free_device, u): u for u in units}
        for future in as_completed(futures):
            yield futures[future], future.result()


# ----------------------------------------------------------------------------------------- one submitit job each
@dataclass(frozen=True)
class ArmJob:
    """What a submitit job runs: the unit's fit (resuming from its last.ckpt, decided when the job starts, so a
    requeued job continues), its test evaluation, and its arm's cost on the job's own device. Its messages
    reach the job's log as they reach the terminal under `effnet`."""

    folder: Path
    unit: Unit
    config: str
    overrides: tuple[str, ...]
    base_seed: int
    bench_steps: int

    def __call__(self) -> int:
        with console():
            code = run_unit(self.folder, self.unit, self.config, list(self.overrides))
            if code == EXIT_PREEMPTED and os.environ.get("SLURM_JOB_ID"):  # SIGTERM saved last.ckpt: run again
                subprocess.run(["scontrol", "requeue", os.environ["SLURM_JOB_ID"]], check=False, timeout=60)
            elif code == 0:  # the setting as this job's machine resolves it (precision auto, channels_last on CUDA)
                trained, _ = check_fit(self.config, list(self.overrides), self.unit, self.base_seed)
                measure(self.folder, self.unit.arm, trained, self.bench_steps)
        return code

    def checkpoint(self) -> Any:
        """submitit calls this on its timeout signal and requeues what it returns: the same unit, which resumes."""
        import submitit

        return submitit.helpers.DelayedSubmission(self)


def run_submitit(units: list[Unit], how: Launch, folder: Path, trained: Trained) -> Iterator[tuple[Unit, int]]:
    """One submitit job per unit (Slurm, or local processes), yielded as they finish; a job that raised
    counts as exit 1 (its traceback is in the submitit logs and the unit's error.log)."""
    import submitit

    logs = folder / layout.SUBMITIT
    if how.launcher == "local":
        executor: Any = submitit.LocalExecutor(folder=logs)
        executor.update_parameters(timeout_min=how.time)
    else:
        executor = submitit.AutoExecutor(folder=logs, cluster="slurm")
        executor.update_parameters(
            timeout_min=how.time,
            slurm_partition=how.partition,
            gpus_per_node=how.gpus,
            tasks_per_node=how.gpus,
            name="effnet-study",
        )
    jobs = [
        executor.submit(ArmJob(folder, u, how.config, how.overrides, trained.base_seed, how.bench_steps)) for u in units
    ]
    for u, job in zip(units, jobs, strict=True):
        log.info(f"effnet study: {u.arm.name} seed {u.seed}: submitit job {job.job_id}, logs in {logs}")
    for u, job in zip(units, jobs, strict=True):
        try:
            code = int(job.result())
        except Exception as err:  # submitit re-raises the job's exception (or its failure) here
            log.warning(f"effnet study: job {job.job_id} failed: {one_line(str(err))}")
            record_failure(_unit_folder(folder, u), EXIT_CRASH, err, what="job")
            code = EXIT_CRASH
        yield u, code
