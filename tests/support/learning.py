"""What every learning test (`@pytest.mark.learning`: it asserts a trained model's quality) shares: its seed.

Thread count and SIMD width change the floats of every training step, so such a test is a claim about every
machine. It trains with the seed in EFFNET_TEST_SEED (default 0), so that its bound can be checked over threads,
kernels and seeds before it is trusted (README, "Tests that learn").
"""

from __future__ import annotations

import os

__all__ = ["SEED_VARIABLE", "learning_seed"]

SEED_VARIABLE = "EFFNET_TEST_SEED"


def learning_seed() -> int:
    """The seed a learning test trains with: EFFNET_TEST_SEED, default 0."""
    return int(os.environ.get(SEED_VARIABLE, "0"))
