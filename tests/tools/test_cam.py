"""`effnet cam`: a Grad-CAM grid, rows = images, columns = checkpoints, for comparing scaled models."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from effnet_run import debug_args, effnet
from PIL import Image

from effnet_lightning.cli import main

CELL = 64  # px per grid cell in the test
CAPTION = 16  # px: cam.py's caption strip and header row


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory: pytest.TempPathFactory, trained_run: Path, cifar10_module: Path) -> list[Path]:
    """Two short runs of differently scaled networks (φ = -4 and φ = -3, both at 32 px): the session's φ = -4 run
    copied (cam.png is written into it) and one φ = -3 fit beside it."""
    runs = tmp_path_factory.mktemp("cam") / "runs"
    shutil.copytree(trained_run, runs / "version_0", ignore=shutil.ignore_patterns("eval"))
    args = debug_args(cifar10_module, runs, "--trainer.max_epochs=1", "--model.scaling.phi=-3")
    assert main(["fit", *args]) == 0
    return [runs / f"version_{version}" / "checkpoints" / "last.ckpt" for version in (0, 1)]


def write_images(folder: Path) -> list[Path]:
    """Three images: two at CIFAR's 32 px and one larger, non-square JPEG (resized as validation does)."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    paths = [folder / "a.png", folder / "b.png", folder / "c.jpg"]
    for path, shape in zip(paths, [(32, 32, 3), (32, 32, 3), (50, 70, 3)], strict=True):
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
    return paths


def test_cam_grid_for_two_checkpoints(two_checkpoints, tmp_path, capfd) -> None:
    images = write_images(tmp_path / "images")
    ckpts = [f"--ckpt_path={p}" for p in two_checkpoints]
    done = effnet(capfd, "cam", *ckpts, "--images", *map(str, images), f"--cell_px={CELL}")
    assert done.returncode == 0, done.stderr
    run = two_checkpoints[0].parent.parent
    png = run / "cam.png"  # default: the first checkpoint's run folder
    assert done.stdout.strip() == f"wrote {png}"
    grid = np.asarray(Image.open(png))
    assert grid.shape == (CAPTION + len(images) * (CELL + CAPTION), len(two_checkpoints) * CELL, 3)
    for row in range(len(images)):  # every caption strip has text (dark pixels on white) in both columns
        top = CAPTION + row * (CELL + CAPTION) + CELL
        for column in range(2):
            assert (grid[top : top + CAPTION, column * CELL : (column + 1) * CELL] < 128).any()
    again = effnet(capfd, "cam", *ckpts, "--images", str(images[0]), f"--cell_px={CELL}")
    assert again.returncode == 0 and (run / "cam_1.png").is_file()  # never overwrites
    assert np.array_equal(np.asarray(Image.open(png)), grid)


def test_cam_unreadable_image_is_one_line(two_checkpoints, tmp_path, capfd) -> None:
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    done = effnet(capfd, "cam", f"--ckpt_path={two_checkpoints[0]}", "--images", str(bad), f"--output={tmp_path}")
    assert done.returncode == 2
    assert done.stderr.startswith(f"effnet cam: error: cannot read image {bad}") and done.stderr.count("\n") == 1
    assert not list(tmp_path.glob("*.png"))


def test_cam_grid_from_the_validation_split(two_checkpoints, cifar10_module, tmp_path, capfd) -> None:
    """`--split val --count 4` with fit's own data options: 4 rows, 2 columns, and each row is the split's raw image
    preprocessed as `--images` does it (the same grid as the 4 images saved losslessly and passed as files)."""
    from effnet_lightning.datamodules.cifar10 import CIFAR10DataModule

    ckpts = [f"--ckpt_path={p}" for p in two_checkpoints]
    data = debug_args(cifar10_module, tmp_path / "runs")  # the options the checkpoints were trained with
    split = tmp_path / "split"
    done = effnet(
        capfd, "cam", *ckpts, *data, "--split", "val", "--count", "4", f"--output={split}", f"--cell_px={CELL}"
    )
    assert done.returncode == 0, done.stderr
    grid = np.asarray(Image.open(split / "cam.png"))
    assert grid.shape == (CAPTION + 4 * (CELL + CAPTION), 2 * CELL, 3)
    assert not (tmp_path / "runs").exists()  # reading the data makes no run folder

    val = CIFAR10DataModule(str(cifar10_module), val_size=100).val_dataset()  # debug_args' split
    (tmp_path / "files").mkdir()
    files = [tmp_path / "files" / f"{i}.png" for i in range(4)]
    for i, path in enumerate(files):
        Image.fromarray(val[i][0]).save(path)
    done = effnet(capfd, "cam", *ckpts, "--images", *map(str, files), f"--output={tmp_path}", f"--cell_px={CELL}")
    assert done.returncode == 0, done.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "cam.png")), grid)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--split", "val", "--count", "0"], "effnet cam: error: --count must be at least 1 image, got 0"),
        (["--split", "val", "--count", "101"], "effnet cam: error: --count 101 is more than the 100 images"),
        (["--split", "val", "--images", "a.png"], "effnet cam: error: argument --images: not allowed with"),
        (["--split", "val", "--data.init_args.data_dir=MISSING"], "effnet cam: error: CIFAR-10 not found in"),
        (["--split", "valid"], "effnet cam: error: argument --split: invalid choice: 'valid'"),
    ],
)
def test_cam_split_errors_are_one_line(two_checkpoints, cifar10_module, tmp_path, capfd, options, expected) -> None:
    data = debug_args(cifar10_module, tmp_path / "runs")  # val_size 100
    data = [a.replace("MISSING", str(tmp_path / "none")) for a in [*data, *options]]
    done = effnet(capfd, "cam", f"--ckpt_path={two_checkpoints[0]}", *data, f"--output={tmp_path}")
    assert done.returncode == 2
    assert done.stderr.startswith(expected), done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not list(tmp_path.glob("*.png"))
