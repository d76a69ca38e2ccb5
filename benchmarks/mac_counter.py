"""The arithmetic MAC counter (flops.cost) against torch's FlopCounterMode on a meta-device forward (halved), the
counter it replaced: equal counts and the time each takes, on B0-B7 and 100 random scalings.

    OMP_NUM_THREADS=1 uv run python benchmarks/mac_counter.py --random 100

Random scalings: depth and width uniform in [0.1, 3], resolution uniform in [8, 600] px, seed 0. Prints one line
per mismatch (none expected), then the totals and the median time per model of each counter.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--random", type=int, default=100, help="random scalings besides B0-B7")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from effnet_lightning.model import scaling as sc
    from effnet_lightning.model.flops import _cached, cost, count_macs, count_params
    from effnet_lightning.model.network import create_model

    rng = random.Random(args.seed)
    scalings = [sc.official(v) for v in sc.OFFICIAL_VARIANTS] + [
        sc.Scaling(f"r{i}", rng.uniform(0.1, 3.0), rng.uniform(0.1, 3.0), rng.randint(8, 600), 0.2)
        for i in range(args.random)
    ]
    traced_s, arithmetic_s, mismatches = [], [], 0
    for s in scalings:
        start = time.perf_counter()
        with torch.device("meta"):
            model = create_model(s, num_classes=1000)
        traced = count_macs(model, s.resolution), count_params(model)
        traced_s.append(time.perf_counter() - start)
        _cached.cache_clear()  # time the arithmetic itself, not the cache
        start = time.perf_counter()
        counted = cost(s.depth, s.width, s.resolution)
        arithmetic_s.append(time.perf_counter() - start)
        if (counted.macs, counted.params) != traced:
            mismatches += 1
            print(f"MISMATCH {s}: arithmetic {counted.macs}, {counted.params}; FlopCounterMode {traced}")
    what = f"{len(scalings)} scalings (B0-B7 + {args.random} random, seed {args.seed})"
    print(f"{what}: {mismatches} differ in MACs or params")
    print(
        f"meta build + FlopCounterMode: median {1e3 * statistics.median(traced_s):.1f} ms per model, "
        f"total {sum(traced_s):.1f} s"
    )
    print(
        f"arithmetic (flops.cost):      median {1e3 * statistics.median(arithmetic_s):.3f} ms per model, "
        f"total {sum(arithmetic_s):.3f} s"
    )


if __name__ == "__main__":
    main()
