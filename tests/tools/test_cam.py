"""`effnet cam`: a Grad-CAM grid, rows = images, columns = checkpoints, for comparing scaled models."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from effnet_run import debug_args, effnet
from PIL import Image

from effnet_lightning.cli import main
from effnet_lightning.drawing.pictures import CAPTION_PX as CAPTION  # px: under each cell, and the header row
from effnet_lightning.drawing.pictures import LINE_PX

CELL = 64  # px per grid cell in the test


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
    """Four images: two at CIFAR's 32 px, one larger, non-square JPEG (resized as validation does), and one in a
    folder named after a CIFAR class ("cat"), whose true class is therefore known."""
    rng = np.random.default_rng(0)
    (folder / "cat").mkdir(parents=True)
    paths = [folder / "a.png", folder / "b.png", folder / "c.jpg", folder / "cat" / "d.png"]
    for path, shape in zip(paths, [(32, 32, 3), (32, 32, 3), (50, 70, 3), (32, 32, 3)], strict=True):
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
    return paths


def caption_lines(grid: np.ndarray, row: int, column: int) -> tuple[np.ndarray, np.ndarray]:
    """The two caption lines (predicted, true class) under one cell, as RGB arrays."""
    top = CAPTION + row * (CELL + CAPTION) + CELL
    cell = grid[top : top + CAPTION, column * CELL : (column + 1) * CELL].astype(int)
    return cell[:LINE_PX], cell[LINE_PX:]


def has_text(strip: np.ndarray) -> bool:
    return bool((strip.min(axis=2) < 128).any())  # dark or saturated pixels on white


def coloured(strip: np.ndarray) -> bool:
    """Text in green or red (a right or wrong prediction against a known truth), not black."""
    return bool((strip.max(axis=2) - strip.min(axis=2) > 100).any())


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
    for row in range(len(images)):  # every cell names its prediction; the truth only when the folder is a class
        for column in range(2):
            predicted, true = caption_lines(grid, row, column)
            known = images[row].parent.name == "cat"
            assert has_text(predicted) and coloured(predicted) == known and has_text(true) == known
    again = effnet(capfd, "cam", *ckpts, "--images", str(images[0]), f"--cell_px={CELL}")
    assert again.returncode == 0 and (run / "cam_1.png").is_file()  # never overwrites
    assert np.array_equal(np.asarray(Image.open(png)), grid)


def test_cam_layer_option(two_checkpoints, tmp_path, capfd) -> None:
    """--layer names the module to explain: the same image gives another map than the default layer's, and the
    header says which (a cell wide enough for "layer blocks.1 (8x8)")."""
    image = write_images(tmp_path / "images")[0]
    grids = {}
    for layer in (None, "blocks.2"):
        out = tmp_path / str(layer)
        options = [f"--layer={layer}"] if layer else []
        done = effnet(
            capfd,
            "cam",
            f"--ckpt_path={two_checkpoints[0]}",
            "--images",
            str(image),
            *options,
            f"--output={out}",
            "--cell_px=160",
        )
        assert done.returncode == 0, done.stderr
        grids[layer] = np.asarray(Image.open(out / "cam.png"))
    run_line = slice(0, LINE_PX)
    assert np.array_equal(grids[None][run_line], grids["blocks.2"][run_line])  # the same checkpoint
    assert not np.array_equal(grids[None][LINE_PX:CAPTION], grids["blocks.2"][LINE_PX:CAPTION])  # its layer
    assert not np.array_equal(grids[None][CAPTION:], grids["blocks.2"][CAPTION:])  # another map


def test_cam_maps_localise_at_32_px(two_checkpoints, cifar10_module) -> None:
    """On the trained φ = -4 checkpoint at 32 px the default layer's map is at least 7x7 and varies over the image
    (the head's, bn2, is 1x1 there: one flat value)."""
    from effnet_lightning.datamodules.cifar10 import CIFAR10DataModule
    from effnet_lightning.drawing.gradcam import MIN_MAP_SIDE, cam_layer, grad_cam
    from effnet_lightning.tools.cam import load_network, model_input, model_view

    network, _, data_config = load_network(str(two_checkpoints[0]), "ema")
    val = CIFAR10DataModule(str(cifar10_module), val_size=100).val_dataset()
    x = model_input([model_view(val[i][0], data_config) for i in range(8)], data_config)
    assert x.shape == (8, 3, 32, 32)
    layer = cam_layer(network, 32)
    assert layer.side >= MIN_MAP_SIDE
    heat, _ = grad_cam(network, x, layer)
    assert (heat.std(axis=(1, 2)) > 0.03).all()  # measured 0.18-0.29 on this checkpoint
    flat, _ = grad_cam(network, x, cam_layer(network, 32, "bn2"))
    assert np.ptp(flat, axis=(1, 2)).max() == 0


def test_cam_unreadable_image_is_one_line(two_checkpoints, tmp_path, capfd) -> None:
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    done = effnet(capfd, "cam", f"--ckpt_path={two_checkpoints[0]}", "--images", str(bad), f"--output={tmp_path}")
    assert done.returncode == 2
    assert done.stderr.startswith(f"effnet cam: error: cannot read image {bad}") and done.stderr.count("\n") == 1
    assert not list(tmp_path.glob("*.png"))


def test_cam_grid_from_the_validation_split(two_checkpoints, cifar10_module, tmp_path, capfd) -> None:
    """`--split val --count 4` with fit's own data options: 4 rows, 2 columns, and each row is one of the split's
    raw images spread across the classes, preprocessed as `--images` does it (the same grid as those 4 images saved
    losslessly and passed as files)."""
    from effnet_lightning.datamodules.cifar10 import CIFAR10DataModule
    from effnet_lightning.datamodules.picture_sample import spread_sample

    ckpts = [f"--ckpt_path={p}" for p in two_checkpoints]
    data = debug_args(cifar10_module, tmp_path / "runs")  # the options the checkpoints were trained with
    split = tmp_path / "split"
    done = effnet(
        capfd, "cam", *ckpts, *data, "--split", "val", "--count", "4", f"--output={split}", f"--cell_px={CELL}"
    )
    assert done.returncode == 0, done.stderr
    grid = np.asarray(Image.open(split / "cam.png"))
    assert grid.shape == (CAPTION + 4 * (CELL + CAPTION), 2 * CELL, 3)
    for row in range(4):  # the split knows every true class: each caption names it and colours the prediction
        predicted, true = caption_lines(grid, row, 0)
        assert coloured(predicted) and has_text(true)
    assert not (tmp_path / "runs").exists()  # reading the data makes no run folder

    datamodule = CIFAR10DataModule(str(cifar10_module), val_size=100)  # debug_args' split
    val = datamodule.val_dataset()
    picked = spread_sample(val, 4)  # the fit's val/predictions images
    assert len({val[i][1] for i in picked}) == 4  # four classes, not the split's first four images
    files = [tmp_path / "files" / datamodule.class_names[val[i][1]] / f"{i}.png" for i in picked]  # class folders
    for i, path in zip(picked, files, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
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
        (["--split", "val", "--layer", "blocks.9"], "effnet cam: error: layer 'blocks.9' is not a module of this"),
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
