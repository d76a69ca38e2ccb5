"""Where a study's units (arm x seed) train: in this process, one process per local GPU, or one submitit job each.

Every unit is a normal `effnet fit` of the base config with the study's overrides, the arm's `model.scaling` and
`seed_everything` = base seed + k; it resumes from its own newest last.ckpt when it has one. In this process the
fit runs through `effnet_lightning.assembly.run.main`; a unit that fails keeps its traceback (or, where the fit
reported its own one line, that output) in `<arm>/seed<k>/error.log`, and the study goes on.

Before any unit trains, `check_fit` gives the whole command line of the first unit to fit's own parser and
builds what it names (LightningCLI with run=False, in a scratch folder): an option neither the study nor fit
knows is one line and exit 2 here, not a failure of every arm. It also reads how the arms train (precision,
memory format, batch, device, test split) for the cost measurements and the tables.
"""

from __future__ import annotations

import io
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
from typing import Any, TextIO

from effnet_lightning.errors import EXIT_CRASH, EXIT_INTERRUPTED, EXIT_PREEMPTED, UserError, one_line
from effnet_lightning.study.plan import Arm
from effnet_lightning.study.results import (
    WALL,
    NeverValidated,
    Trained,
    clear_failure,
    evaluate_unit,
    measure_arm,
    record_failure,
    record_not_validated,
    unit_root,
)
from effnet_lightning.train.run_layout import VERSION_GLOB, last_checkpoints

__all__ = [
    "EXIT_STOPPED",
    "ArmJob",
    "Unit",
    "check_fit",
    "fit_argv",
    "launch",
    "run_parallel",
    "run_submitit",
    "run_unit",
]

EXIT_STOPPED = (EXIT_PREEMPTED, EXIT_INTERRUPTED)  # last.ckpt saved; the study stops and resumes on re-run
ERROR_TAIL = 20_000  # characters of a failed fit's output kept in error.log


class FitOptionsError(UserError):
    """The study's fit overrides (or the base config) do not parse as `effnet fit` options."""


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
    from effnet_lightning.assembly.lightning_cli import EffnetCLI

    with tempfile.TemporaryDirectory() as scratch:
        args = [
            *fit_argv(Path(scratch), u, config, overrides, subcommand=False),
            f"--trainer.default_root_dir={scratch}",
        ]
        if elsewhere and not _has_cuda():
            args += ["--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.num_nodes=1",
                     "--trainer.strategy=auto", "--trainer.precision=32-true"]  # fmt: skip
        typed = sys.argv
        sys.argv = [typed[0], *args]  # read by LightningCLI as its command line (given both, it warns)
        try:
            cli = EffnetCLI(args=None, run=False)
        except ArgumentError as err:
            raise FitOptionsError(f"effnet fit does not take these options: {one_line(str(err))}") from None
        except DataModuleInitError as err:
            raise FitOptionsError(one_line(str(err))) from None
        finally:
            sys.argv = typed
    from effnet_lightning.study.results import has_test_split

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


class _Tee(io.TextIOBase):
    """Writes to the terminal's stream and keeps a copy: a failed fit's own lines go into its error.log."""

    def __init__(self, stream: TextIO) -> None:
        self.stream, self.kept = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.kept.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")


def run_unit(folder: Path, u: Unit, config: str, overrides: list[str]) -> int:
    """`effnet fit` for one unit in this process, then its test evaluation; the exit code (1: a crash)."""
    from effnet_lightning.assembly import run as training

    unit = unit_root(folder, u.arm, u.index)
    unit.mkdir(parents=True, exist_ok=True)
    argv = fit_argv(unit, u, config, overrides)
    print(f"effnet study: {u.arm.name} seed {u.seed}: effnet {' '.join(argv)}", file=sys.stderr, flush=True)
    clear_failure(unit)
    started = time.monotonic()
    typed, stderr = sys.argv, sys.stderr
    sys.argv = [typed[0], *argv]  # the unit's command line as LightningCLI's own: it warns when both differ
    sys.stderr = tee = _Tee(stderr)
    error: BaseException | None = None
    try:
        code = training.main(argv)
    except Exception as err:  # a crash in one unit must not stop the study; its traceback goes to error.log
        error, code = err, EXIT_CRASH
    finally:
        sys.argv, sys.stderr = typed, stderr
        with open(unit / WALL, "a") as out:
            out.write(f"{time.monotonic() - started:.3f}\n")
    if error is not None:
        print(f"effnet study: {u.arm.name} seed {u.seed} crashed: {type(error).__name__}: {error}", file=sys.stderr)
        record_failure(unit, code, error)
    elif code not in (0, *EXIT_STOPPED):
        record_failure(unit, code)
        with open(unit / "error.log", "a") as log:
            log.write(tee.kept.getvalue()[-ERROR_TAIL:])
    if code == 0:
        code = evaluate(folder, u, config, overrides)
    return code


