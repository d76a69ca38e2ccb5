"""The seed of a run configured with `seed_everything: true`: a new random one for every run.

Lightning's `seed_everything()` without a seed uses 0 (its documented default), so `true` alone never varied.
Rank 0 draws the seed and exports it; the ranks Lightning's DDP launcher starts inherit rank 0's environment
(LOCAL_RANK > 0) and take it. Ranks started together by torchrun or SLURM cannot share a drawn seed: they use 0,
given explicitly.
"""

from __future__ import annotations

import contextlib
import os
import random

__all__ = ["DRAWN_SEED_VARIABLE", "MAX_SEED", "draw_seed", "drawn_seed"]

MAX_SEED = 2**32 - 1  # numpy's seed range, as Lightning's seed_everything checks it
DRAWN_SEED_VARIABLE = "EFFNET_DRAWN_SEED"  # rank 0's drawn seed, for the DDP ranks it launches


def drawn_seed() -> int:
    """A new random seed on rank 0 (exported for the ranks it launches), rank 0's on those ranks, 0 on ranks
    started together by torchrun or SLURM."""
    if int(os.environ.get("LOCAL_RANK", "0")) > 0 and DRAWN_SEED_VARIABLE in os.environ:
        return int(os.environ[DRAWN_SEED_VARIABLE])
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 or int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        return 0
    seed = random.SystemRandom().randint(0, MAX_SEED)
    os.environ[DRAWN_SEED_VARIABLE] = str(seed)
    return seed


def draw_seed(environment: contextlib.ExitStack) -> int:
    """`drawn_seed()`, with the variable it exports put back as it was when `environment` closes (the command
    has ended: a second command in the same process draws its own)."""
    environment.callback(_restore_variable, DRAWN_SEED_VARIABLE, os.environ.get(DRAWN_SEED_VARIABLE))
    return drawn_seed()


def _restore_variable(name: str, value: str | None) -> None:
    """Put an environment variable back as it was (None: unset)."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
