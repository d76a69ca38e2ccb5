"""What every learning test (`@pytest.mark.learning`: it asserts a trained model's quality) shares: its seed.

Thread count and SIMD width change the floats of every training step, so such a test is a claim about every
machine. It trains with the seed in EFFNET_TEST_SEED (default 0), so that its bound can be checked over threads,
kernels and seeds before it is trusted (CONTRIBUTING.md, "Tests that learn").

Each learning test also records what it measured with pytest's `record_property`; with EFFNET_LEARNING_LOG set,
tests/conftest.py appends those values, with the thread count, kernels and seed, to that JSON-lines file, and
benchmarks/learning_table.py turns the file into the table its bounds are set from.
"""

from __future__ import annotations

import os

__all__ = ["LOG_VARIABLE", "SEED_VARIABLE", "learning_seed", "machine"]

SEED_VARIABLE = "EFFNET_TEST_SEED"
LOG_VARIABLE = "EFFNET_LEARNING_LOG"  # a JSON-lines file the measured values are appended to


def learning_seed() -> int:
    """The seed a learning test trains with: EFFNET_TEST_SEED, default 0."""
    return int(os.environ.get(SEED_VARIABLE, "0"))


def machine() -> dict[str, str]:
    """What changes a training step's floats from one machine to another, as this process runs."""
    return {
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "simd": os.environ.get("ATEN_CPU_CAPABILITY", "default"),
        "seed": str(learning_seed()),
    }
