"""Fine-tuning from a pretrained file beats random init on real digits: a φ = -4 network at 16 px pretrained
briefly on scikit-learn's digits 0-4, then trained on digits 5-9 with 10 images per digit, against the same network
and recipe from random init (benchmarks/finetune_digits.py, shortened; docs/studies/finetune-digits/ has the full
study)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
from effnet_run import scalars
from finetune_digits import Recipe, arguments, pretrain, write_folders
from learning import learning_seed

from effnet_lightning.cli import main

RECIPE = dataclasses.replace(Recipe(), pretrain_epochs=4)  # fine-tunes 5 epochs: 25 updates
MARGIN = 0.03  # top-1 (0-1) fine-tuning must lead by; worst of 12 machine combinations 0.089 (BENCHMARKS.md)


def final_val_acc1(target: Path, runs: Path, init: Path | None) -> float:
    extra = [f"--model.init={init}", "--model.reset_classifier=true"] if init is not None else []
    args = arguments(target, runs, learning_seed(), RECIPE, RECIPE.finetune_epochs, batch=10)
    assert main(["fit", *args, *extra]) == 0
    return scalars(runs / "version_0")["val/acc1"][-1]


@pytest.mark.learning
def test_finetuning_beats_random_init_on_digits(tmp_path: Path, record_property: Callable) -> None:
    pytest.importorskip("sklearn", reason="scikit-learn (the dev group) provides the digits")
    source, target = write_folders(tmp_path)
    checkpoint = pretrain(source, tmp_path / "pretrain", RECIPE)
    finetuned = final_val_acc1(target, tmp_path / "finetune", checkpoint)
    random_init = final_val_acc1(target, tmp_path / "random", None)
    record_property("finetune val/acc1", finetuned)
    record_property("random val/acc1", random_init)
    record_property("difference", finetuned - random_init)
    assert finetuned - random_init > MARGIN, (finetuned, random_init)
