"""Outputs that explain themselves: class names in datamodules and checkpoints, predictions.csv, and
evaluation results written into the evaluated run's `eval/` folder, not into a new run folder."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import torch
from effnet_run import debug_args, effnet
from imagenet_tree import WNIDS, write_tree

from effnet_lightning.assembly.lightning_cli import EffnetCLI
from effnet_lightning.cli import main
from effnet_lightning.datamodules.cifar10 import CIFAR10_CLASSES, CIFAR10DataModule
from effnet_lightning.datamodules.image_folder import ImageFolderDataModule
from effnet_lightning.datamodules.imagenet import SYNSET_MAPPING, ImageNetDataModule
from effnet_lightning.train.checkpoint_format import load_checkpoint

STANDIN_TEST_IMAGES = 200  # benchmarks/cifar_standin.py's test_batch


@pytest.fixture(scope="module")
def trained(trained_run: Path, cifar10_module: Path) -> dict:
    """The session's short debug run (conftest.py); tests that evaluate it copy its folder first."""
    return {"run": trained_run, "data": cifar10_module}


def copy_run(trained: dict, tmp_path: Path) -> Path:
    run = tmp_path / "copied" / "version_0"
    shutil.copytree(trained["run"], run, ignore=shutil.ignore_patterns("eval"))
    return run


# ---- class names ---------------------------------------------------------------------------------------------
def test_datamodules_expose_class_names(cifar10_module: Path, tmp_path: Path) -> None:
    assert CIFAR10DataModule(str(cifar10_module)).class_names == list(CIFAR10_CLASSES)
    write_tree(tmp_path / "tree")
    assert ImageFolderDataModule(str(tmp_path / "tree")).class_names == list(WNIDS)  # folder names
    assert ImageNetDataModule(str(tmp_path / "tree")).class_names == list(WNIDS)  # no mapping file: folder names
    (tmp_path / "tree" / SYNSET_MAPPING).write_text(
        "n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n"  # Kaggle's file, first lines
    )
    names = ImageNetDataModule(str(tmp_path / "tree")).class_names
    assert names == ["tench, Tinca tinca", "goldfish, Carassius auratus", WNIDS[2]]  # a wnid it lacks: as is


