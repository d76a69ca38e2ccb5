"""How tests run `effnet`: in process through `cli.main` (seconds), or as the console script (a new Python that
imports torch, Lightning and timm: about 15 s on 2 cores) where only a real process shows the behaviour."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from effnet_lightning.cli import main

EFFNET = str(Path(sys.executable).with_name("effnet"))  # the console script of this environment
DEBUG_CONFIG = Path(__file__).parents[2] / "configs" / "cifar_debug.yaml"
STEPS_PER_EPOCH = 15  # 500 training stand-ins // batch 32 (drop_last)
TRAINED_EPOCHS = 4  # conftest.py's session run: test_fit_cli asserts it learnt (val/acc1 0.72 measured)


@dataclass(frozen=True)
class Done:
    returncode: int
    stdout: str
    stderr: str


def effnet(capfd: pytest.CaptureFixture, *args: str) -> Done:
    """`effnet <args>` in this process; its exit code (also when it exits through SystemExit, as argparse and
    --print_config do) and stdout/stderr as a user would see them (file-descriptor level)."""
    capfd.readouterr()  # drop what came before
    try:
        returncode = main(list(args))
    except SystemExit as exit_:
        returncode = 0 if exit_.code is None else int(exit_.code)
    out, err = capfd.readouterr()
    return Done(returncode, out, err)


def effnet_process(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """The console script in a new process (2 threads on a shared 2-core machine stall 100x: one thread)."""
    env = {**env, "OMP_NUM_THREADS": "1"}
    return subprocess.run([EFFNET, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def debug_args(data_dir: Path, runs: Path, *extra: str) -> list[str]:
    """configs/cifar_debug.yaml on the CIFAR-10 stand-ins: 15 steps per epoch, 4 validation batches, precise BN
    over 2 batches (by default it would read the whole stand-in training split before every validation), no bar."""
    return [
        "--config",
        str(DEBUG_CONFIG),
        f"--data.init_args.data_dir={data_dir}",
        "--data.init_args.download=false",
        "--data.init_args.num_workers=0",
        "--data.init_args.val_size=100",
        "--data.init_args.batch_size=32",
        f"--trainer.default_root_dir={runs}",
        f"--trainer.limit_train_batches={STEPS_PER_EPOCH}",
        "--trainer.limit_val_batches=4",
        "--precise_bn.num_images=64",
        "--trainer.enable_progress_bar=false",
        *extra,
    ]


def scalars(run_dir: Path) -> dict[str, list[float]]:
    """Every TensorBoard scalar of a run, by tag, in logging order."""
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def error_lines(stderr: str) -> list[str]:
    """The lines `effnet` itself wrote to stderr as errors."""
    return [line for line in stderr.splitlines() if line.startswith("effnet")]


def subprocess_env(site_folder: Path) -> dict[str, str]:
    """This environment with `site_folder` (holding a sitecustomize.py) first on PYTHONPATH."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site_folder), os.environ.get("PYTHONPATH")]))}
