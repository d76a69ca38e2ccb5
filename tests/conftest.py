"""Shared fixtures: CIFAR-10 stand-ins in the real format (see cifar_standin.py), offline."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

# Bytecode cache for this process and the processes tests start. Where PYTHONDONTWRITEBYTECODE is set (these
# machines), no .pyc is ever written, so every `effnet` subprocess compiled torch, Lightning, timm, scipy and
# matplotlib from source again: 18 s of CPU per process against 7 s with a warm cache (measured here; 10 tests start
# processes). The cache goes to .pytest_cache/pycache, never beside the sources, and children inherit it.
PYCACHE = Path(__file__).parents[1] / ".pytest_cache" / "pycache"
sys.pycache_prefix, sys.dont_write_bytecode = str(PYCACHE), False
os.environ["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

# `uv run pytest` runs the tests in worker processes (pytest-xdist, `-n auto` in pyproject.toml): as many as there
# are cores, each with one torch thread (and the processes it starts), because OpenMP threads that outnumber the
# cores wait on each other (a fit ran 14x slower that way here). With OMP_NUM_THREADS set (as to check the learning
# tests with 1 and 2 threads: CONTRIBUTING.md, "Tests that learn") each worker keeps that many threads and there
# are fewer workers (pytest_xdist_auto_num_workers, below).
if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"

# Lightning's log handler keeps the sys.stderr of its import. Imported here, before any test's capfd swaps in a
# stream that closes when that test ends, so later in-process runs do not log into a closed file.
# Shared helpers (run helpers, testkits) live in tests/support/ and are imported by plain name, as is the CIFAR-10
# stand-in writer, which lives in benchmarks/ (benchmarks use it too and never import from tests/).
SUPPORT = Path(__file__).parent / "support"
STANDIN = Path(__file__).parents[1] / "benchmarks"
sys.path[:0] = [str(SUPPORT), str(STANDIN)]

import lightning.pytorch  # noqa: E402, F401
import pytest  # noqa: E402
from cifar_standin import checksum_constants, write_cifar10, write_sitecustomize  # noqa: E402
from torchvision.datasets import CIFAR10  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def effnet_argv() -> Iterator[None]:
    """`cli.main([...])` runs as if typed after `effnet`: pytest's own arguments are not the command line."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["effnet"])
        yield


@pytest.fixture(scope="module")
def cifar10_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The stand-ins once per test module, accepted by torchvision in this process for the module's duration."""
    root = tmp_path_factory.mktemp("cifar10")
    md5s = write_cifar10(root)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in checksum_constants(md5s).items():
            patch.setattr(CIFAR10, name, value)
        yield root


@pytest.fixture
def cifar10_md5s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Writes the stand-ins to tmp_path/"cifar10" and patches torchvision's checksums; returns {file: md5}."""
    md5s = write_cifar10(tmp_path / "cifar10")
    for name, value in checksum_constants(md5s).items():
        monkeypatch.setattr(CIFAR10, name, value)
    return md5s


@pytest.fixture
def cifar10_root(tmp_path: Path, cifar10_md5s: dict[str, str]) -> Path:
    """A data_dir with cifar-10-batches-py/ (600 train, 200 test images) and the archive (in-process)."""
    return tmp_path / "cifar10"


@pytest.fixture
def cifar10_env(tmp_path: Path, cifar10_md5s: dict[str, str]) -> dict[str, str]:
    """Environment for a subprocess (`effnet fit ...`) that accepts the same stand-ins as cifar10_root."""
    folder = write_sitecustomize(tmp_path / "sitecustomize", cifar10_md5s).parent
    path = os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One debug fit (φ = -4, 4 epochs of 15 steps) for the tests that only read a trained run: a fit costs 5 to
    15 s, and each module fitted its own. Read-only: a test that evaluates, predicts or continues it copies the
    folder first (shutil.copytree). Its data (seed 0) is byte-identical to every other stand-in write."""
    from effnet_run import TRAINED_EPOCHS, debug_args
    from learning import learning_seed

    from effnet_lightning.cli import main

    root = tmp_path_factory.mktemp("trained")
    md5s = write_cifar10(root / "cifar10")
    trained_args = [f"--trainer.max_epochs={TRAINED_EPOCHS}", f"--seed_everything={learning_seed()}"]  # learning tests
    with pytest.MonkeyPatch.context() as patch:  # only for the fit: a module's own patch stays as it was
        for name, value in checksum_constants(md5s).items():
            patch.setattr(CIFAR10, name, value)
        assert main(["fit", *debug_args(root / "cifar10", root / "runs", *trained_args)]) == 0
    return root / "runs" / "version_0"


@pytest.fixture(params=["python's tarfile", "no data filter"])
def tarfile_flavour(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Archive extraction as this Python does it, and as a Python without PEP 706's data filter (before 3.10.12 /
    3.11.4, e.g. Debian 12's 3.11.2) does: torchvision and the CIFAR-10 datamodule both ask `hasattr`."""
    import tarfile

    if request.param == "no data filter" and hasattr(tarfile, "data_filter"):
        monkeypatch.delattr(tarfile, "data_filter")
    return request.param


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one worker per OMP_NUM_THREADS threads of the cores this process may use (one thread a worker
    when it is not set)."""
    threads = int(os.environ.get("OMP_NUM_THREADS") or 1)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1  # not macOS
    return max(1, cores // threads)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """With EFFNET_LEARNING_LOG set, append what each learning test measured (its `record_property` values) to
    that file, one JSON line per test, so that its bound can be set from every machine's numbers."""
    from learning import LOG_VARIABLE, machine

    log = os.environ.get(LOG_VARIABLE)
    if not log or report.when != "call" or not report.user_properties:
        return
    if hasattr(report, "node"):  # pytest-xdist's controller, receiving a worker's report: the worker wrote it
        return
    row = {"test": report.nodeid, "outcome": report.outcome, **machine(), "measured": dict(report.user_properties)}
    with open(log, "a") as file:
        file.write(json.dumps(row) + "\n")


# The files that take longest (BENCHMARKS.md, "The test suite's time"), in that order. pytest-xdist hands each
# worker whole files (`--dist loadfile`) in collection order, so a long file collected last keeps one worker busy
# while the other has finished: these go first, and the short ones fill in around them.
LONGEST_FIRST = (
    "tests/study/test_study.py",
    "tests/train/test_preemption.py",
    "tests/train/test_fit_cli.py",
    "tests/docs/test_commands.py",
    "tests/train/test_ddp_bf16.py",
    "tests/tools/test_export.py",
    "tests/docs/test_guide.py",
    "tests/train/test_resume.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest files first (LONGEST_FIRST), the rest in their usual order; within a file, tests keep theirs."""
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    root = config.rootpath
    items.sort(key=lambda item: rank.get(item.path.relative_to(root).as_posix(), len(rank)))