def test_a_datamodule_with_a_test_split_does_not_warn(trained, tmp_path, capfd) -> None:
    run = copy_run(trained, tmp_path)
    done = effnet(capfd, "test", *debug_args(trained["data"], tmp_path / "runs"), f"--ckpt_path={run}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "has no test split" not in done.stderr  # CIFAR-10: the official test set


def test_checkpoint_stores_the_class_names(trained: dict) -> None:
    checkpoint = load_checkpoint(trained["run"] / "checkpoints" / "last.ckpt")
    assert checkpoint["class_names"] == list(CIFAR10_CLASSES)


# ---- evaluation runs -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["validate", "test"])
def test_evaluation_writes_into_the_runs_eval_folder(trained, tmp_path, capfd, command) -> None:
    """It used to create runs/version_N beside the training runs, looking like one of them."""
    run = copy_run(trained, tmp_path)
    runs = tmp_path / "runs"
    for _ in range(2):
        done = effnet(capfd, command, *debug_args(trained["data"], runs), f"--ckpt_path={run}/checkpoints/last.ckpt")
        assert done.returncode == 0, done.stderr[-3000:]
    assert not runs.exists()  # nothing new beside the training runs
    assert sorted(p.name for p in (run / "eval").iterdir()) == ["version_0", "version_1"]
    for version in ("version_0", "version_1"):
        assert (run / "eval" / version / "config.yaml").is_file()
        assert any(p.name.startswith("events.out.tfevents") for p in (run / "eval" / version).iterdir())
    assert {p.name for p in run.iterdir()} == {p.name for p in trained["run"].iterdir()} | {"eval"}


def test_evaluating_a_run_in_place_reloads_its_best_k_state(trained, tmp_path) -> None:
    """Lightning reloaded only best_model_path (and warned "dirpath has changed") on every validate/test/predict:
    the best-k callback's folder was the new run's, not the one its state was saved from."""
    run = copy_run(trained, tmp_path)  # validating writes into the run's eval/ folder: the session's run stays as is
    ckpt = next((run / "checkpoints").glob("best-*.ckpt"))  # holds the best-k state it was saved with
    cli = EffnetCLI(["validate", *debug_args(trained["data"], tmp_path / "runs"), f"--ckpt_path={ckpt}"])
    best_k = cli.trainer.checkpoint_callback
    assert Path(best_k.dirpath) == trained["run"] / "checkpoints"  # the folder it recorded (the copy's original)
    assert (run / "eval" / "version_0").is_dir() and not (trained["run"] / "eval").exists()
    stored = load_checkpoint(ckpt)["callbacks"]
    (state,) = [v for k, v in stored.items() if k.startswith("ModelCheckpoint")]
    assert state["best_model_score"] is not None  # restored from the checkpoint's ModelCheckpoint state:
    assert best_k.best_model_score == state["best_model_score"]
    assert best_k.best_model_path == state["best_model_path"] and best_k.best_k_models == state["best_k_models"]


def test_fast_dev_run_writes_no_checkpoint(cifar10_module: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    assert main(["fit", *debug_args(cifar10_module, runs, "--trainer.fast_dev_run=1")]) == 0
    assert list(runs.rglob("*.ckpt")) == []


# ---- predictions ---------------------------------------------------------------------------------------------
def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_predict_writes_csv_with_class_names(trained, tmp_path, capfd) -> None:
    run = copy_run(trained, tmp_path)
    done = effnet(capfd, "predict", *debug_args(trained["data"], tmp_path / "runs"), f"--ckpt_path={run}")
    assert done.returncode == 0, done.stderr[-3000:]
    out = run / "eval" / "version_0"
    saved = torch.load(out / "predictions.pt", weights_only=True)
    assert saved["class_names"] == list(CIFAR10_CLASSES)
    assert saved["sample_ids"] == [str(i) for i in range(STANDIN_TEST_IMAGES)]  # CIFAR: the test set index
    rows = read_csv(out / "predictions.csv")
    assert len(rows) == STANDIN_TEST_IMAGES
    assert list(rows[0]) == ["sample_id"] + [f"{c}_{k}" for k in range(1, 6) for c in ("class", "prob")]
    probabilities = saved["probabilities"]
    for index, row in enumerate(rows):
        assert row["sample_id"] == str(index)
        top = probabilities[index].topk(5)
        assert [row[f"class_{k}"] for k in range(1, 6)] == [CIFAR10_CLASSES[i] for i in top.indices.tolist()]
        assert float(row["prob_1"]) == pytest.approx(top.values[0].item(), abs=1e-6)


def test_predict_csv_names_image_files(tmp_path: Path, capfd) -> None:
    """Image-folder data: the sample id is the file path; class names are the synset mapping's words."""
    tree = write_tree(tmp_path / "tree")
    (tree.root / SYNSET_MAPPING).write_text("".join(f"{w} words of {w}\n" for w in WNIDS))
    runs = tmp_path / "runs"
    data = [
        "--data=ImageNetDataModule",
        f"--data.data_dir={tree.root}",
        "--data.batch_size=8",
        "--data.num_workers=0",
        "--model.scaling.phi=-4",
        "--model.scaling.resolution=32",
        f"--trainer.default_root_dir={runs}",
        "--trainer.enable_progress_bar=false",
        "--trainer.accelerator=cpu",
    ]
    assert main(["fit", *data, "--trainer.max_epochs=1", "--trainer.limit_train_batches=2"]) == 0
    done = effnet(capfd, "predict", *data, f"--ckpt_path={runs / 'version_0'}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "effnet: note: ImageNetDataModule has no test split: predict uses the validation images;" in done.stderr
    rows = read_csv(runs / "version_0" / "eval" / "version_0" / "predictions.csv")
    val_files = sorted(str(p) for p in (tree.root / "val").rglob("*.JPEG"))
    assert sorted(row["sample_id"] for row in rows) == val_files
    assert {row["class_1"] for row in rows} <= {f"words of {w}" for w in WNIDS}
    assert list(rows[0])[-2:] == ["class_3", "prob_3"]  # top-k capped at the 3 classes
