"""Real CPU peak memory of `effnet benchmark`'s training loop over memory.py's estimate: the MEMORY_HEADROOM
factor that benchmark.memory_shortfall multiplies the estimate by (allocator slack, backward's temporaries, the
benchmark's own copies are not in the estimate).

    OMP_NUM_THREADS=1 uv run python benchmarks/memory_headroom.py --variant b0 --batch-size 8

Each measurement runs in a fresh process: the peak (VmHWM of /proc/self/status) minus the resident memory after
imports, over the estimate's training bytes. Linux only.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

KIB = 1024  # /proc/self/status reports kB


def resident(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * KIB
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(variant: str, batch_size: int) -> None:
    from effnet_lightning.model import scaling as sc
    from effnet_lightning.model.memory import estimate
    from effnet_lightning.tools.measure import Setting, run

    spec = sc.ScalingSpec(variant=variant)
    setting = Setting(batch_size=batch_size, steps=2, warmup=1)
    expected = estimate(spec.resolve(), setting.num_classes).training_bytes(batch_size)
    before = resident("VmRSS")
    run(spec, setting)
    grown = resident("VmHWM") - before
    print(
        f"{variant} batch {batch_size}: peak growth {grown / 2**30:.2f} GiB, estimate {expected / 2**30:.2f} GiB, "
        f"ratio {grown / expected:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="b0")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure(args.variant, args.batch_size[0])
        return
    for batch in args.batch_size:  # one process each: VmHWM never goes down
        command = [sys.executable, __file__, "--child", "--variant", args.variant, "--batch-size", str(batch)]
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
