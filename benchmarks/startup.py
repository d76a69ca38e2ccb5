"""Start-up cost of the `effnet` commands: wall and CPU seconds until each returns, and which imports pay it.

Each command runs N times in a fresh interpreter (`python -m effnet_lightning.cli ...`), the way a user's shell
runs it; CPU seconds are the child's user + system time (getrusage), steadier than wall time on a shared
machine. `--importtime` adds one `python -X importtime` run per command and sums the imports' own time by
top-level package: the packages a command loads and what each costs.

`--old DIR` runs a second checkout (e.g. `git worktree add --detach /tmp/old main`) side by side, in the same
run: its packages are laid out as the editable install maps them (`effnet_lightning.datamodules` is
`datamodules/`, `effnet_lightning.callbacks` is `callbacks/`) in a temporary folder put first on PYTHONPATH.

    OMP_NUM_THREADS=1 uv run python benchmarks/startup.py [--runs 3] [--importtime] [--old /tmp/old] \\
        [--commands help scale scale-help datamodules fit-help]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

COMMANDS = {  # name for --commands: the arguments after `effnet`
    "help": ("--help",),
    "scale": ("scale", "--phi", "1"),
    "scale-help": ("scale", "--help"),
    "datamodules": ("datamodules",),
    "fit-help": ("fit", "--help"),
}
TOP_PACKAGES = 8  # packages listed per command by --importtime
IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+\d+ \|(\s*)(\S+)")  # self µs | cumulative µs | name


def run_once(command: tuple[str, ...], env: dict[str, str], importtime: bool = False) -> tuple[float, float, str]:
    """(wall s, CPU s, stderr) of one fresh `python -m effnet_lightning.cli <command>`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    flags = ["-X", "importtime"] if importtime else []
    done = subprocess.run(  # -P: the working directory's effnet_lightning must not shadow the one measured
        [sys.executable, "-P", *flags, "-m", "effnet_lightning.cli", *command], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"effnet {' '.join(command)} exited {done.returncode}: {done.stderr[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), done.stderr


def import_seconds(stderr: str) -> Counter[str]:
    """Seconds of import work (each module's own time) per top-level package, from -X importtime's lines."""
    total: Counter[str] = Counter()
    for match in IMPORT_LINE.finditer(stderr):
        total[match.group(3).split(".")[0]] += int(match.group(1)) / 1e6
    return total


def overlay(checkout: Path, into: Path) -> Path:
    """A folder where `checkout`'s code imports as the editable install maps it; put it first on PYTHONPATH."""
    package = into / "effnet_lightning"
    package.mkdir()
    for entry in (checkout / "effnet_lightning").iterdir():
        (package / entry.name).symlink_to(entry)
    for sub in ("datamodules", "callbacks"):
        (package / sub).symlink_to(checkout / sub)
    return into


def measure(commands: list[str], code: dict[str, dict[str, str]], runs: int, importtime: bool) -> None:
    """Per command, each code's runs alternate, so a change in the machine's load hits old and new alike."""
    for command in (COMMANDS[name] for name in commands):
        samples: dict[str, list[tuple[float, float]]] = {label: [] for label in code}
        for _ in range(runs):
            for label, env in code.items():
                samples[label].append(run_once(command, env)[:2])
        for label, env in code.items():
            wall = statistics.median(s[0] for s in samples[label])
            cpu = statistics.median(s[1] for s in samples[label])
            name = f"effnet {' '.join(command)}"
            print(f"{label:<4} {name:<23} wall {wall:6.2f} s  CPU {cpu:6.2f} s  (median of {runs})", flush=True)
            if importtime:
                top = import_seconds(run_once(command, env, importtime=True)[2]).most_common(TOP_PACKAGES)
                print("     imports: " + ", ".join(f"{name} {seconds:.2f}s" for name, seconds in top), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per command (default 3)")
    parser.add_argument("--importtime", action="store_true", help="also sum -X importtime by top-level package")
    parser.add_argument("--commands", nargs="+", choices=COMMANDS, default=list(COMMANDS), help="default: all")
    parser.add_argument("--old", type=Path, help="a second checkout to measure side by side (e.g. /tmp/old)")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        code = {"new": env}
        if args.old is not None:
            code = {"old": {**env, "PYTHONPATH": str(overlay(args.old.resolve(), Path(tmp)))}, **code}
        measure(args.commands, code, args.runs, args.importtime)


if __name__ == "__main__":
    main()
