"""The layout of a study folder on disk: the one place its names are written.

    <trainer.default_root_dir, default runs>/study-NAME/     one folder per study (NAME: --name, default the kind)
        study.yaml                                          what was asked (config hash, overrides) and the arms
        plan.csv                                            the arms at their counted costs
        results.csv, runs.csv, comparisons.csv, results.md  the tables (one row per arm, per unit, per comparison)
        coefficients.yaml                                   grid: the best point's alpha, beta, gamma
        <plot>.png, tensorboard/                            the plots, as files and as TensorBoard figures
        submitit/                                           the jobs' logs (--launcher slurm|local)
        <arm>/cost.json                                     the arm's measured throughput and memory
        <arm>/error.log                                     why measuring the arm failed
        <arm>/seed<k>/                                      one unit: the arm at seed k
            version_N/                                      its fit's run folders (train/run_layout.py)
            test/                                           its test evaluation's run folder
            result.json, trained.json                       its evaluation, and whether its curves show it trained
            failed, error.log                               a failed unit's exit code (or why), and its traceback
            fit.log, wall_s.txt                             the output of a fit run as its own process; seconds

Light to import (no torch).
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "COEFFICIENTS",
    "COMPARISONS",
    "COST",
    "ERROR_LOG",
    "FAILED",
    "FIT_LOG",
    "HEALTH",
    "PLAN",
    "RECORD",
    "REPORT",
    "RESULT",
    "RESULTS",
    "RUNS",
    "SUBMITIT",
    "TENSORBOARD",
    "TEST_DIR",
    "WALL",
    "arm_folder",
    "picture",
    "study_folder",
    "unit_folder",
]

# the study folder
RECORD = "study.yaml"  # {"asked": what the command asked, "arms": the plan's arms}: a re-run must ask the same
PLAN = "plan.csv"
RESULTS = "results.csv"  # one row per arm
RUNS = "runs.csv"  # one row per unit
COMPARISONS = "comparisons.csv"  # one row per paired comparison
REPORT = "results.md"  # the verdict in words, then the tables
COEFFICIENTS = "coefficients.yaml"  # grid: for `family --phi ... --coefficients`
TENSORBOARD = "tensorboard"  # the plots as TensorBoard figures
SUBMITIT = "submitit"  # submitit's job logs
# an arm's folder
COST = "cost.json"  # once its throughput and memory were measured (or failed to be)
ERROR_LOG = "error.log"  # a failure's traceback (or exit code and output); also in a unit's folder
# a unit's folder
RESULT = "result.json"  # once its fit finished and it was evaluated
HEALTH = "trained.json"  # written once its result exists (trainability.py)
FAILED = "failed"  # a failed unit's exit code, or why it is not done
FIT_LOG = "fit.log"  # the output of its fit run as its own process (--devices N)
WALL = "wall_s.txt"  # one line per fit invocation: seconds it ran (a resumed unit adds up)
TEST_DIR = "test"  # trainer.default_root_dir of its test evaluation


def study_folder(root: str | Path, name: str) -> Path:
    """`<root>/study-NAME`."""
    return Path(root) / f"study-{name}"


def arm_folder(folder: Path, arm: str) -> Path:
    """`<study>/<arm>`."""
    return folder / arm


def unit_folder(folder: Path, arm: str, seed_index: int) -> Path:
    """`<study>/<arm>/seed<k>`: the arm trained at its k-th seed."""
    return arm_folder(folder, arm) / f"seed{seed_index}"


def picture(folder: Path, name: str) -> Path:
    """`<study>/<name>.png`."""
    return folder / f"{name}.png"
