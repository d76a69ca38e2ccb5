"""Does fine-tuning from pretrained weights beat random init on a small real dataset? Asked offline on
scikit-learn's digits: a φ = -4 EfficientNet at 16 px is pretrained on digits 0-4, then trained on digits 5-9 with
10 images per class from random init, from those weights (`model.init`, the classifier re-initialised), and from
those weights with the backbone frozen for the first epoch (`model.frozen_epochs`), with the same recipe and seeds,
for 5, 10 and 30 epochs (25, 50 and 150 updates); test top-1 of the last weights on the held-out 5-9 test split,
each arm paired with random init over seeds at each budget.

    uv run python benchmarks/finetune_digits.py runs/finetune-digits --seeds 3

writes digits/ (the two image folders), pretrain/ and seed<k>-<arm>/ run folders, results.csv (one row
per arm and seed) and results.md (the paired comparison, effnet_lightning.study.verdict). The splits are those of
make_digits_folder.py. tests/train/test_finetune_learns.py runs the same recipe, shorter.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from make_digits_folder import write_digits
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from effnet_lightning.cli import main as effnet
from effnet_lightning.study.verdict import paired, sentence

__all__ = ["Recipe", "fit_and_test", "pretrain", "write_folders"]

SOURCE_DIGITS, TARGET_DIGITS = range(5), range(5, 10)
SHOTS = 10  # training images per target digit
HEAD_FIRST_EPOCHS = 1  # the head-first arm: classifier only for this many epochs
BUDGETS = (5, 10, 30)  # fine-tuning epochs
TITLE = "Fine-tuning from pretrained weights against random init: digits 5-9, 10 images per digit"


@dataclass(frozen=True)
class Recipe:
    """What both arms share; the test uses fewer epochs."""

    pretrain_epochs: int = 10  # 85 updates of 64 images
    finetune_epochs: int = 5  # 25 updates of 10 images
    resolution: int = 16  # px: 8 px digits upsampled 2x, as configs/table7_digits.yaml
    phi: float = -4.0
    lr: float = 0.064  # per 256 images (x batch 10 / 256 = 0.0025 when fine-tuning)


def write_folders(out: Path) -> tuple[Path, Path]:
    """digits/source (0-4, the whole split) and digits/target (5-9, 10 training images per digit)."""
    source, target = out / "digits" / "source", out / "digits" / "target"
    if not source.exists():
        write_digits(source, SOURCE_DIGITS)
        write_digits(target, TARGET_DIGITS, train_per_class=SHOTS)
    return source, target


def arguments(data: Path, runs: Path, seed: int, recipe: Recipe, epochs: int, batch: int) -> list[str]:
    """`effnet fit` on an image folder of digits (the recipe of configs/table7_digits.yaml, shortened)."""
    return [
        f"--seed_everything={seed}",
        "--data=ImageFolderDataModule",
        f"--data.data_dir={data}",
        "--data.crop_pct=1.0",
        "--data.scale=[0.8, 1.0]",
        "--data.ratio=[0.9, 1.1]",
        "--data.hflip=0.0",
        "--data.interpolation=bilinear",
        f"--data.batch_size={batch}",
        "--data.num_workers=0",
        "--data.persistent_workers=false",
        f"--model.scaling.phi={recipe.phi}",
        f"--model.scaling.resolution={recipe.resolution}",
        "--model.bn_momentum=0.1",
        "--model.drop_path_rate=0.05",
        "--model.lr_schedule=cosine",
        "--model.warmup_epochs=1",
        "--model.warmup_lr_factor=0.1",
        f"--model.lr={recipe.lr}",
        "--trainer.accelerator=cpu",
        "--trainer.precision=32-true",
        f"--trainer.max_epochs={epochs}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.log_every_n_steps=5",
        f"--trainer.check_val_every_n_epoch={epochs}",
        f"--trainer.default_root_dir={runs}",
        "--cam_images=null",
        "--prediction_grid=null",
        "--confusion_matrix=null",
    ]


def pretrain(source: Path, runs: Path, recipe: Recipe) -> Path:
    """The source network: trained on digits 0-4; returns its last checkpoint (kept from an earlier call)."""
    last = runs / "version_0" / "checkpoints" / "last.ckpt"
    if last.is_file():
        return last
    code = effnet(["fit", *arguments(source, runs, 0, recipe, recipe.pretrain_epochs, batch=64)])
    if code != 0:
        raise SystemExit(f"pretraining failed (exit {code})")
    return runs / "version_0" / "checkpoints" / "last.ckpt"


def fit_and_test(target: Path, runs: Path, seed: int, recipe: Recipe, extra: list[str]) -> float:
    """Train on the 50 target images (from random init, or as `extra` says), then test top-1 of the last weights."""
    fit = ["fit", *arguments(target, runs, seed, recipe, recipe.finetune_epochs, batch=10), *extra]
    if effnet(fit) != 0:
        raise SystemExit(f"fit in {runs} failed")
    run = runs / "version_0"
    if effnet(["test", "--config", str(run / "config.yaml"), "--ckpt_path", str(run / "checkpoints" / "last.ckpt")]):
        raise SystemExit(f"test of {run} failed")
    events = EventAccumulator(str(run / "eval" / "version_0"))
    events.Reload()
    return events.Scalars("test/acc1")[-1].value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the data, the runs and the results")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    recipe = Recipe()
    source, target = write_folders(args.out)
    start = time.monotonic()
    checkpoint = pretrain(source, args.out / "pretrain", recipe)
    pretrained = [f"--model.init={checkpoint}", "--model.reset_classifier=true"]
    arms = {
        "random": [],
        "finetune": pretrained,
        "head-first": [*pretrained, f"--model.frozen_epochs={HEAD_FIRST_EPOCHS}"],
    }
    scores: dict[tuple[int, str], dict[int, float]] = {(e, arm): {} for e in BUDGETS for arm in arms}
    for epochs in BUDGETS:
        budget = dataclasses.replace(recipe, finetune_epochs=epochs)
        for seed in range(args.seeds):
            for arm, extra in arms.items():
                runs = args.out / f"e{epochs}-seed{seed}-{arm}"
                scores[epochs, arm][seed] = fit_and_test(target, runs, seed, budget, extra)
                print(f"{epochs} epochs, seed {seed}, {arm}: test top-1 {scores[epochs, arm][seed]:.4f}", flush=True)
    with (args.out / "results.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["epochs", "arm", "seed", "test_acc1"])
        writer.writerows(
            [e, arm, seed, f"{acc:.4f}"] for (e, arm), by_seed in scores.items() for seed, acc in by_seed.items()
        )
    words = {"finetune": "fine-tuning from the digits 0-4 weights", "head-first": "fine-tuning with a frozen start"}
    verdicts = [
        sentence(
            paired(arm, "random", scores[e, arm], scores[e, "random"]), words[arm], "random init", f"in {e} epochs"
        )
        for e in BUDGETS
        for arm in ("finetune", "head-first")
    ]
    lines = [f"# {TITLE}", "", *(f"- {v}" for v in verdicts), ""]
    lines += ["| epochs | arm | test top-1, seeds 0, 1, 2... | mean |", "|---|---|---|---|"]
    for (e, arm), by_seed in scores.items():
        values = [by_seed[s] for s in sorted(by_seed)]
        lines.append(f"| {e} | {arm} | {', '.join(f'{v:.3f}' for v in values)} | {sum(values) / len(values):.3f} |")
    lines += ["", f"{recipe} (finetune_epochs per row); wall time {time.monotonic() - start:.0f} s"]
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(verdicts))


if __name__ == "__main__":
    main()
