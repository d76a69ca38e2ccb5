"""Test top-1 of a finished study's selected checkpoints with BatchNorm statistics recomputed (precise BN), beside
the study's own numbers: the same weights, only the statistics differ.

    uv run python benchmarks/precise_bn_eval.py runs/study-NAME [--num-images 8192]

For each unit with a result.json: its config.yaml and selected checkpoint, `Trainer.test` with PreciseBN (the
study trained with `precise_bn: null`, so the checkpoints hold training's running statistics). Prints a Markdown
table per arm: top-1 per seed before (result.json) and after, mean ± sd.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import yaml


def evaluate(unit: Path, num_images: int) -> float:
    from effnet_lightning.assembly.lightning_cli import EffnetCLI

    result = json.loads((unit / "result.json").read_text())
    checkpoint = Path(result["checkpoint"])
    config = sorted(unit.glob("version_*/config.yaml"))[-1]
    saved = yaml.safe_load(config.read_text())  # the fit's resolved config, without fit's own ckpt_path
    for key in ("ckpt_path", "weights_only"):
        saved.pop(key, None)
    saved["precise_bn"] = {
        "class_path": "effnet_lightning.callbacks.PreciseBN",
        "init_args": {"num_images": num_images},
    }
    with tempfile.TemporaryDirectory() as scratch:
        edited = Path(scratch) / "config.yaml"
        edited.write_text(yaml.safe_dump(saved))
        args = [
            "--config",
            str(edited),
            f"--trainer.default_root_dir={scratch}/runs",
            f"--checkpoint.dirpath={checkpoint.parent}",
        ]
        typed = sys.argv
        sys.argv = [typed[0], *args]
        try:
            cli = EffnetCLI(args=None, run=False)
        finally:
            sys.argv = typed
        (metrics,) = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=str(checkpoint), verbose=False)
    prefix = "test_ema/" if result["selected_by"].startswith("val_ema/") else "test/"
    return float(metrics[f"{prefix}acc1"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--num-images", type=int, default=8192)
    parser.add_argument("--arms", nargs="+", help="only these arms")
    parser.add_argument("--json", type=Path, help="also write {arm: [top-1 with precise BN per seed]} here")
    args = parser.parse_args()
    rows = []
    for arm in sorted(p for p in args.study.iterdir() if p.is_dir() and list(p.glob("seed*/result.json"))):
        if args.arms and arm.name not in args.arms:
            continue
        units = sorted(arm.glob("seed*/result.json"))
        before = [json.loads(u.read_text())["acc1"] for u in units]
        after = [evaluate(u.parent, args.num_images) for u in units]
        rows.append((arm.name, before, after))
    if args.json:
        args.json.write_text(json.dumps({name: after for name, _, after in rows}) + "\n")
    print("| arm | test top-1, running statistics (seeds) | mean ± sd | precise BN (seeds) | mean ± sd |")
    print("|---|---|---|---|---|")
    for name, before, after in rows:
        cells = []
        for values in (before, after):
            sd = f" ± {100 * statistics.stdev(values):.1f}" if len(values) > 1 else ""
            cells += [", ".join(f"{100 * v:.1f}" for v in values), f"{100 * statistics.fmean(values):.1f}{sd}"]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
