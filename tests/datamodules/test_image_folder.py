"""ImageFolderDataModule / ImageNetDataModule on a tree of real image files (see imagenet_tree.py)."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch
from imagenet_tree import COLORS, WNIDS, Tree, photo, write_tree
from learning import learning_seed
from PIL import Image

from effnet_lightning.datamodules.image_folder import UNREADABLE, ImageFiles, ImageFolderDataModule, decode_image
from effnet_lightning.datamodules.imagenet import ImageNetDataModule, sort_val_images
from effnet_lightning.datamodules.transforms import random_resized_crop, resize_center_crop
from effnet_lightning.errors import DataError
from effnet_lightning.train.checkpoint_format import load_checkpoint

EPOCHS = 6  # of the end-to-end fit


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return write_tree(tmp_path / "imagenet")


def make(tree: Tree, cls: type = ImageNetDataModule, **kwargs) -> ImageFolderDataModule:
    return cls(str(tree.root), **{"resolution": 32, "batch_size": 16, "num_workers": 0, **kwargs})


# ---- decoding ----------------------------------------------------------------------------------------------
def test_grayscale_cmyk_and_png_decode_to_rgb(tree: Tree) -> None:
    gray, cmyk, png = (decode_image(str(p)) for p in (tree.grayscale, tree.cmyk, tree.png))
    for image in (gray, cmyk, png):
        assert image.dtype == np.uint8 and image.shape == (48, 64, 3)
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    pillow = np.asarray(Image.open(tree.cmyk).convert("RGB")).astype(int)  # Pillow's reading of the CMYK file
    assert np.abs(cmyk.astype(int) - pillow).mean() < 2
    assert cmyk.mean(axis=(0, 1)).argmax() == 1  # still green, not inverted
    assert png.mean(axis=(0, 1)).argmax() == 2  # RGB order (OpenCV decodes BGR), alpha dropped


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    pixels = np.zeros((30, 50, 3), np.uint8)
    pixels[:, :10] = 255  # white band on the left
    Image.fromarray(pixels).save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    image = decode_image(str(tmp_path / "rotated.jpg"))
    assert image.shape == (50, 30, 3)  # displayed upright: tall
    assert image[:10].mean() > 200 and image[-10:].mean() < 50  # the left band is now on top


@pytest.mark.parametrize("content", [b"", b"not an image", b"\xff\xd8\xff\xe0 truncated jpeg"])
def test_non_images_raise_what_the_dataset_skips(tmp_path: Path, content: bytes) -> None:
    """The decoders' own exceptions (their text is theirs, not checked here) are ones ImageFiles catches: it names
    the file and gives the next readable one instead."""
    bad, good = tmp_path / "x.jpg", tmp_path / "good.jpg"
    bad.write_bytes(content)
    with pytest.raises(UNREADABLE):
        decode_image(str(bad))
    Image.fromarray(np.full((4, 6, 3), 200, np.uint8)).save(good)
    files = ImageFiles([(str(bad), 0), (str(good), 1)], "train")
    with pytest.warns(UserWarning, match=rf"Skipped unreadable image {re.escape(str(bad))} \("):
        image, label = files[0]
    assert label == 1 and image.shape == (4, 6, 3)


# ---- layout ------------------------------------------------------------------------------------------------
def test_classes_are_known_at_construction(tree: Tree) -> None:
    dm = make(tree)
    assert dm.num_classes == 3 and dm.classes == sorted(WNIDS)
    assert not dm.image_files  # nothing listed or decoded yet


def test_splits_and_labels(tree: Tree, caplog: pytest.LogCaptureFixture) -> None:
    dm = make(tree)
    dm.setup("fit")
    assert re.search(r"Ignored 1 file\(s\) in .*train that are not images: .*\.DS_Store", caplog.text)
    assert (len(dm.train_set), len(dm.val_set)) == (tree.num_train, 24)
    paths = [path for path, _ in dm.image_files["train"].samples]
    assert str(tree.stray) not in paths and str(tree.truncated) in paths
    assert {(Path(path).parent.name, label) for path, label in dm.image_files["val"].samples} == {
        (wnid, dm.classes.index(wnid)) for wnid in WNIDS
    }


def test_seeded_split_without_val_folder(tree: Tree) -> None:
    os.rename(tree.root / "val", tree.root.parent / "moved_val")

    def split(seed: int) -> tuple[list, list]:
        dm = make(tree, ImageFolderDataModule, val_fraction=0.25, split_seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dm.setup("fit")
        return dm.image_files["train"].samples, dm.image_files["val"].samples

    train, val = split(1)
    assert split(1) == (train, val) and split(2)[1] != val
    assert not set(train) & set(val) and len(train) + len(val) == tree.num_train
    assert sorted({label for _, label in val}) == [0, 1, 2]  # every class is held out in proportion
    assert len(val) == 16  # round(0.25 * 22) + round(0.25 * 21) * 2


def test_empty_class_folder_is_an_error(tree: Tree) -> None:
    (tree.root / "train" / "n09999999").mkdir()
    (tree.root / "train" / "n09999999" / "readme.txt").write_text("no images")
    with pytest.raises(ValueError, match=r"Class folder .*train/n09999999 has no images \(extensions \.jpg"):
        make(tree).setup("fit")


def test_single_images_leave_no_validation_split(tmp_path: Path) -> None:
    for wnid, color in zip(WNIDS, COLORS, strict=True):
        (tmp_path / "train" / wnid).mkdir(parents=True)
        Image.fromarray(photo(np.random.default_rng(0), color, 8, 8)).save(tmp_path / "train" / wnid / "a.png")
    with pytest.raises(ValueError, match=r"val_fraction=0.1 holds out no images: every class .* a single image"):
        ImageFolderDataModule(str(tmp_path)).setup("fit")


def test_missing_train_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"No train/ folder in .*Expected ImageNet as <data_dir>/train/<wnid>"):
        ImageNetDataModule(str(tmp_path))


def test_imagenet_explains_a_flat_val_folder(tree: Tree) -> None:
    val = tree.root / "val"
    for image in val.glob("*/*.JPEG"):
        image.rename(val / image.name)
    for wnid in WNIDS:
        (val / wnid).rmdir()
    with pytest.raises(ValueError, match=r"24 images outside class folders.*sort-val"):
        make(tree).setup("fit")


def test_sort_val_images_from_kaggle_csv(tmp_path: Path) -> None:
    val = tmp_path / "val"
    val.mkdir()
    rows = ["ImageId,PredictionString"]
    for i, wnid in enumerate(["n01440764", "n01443537", "n01440764"], start=1):
        (val / f"ILSVRC2012_val_{i:08d}.JPEG").write_bytes(b"jpeg")
        rows.append(f"ILSVRC2012_val_{i:08d},{wnid} 1 2 3 4 {wnid} 5 6 7 8")
    (tmp_path / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
    assert sort_val_images(str(val), str(tmp_path / "LOC_val_solution.csv")) == 3
    assert sorted(p.relative_to(val).as_posix() for p in val.rglob("*.JPEG")) == [
        "n01440764/ILSVRC2012_val_00000001.JPEG",
        "n01440764/ILSVRC2012_val_00000003.JPEG",
        "n01443537/ILSVRC2012_val_00000002.JPEG",
    ]
    assert sort_val_images(str(val), str(tmp_path / "LOC_val_solution.csv")) == 0  # a rerun changes nothing


# ---- unreadable files --------------------------------------------------------------------------------------
def test_unreadable_file_is_named_replaced_and_counted(tree: Tree) -> None:
    dm = make(tree)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dm.setup("fit")
    files = dm.image_files["train"]
    index = [path for path, _ in files.samples].index(str(tree.truncated))
    with pytest.warns(UserWarning, match=rf"Skipped unreadable image {tree.truncated} \(OSError"):
        image, label = files[index]
    neighbour, neighbour_label = files[index + 1]
    assert np.array_equal(image, neighbour) and label == neighbour_label  # replaced by the next file
    assert files.take_unreadable_count() == 1 and files.take_unreadable_count() == 0


def test_unreadable_count_reaches_the_main_process_from_workers(tree: Tree) -> None:
    dm = make(tree, num_workers=2, persistent_workers=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dm.setup("fit")
        for epoch in range(2):
            batches = list(dm.train_dataloader())
            assert sum(len(labels) for _, labels in batches) == tree.num_train  # 64 = 4 full batches
            assert dm.image_files["train"].take_unreadable_count() == 1, f"epoch {epoch}"


def test_a_split_without_readable_images_is_an_error(tmp_path: Path) -> None:
    """Listing does not decode (1.28M files); setup reads each split's first sample (the data contract), and
    that read finds no decodable image."""
    for wnid in WNIDS[:2]:
        (tmp_path / "train" / wnid).mkdir(parents=True)
        for name in ("broken.jpg", "empty.png"):
            (tmp_path / "train" / wnid / name).write_bytes(b"\xff\xd8 not really" if name == "broken.jpg" else b"")
    dm = ImageFolderDataModule(str(tmp_path), resolution=32, val_fraction=0.5, num_workers=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match=r"None of the 2 train images could be decoded"):
            dm.setup("fit")


# ---- pipelines ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stage", ["fit", "validate"])
def test_pipelines_deliver_uint8_at_resolution_and_normalize(tree: Tree, stage: str) -> None:
    dm = make(tree, resolution=40, randaugment="rand-m9-n2")  # RandAugment must keep shape and dtype
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dm.setup(stage)
        loader = dm.train_dataloader() if stage == "fit" else dm.val_dataloader()
        images, labels = next(iter(loader))
    assert images.dtype == torch.uint8 and images.shape == (16, 3, 40, 40) and labels.dtype == torch.int64
    assert images.max() > 100  # real pixels, not blank
    x, _ = dm.on_after_batch_transfer((images, labels), 0)
    assert x.dtype == torch.float32 and x.shape == (16, 3, 40, 40)
    mean, std = torch.tensor(dm.mean).view(1, 3, 1, 1), torch.tensor(dm.std).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (images / 255 - mean) / std)  # already at resolution: only normalized


def test_sample_keys_keep_the_pipeline_draws_independent() -> None:
    """Two flips in one pipeline, reseeded per sample by KeyedDataset: they must not always agree (they did when
    every child transform got its own generator with the same seed)."""
    from effnet_lightning.datamodules.base import TransformedDataset
    from effnet_lightning.datamodules.resumable import KeyedDataset, SampleKey

    pixels = np.arange(16, dtype=np.uint8).reshape(4, 4, 1).repeat(3, axis=2)
    flips = A.Compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)])
    dataset = KeyedDataset(TransformedDataset([(pixels, 0)] * 200, flips))
    corner = torch.stack([dataset[SampleKey(i, 0, 0)][0][0, 0, 0] for i in range(200)])
    # top-left pixel: 0 none, 3 horizontal, 12 vertical, 15 both
    horizontal, vertical = (corner % 4 == 3), (corner >= 12)
    assert 0.35 < horizontal.float().mean() < 0.65 and 0.35 < vertical.float().mean() < 0.65
    assert 0.3 < (horizontal == vertical).float().mean() < 0.7


@pytest.mark.parametrize(("resolution", "side"), [(32, 64), (224, 256), (300, 332), (600, 632)])
def test_eval_crop_defaults_to_tf_padding_of_32_px(tree: Tree, resolution: int, side: int) -> None:
    """crop_pct defaults to resolution / (resolution + 32) (TF's eval crop): the shorter side is resized to
    resolution + 32 px, at every resolution (it was 0.875 everywhere, i.e. 685 px at 600)."""
    dm = make(tree, resolution=resolution)
    assert dm.crop_pct == pytest.approx(resolution / side)
    assert dm.eval_transform().transforms[0].max_size == side  # SmallestMaxSize: the shorter side in px
    crop = dm.eval_transform()(image=np.zeros((side * 2, side * 3, 3), np.uint8))["image"]
    assert crop.shape == (resolution, resolution, 3)
    assert make(tree, resolution=resolution, crop_pct=0.5).crop_pct == 0.5  # an explicit value wins


def test_eval_crop_is_the_center_of_the_resized_image() -> None:
    """600x300 px, crop_pct 0.5 at 32 px: shorter side -> 64 px, the central 32 px square = the central 150 px."""
    image = np.zeros((300, 600, 3), np.uint8)
    image[..., 0] = 255  # red everywhere ...
    image[75:225, 225:375] = (0, 255, 0)  # ... except the square the crop must cover exactly
    crop = resize_center_crop(32, crop_pct=0.5)(image=image)["image"]
    assert crop.shape == (32, 32, 3)
    assert (crop[1:-1, 1:-1, 1] > 240).all() and (crop[1:-1, 1:-1, 0] < 15).all()  # inside: all green
    assert crop[..., 1].mean() > 200  # the border rows are mostly green too: no red margin, no shift


def test_full_train_crop_is_the_resized_image() -> None:
    """scale=(1, 1), ratio 1 on a square image: the crop is the whole image, so the output is the resized image."""
    rng = np.random.default_rng(0)
    image = photo(rng, COLORS[0], 64, 64)
    out = random_resized_crop(32, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=0.0)(image=image)["image"]
    expected = image.reshape(32, 2, 32, 2, 3).mean(axis=(1, 3))  # INTER_AREA at 2x: 2x2 averages
    assert out.shape == (32, 32, 3) and np.abs(out - expected).max() <= 1


# ---- end to end --------------------------------------------------------------------------------------------
@pytest.mark.learning
def test_effnet_fit_learns_the_classes(
    tree: Tree,
    tmp_path: Path,
    recwarn: pytest.WarningsRecorder,
    capfd: pytest.CaptureFixture,
    record_property: Callable,
) -> None:
    """`effnet fit` on the tree: val/acc1 far above chance (1/3); the unreadable file is named and counted.

    64 images at batch 16 are only 4 updates per epoch. With BatchNorm's momentum 0.1 the running statistics that
    evaluation uses average the last ~10 updates, of weights that move fast at this LR: evaluation then predicted
    one class (val/acc1 exactly 1/3) for 7-9 of 10 epochs, and whether it recovered by the last epoch depended on
    rounding (the machine, the temporary path). Momentum 0.5 (the last ~2 updates) tracks the weights: over 8
    seeds and 1 or 2 threads, val/acc1 from epoch 2 on was 0.75-1.0, its mean over the last 4 epochs >= 0.86.
    """
    from effnet_lightning.cli import main

    runs = tmp_path / "runs"
    returncode = main(
        [
            "fit",
            "--data=ImageNetDataModule",
            f"--data.data_dir={tree.root}",
            "--data.batch_size=16",
            "--data.num_workers=0",
            "--model.scaling.phi=-4",
            "--model.scaling.resolution=32",
            "--model.bn_momentum=0.5",
            "--model.optimizer=adamw",
            "--model.lr=0.05",
            f"--trainer.max_epochs={EPOCHS}",
            "--trainer.accelerator=cpu",
            f"--trainer.default_root_dir={runs}",
            "--trainer.enable_progress_bar=false",
            f"--seed_everything={learning_seed()}",
        ]
    )
    assert returncode == 0
    warned, logged = [str(w.message) for w in recwarn], capfd.readouterr().err
    assert any(f"Skipped unreadable image {tree.truncated}" in m for m in warned)  # raised where images are read
    assert f"Epoch {EPOCHS - 1}: 1 unreadable image file(s) skipped in the train data" in logged
    assert re.search(
        rf"effnet: warning: Ignored 1 file\(s\) in .* that are not images: {re.escape(str(tree.stray))}", logged
    )
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(runs / "version_0"))
    events.Reload()
    accuracy = [event.value for event in events.Scalars("val/acc1")]
    record_property("val/acc1, last 4 epochs", sum(accuracy[-4:]) / 4)
    assert len(accuracy) == EPOCHS and sum(accuracy[-4:]) / 4 >= 0.6, accuracy  # chance 1/3


def test_a_folder_run_resumes_with_its_own_config(tree: Tree, tmp_path: Path) -> None:
    """The run's config.yaml holds `scale`/`ratio` as YAML lists, the parsed arguments as tuples: the same settings,
    so resuming with the same arguments continues the run (it was refused as "trained with other settings")."""
    from effnet_lightning.cli import main

    runs = tmp_path / "runs"
    args = [
        "--data=ImageNetDataModule",
        f"--data.data_dir={tree.root}",
        "--data.batch_size=16",
        "--data.num_workers=0",
        "--data.scale=[0.5, 1.0]",
        "--model.scaling.phi=-4",
        "--model.scaling.resolution=32",
        "--trainer.accelerator=cpu",
        "--trainer.limit_train_batches=1",
        "--trainer.limit_val_batches=1",
        f"--trainer.default_root_dir={runs}",
        "--trainer.enable_progress_bar=false",
    ]
    assert main(["fit", *args, "--trainer.max_epochs=1"]) == 0
    assert main(["fit", *args, "--trainer.max_epochs=2", "--ckpt_path=last"]) == 0
    checkpoint = load_checkpoint(runs / "version_0" / "checkpoints" / "last.ckpt")
    assert checkpoint["epoch"] == 1 and checkpoint["global_step"] == 2  # continued in its own folder
    assert sorted(p.name for p in runs.iterdir()) == ["version_0"]


@pytest.mark.parametrize("variant", ["b0", "b3", "b7"])
def test_imagenet_configs_parse(variant: str, capsys: pytest.CaptureFixture) -> None:
    from effnet_lightning.cli import main

    config = Path(__file__).parents[2] / "configs" / f"{variant}_imagenet.yaml"
    assert config.read_text().startswith(f"# EfficientNet-{variant.upper()} on ImageNet-1k")
    code = main(["fit", "--config", str(config), "--print_config"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    for line in (
        f"variant: {variant}",
        "optimizer: rmsproptf",
        "lr: 0.016",
        "weight_decay: 1.0e-05",
        "label_smoothing: 0.1",
        "bn_momentum: 0.01",
        "bn_eps: 0.001",
        "drop_path_rate: 0.2",
        "class_path: effnet_lightning.datamodules.imagenet.ImageNetDataModule",
        "crop_pct: null",
        "precision: auto",
        "max_epochs: 350",
    ):
        assert line in printed
