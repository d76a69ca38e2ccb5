"""A study's logged curves per arm and seed: validation loss after epoch 1 (raw and EMA), test top-1, the train
loss's worst post-warm-up window and last epoch, and trainability.py's verdict; a Markdown table.

    uv run python benchmarks/study_curves.py runs/study-NAME [--warmup-epochs 1] [--classes 10] [--smoothing 0.1]

Reads each unit's TensorBoard events and result.json (what `effnet study` wrote); trains nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from effnet_lightning.study import trainability as tr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--warmup-epochs", type=float, default=1.0)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--smoothing", type=float, default=0.1)
    args = parser.parse_args()
    print(
        "| arm | val loss after epoch 1, raw (seeds) | EMA | test top-1 (seeds) | mean ± sd | worst train loss "
        "after warm-up | last-epoch train loss | trained |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for arm in sorted(p for p in args.study.iterdir() if p.is_dir() and list(p.glob("seed*"))):
        raw, ema, top1, worst, final, flags = [], [], [], [], [], []
        for unit in sorted(arm.glob("seed*")):
            result = unit / "result.json"
            if not result.is_file():
                continue
            top1.append(json.loads(result.read_text())["acc1"])
            raw_curves, ema_curves = tr.read_curves(unit, "val/"), tr.read_curves(unit, "val_ema/")
            raw.append(raw_curves.val_loss[0])
            ema.append(ema_curves.val_loss[0])
            after = [v for s, v in raw_curves.train_loss if s >= args.warmup_epochs * raw_curves.steps_per_epoch]
            windows = [statistics.fmean(after[i : i + tr.WINDOW]) for i in range(len(after) - tr.WINDOW + 1)]
            worst.append(max(windows))
            last = max(raw_curves.train_epoch)
            final.append(
                statistics.fmean(
                    v for (_, v), e in zip(raw_curves.train_loss, raw_curves.train_epoch, strict=True) if e == last
                )
            )
            health = tr.judge(ema_curves, args.classes, args.smoothing, args.warmup_epochs)
            flags.append("yes" if health.trained else "no: " + "; ".join(health.reasons))
        if not top1:
            continue
        spread = f"{100 * statistics.fmean(top1):.1f}" + (
            f" ± {100 * statistics.stdev(top1):.1f}" if len(top1) > 1 else ""
        )
        print(
            f"| {arm.name} | {', '.join(f'{v:.3g}' for v in raw)} | {', '.join(f'{v:.3g}' for v in ema)} | "
            f"{', '.join(f'{100 * v:.1f}' for v in top1)} | {spread} | {', '.join(f'{v:.2f}' for v in worst)} | "
            f"{', '.join(f'{v:.2f}' for v in final)} | {' / '.join(flags)} |"
        )


if __name__ == "__main__":
    main()
