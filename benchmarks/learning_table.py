"""The learning tests' numbers over machines: read the JSON lines that tests/conftest.py appends when
EFFNET_LEARNING_LOG is set, print one row per test and metric with every combination's value and the worst (the
lowest; the highest for a loss).

    rm -f /tmp/learning.jsonl
    for t in 1 2; do for c in default avx2; do for s in 0 1 2; do
        OMP_NUM_THREADS=$t ATEN_CPU_CAPABILITY=$c EFFNET_TEST_SEED=$s EFFNET_LEARNING_LOG=/tmp/learning.jsonl \
            uv run pytest -m learning
    done; done; done
    uv run python benchmarks/learning_table.py /tmp/learning.jsonl

A test's bound must sit well below its worst value here (CONTRIBUTING.md, "Tests that learn").
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log", type=Path, help="the EFFNET_LEARNING_LOG file")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.log.read_text().splitlines() if line.strip()]
    values: dict[tuple[str, str], dict[tuple[str, str, str], float]] = defaultdict(dict)
    for row in rows:
        combination = (row["threads"], row["simd"], row["seed"])
        for metric, value in row["measured"].items():
            values[row["test"].split("::", 1)[1], metric][combination] = float(value)
    combinations = sorted({(r["threads"], r["simd"], r["seed"]) for r in rows})
    header = " | ".join(f"{t} thr, {s}, seed {k}" for t, s, k in combinations)
    print(f"| test | metric | {header} | worst |")
    print("|---|---|" + "---|" * (len(combinations) + 1))
    for (test, metric), by_combination in sorted(values.items()):
        cells = " | ".join(f"{by_combination[c]:.3f}" if c in by_combination else "-" for c in combinations)
        worst = max if "loss" in metric else min  # a loss (or a ratio of losses) is worse when higher
        print(f"| {test} | {metric} | {cells} | {worst(by_combination.values()):.3f} |")


if __name__ == "__main__":
    main()