def evaluate(folder: Path, u: Unit, config: str, overrides: list[str]) -> int:
    """The unit's test evaluation; a failure is recorded as the unit's (exit 1, traceback in error.log)."""
    unit = unit_root(folder, u.arm, u.index)
    try:
        evaluate_unit(unit, fit_argv(unit, u, config, overrides, subcommand=False), u.seed)
    except NeverValidated as err:  # flagged, not done: a re-run of the study tries it again
        print(f"effnet study: {u.arm.name} seed {u.seed}: {err}", file=sys.stderr)
        record_not_validated(unit, err)
        return EXIT_CRASH
    except Exception as err:  # a fault while evaluating is the unit's, not the study's end
        print(f"effnet study: {u.arm.name} seed {u.seed}: test evaluation failed: {err}", file=sys.stderr)
        record_failure(unit, EXIT_CRASH, err, what="test")
        return EXIT_CRASH
    return 0


def measure(folder: Path, arm: Arm, trained: Trained, bench_steps: int) -> None:
    record = measure_arm(folder, arm, trained, bench_steps)
    if "error" in record:
        print(f"effnet study: {arm.name}: measuring failed ({record['error']}); see its row", file=sys.stderr)


def launch(folder: Path, u: Unit, config: str, overrides: list[str], device: int) -> int:
    """`effnet fit` for one unit in a new process on GPU `device` (on a machine without one: on the CPU, `device`
    numbering the parallel slot); its output goes to `<arm>/seed<k>/fit.log`."""
    unit = unit_root(folder, u.arm, u.index)
    unit.mkdir(parents=True, exist_ok=True)
    argv = fit_argv(unit, u, config, overrides)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": str(device)}
    where = f"on GPU {device}" if _has_cuda() else f"on the CPU (parallel slot {device}; no GPU here)"
    print(f"effnet study: {u.arm.name} seed {u.seed} {where}: effnet {' '.join(argv)}", file=sys.stderr)
    clear_failure(unit)
    started = time.monotonic()
    with open(unit / "fit.log", "a") as log:
        code = subprocess.run([sys.executable, "-m", "effnet_lightning.cli", *argv], env=env, stdout=log,
                              stderr=subprocess.STDOUT).returncode  # fmt: skip
    with open(unit / WALL, "a") as out:
        out.write(f"{time.monotonic() - started:.3f}\n")
    if code not in (0, *EXIT_STOPPED):
        record_failure(unit, code)
        with open(unit / "error.log", "a") as log:
            log.write((unit / "fit.log").read_text()[-ERROR_TAIL:])
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


@dataclass(frozen=True)
class ArmJob:
    """What a submitit job runs: the unit's fit (resuming from its last.ckpt, decided when the job starts, so a
    requeued job continues), its test evaluation, and its arm's cost on the job's own device."""

    folder: Path
    unit: Unit
    config: str
    overrides: tuple[str, ...]
    base_seed: int
    bench_steps: int

    def __call__(self) -> int:
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


def run_submitit(
    units: list[Unit], args: Any, folder: Path, config: str, overrides: list[str], trained: Trained
) -> Iterator[tuple[Unit, int]]:
    """One submitit job per unit (Slurm, or local processes), yielded as they finish; a job that raised
    counts as exit 1 (its traceback is in the submitit logs and the unit's error.log)."""
    import submitit

    logs = folder / "submitit"
    if args.launcher == "local":
        executor: Any = submitit.LocalExecutor(folder=logs)
        executor.update_parameters(timeout_min=args.time)
    else:
        executor = submitit.AutoExecutor(folder=logs, cluster="slurm")
        executor.update_parameters(timeout_min=args.time, slurm_partition=args.partition,
                                   gpus_per_node=args.gpus, tasks_per_node=args.gpus, name="effnet-study")  # fmt: skip
    jobs = [executor.submit(ArmJob(folder, u, config, tuple(overrides), trained.base_seed, args.bench_steps))
            for u in units]  # fmt: skip
    for u, job in zip(units, jobs, strict=True):
        print(f"effnet study: {u.arm.name} seed {u.seed}: submitit job {job.job_id}, logs in {logs}", file=sys.stderr)
    for u, job in zip(units, jobs, strict=True):
        try:
            code = int(job.result())
        except Exception as err:  # submitit re-raises the job's exception (or its failure) here
            print(f"effnet study: job {job.job_id} failed: {one_line(str(err))}", file=sys.stderr)
            record_failure(unit_root(folder, u.arm, u.index), EXIT_CRASH, err, what="job")
            code = EXIT_CRASH
        yield u, code
