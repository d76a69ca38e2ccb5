"""CIFAR10DataModule on stand-in files in the real format: loaders, split, errors, offline download."""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets import CIFAR10

from effnet_lightning.datamodules.cifar10 import CIFAR10DataModule
from effnet_lightning.errors import ConfigError


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any download attempt fails as it would on this offline machine."""

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def make(root: Path, **kwargs) -> CIFAR10DataModule:
    return CIFAR10DataModule(str(root), **{"val_size": 100, "batch_size": 32, "num_workers": 0, **kwargs})


def test_loaders_yield_uint8_images_and_int64_labels(cifar10_root: Path) -> None:
    dm = make(cifar10_root)
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    assert dm.num_classes == 10
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (500, 100, 200)
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (32, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.shape == (32,) and labels.dtype == torch.int64
    assert len(dm.train_dataloader()) == 500 // 32  # drop_last for training
    assert sum(len(y) for _, y in dm.test_dataloader()) == 200  # nothing dropped when evaluating
    assert sum(len(y) for _, y in dm.predict_dataloader()) == 200


def test_split_is_seeded_and_disjoint(cifar10_root: Path) -> None:
    def split(seed: int) -> tuple[list[int], list[int]]:
        dm = make(cifar10_root, split_seed=seed)
        dm.setup("fit")
        return dm.train_set.samples.indices, dm.val_set.samples.indices

    train, val = split(42)
    assert split(42) == (train, val)
    assert split(7)[1] != val
    assert sorted(train + val) == list(range(600))


def test_eval_images_are_the_files_pixels(cifar10_root: Path) -> None:
    dm = make(cifar10_root)
    dm.setup("test")
    raw = CIFAR10(str(cifar10_root), train=False)
    image, label = dm.test_set[3]
    assert np.array_equal(image.permute(1, 2, 0).numpy(), raw.data[3]) and label == raw.targets[3]


def test_standin_classes_are_learnable(cifar10_root: Path) -> None:
    """Nearest class-mean colour separates the stand-in classes, so a real model must beat chance by far."""
    train, test = CIFAR10(str(cifar10_root), train=True), CIFAR10(str(cifar10_root), train=False)
    features = lambda data: data.reshape(len(data), -1, 3).mean(1)  # noqa: E731  mean RGB per image
    train_y, test_y = np.array(train.targets), np.array(test.targets)
    means = np.stack([features(train.data)[train_y == c].mean(0) for c in range(10)])
    distances = ((features(test.data)[:, None] - means[None]) ** 2).sum(-1)
    assert (distances.argmin(1) == test_y).mean() > 0.9


def test_missing_data_names_directory_layout_and_url(tmp_path: Path) -> None:
    dm = make(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError) as info:
        dm.prepare_data()
    message = str(info.value)
    for expected in [
        str(tmp_path / "nowhere"),
        "cifar-10-batches-py",
        "data_batch_1",
        "data_batch_5",
        "test_batch",
        "batches.meta",
        CIFAR10.url,
        "download: true",
    ]:
        assert expected in message
    assert not (tmp_path / "nowhere").exists()  # nothing created


@pytest.mark.parametrize("download", [False, True])
def test_corrupt_batch_is_reported_and_left_untouched(cifar10_root: Path, no_network, download: bool) -> None:
    batch = cifar10_root / "cifar-10-batches-py" / "data_batch_3"
    truncated = batch.read_bytes()[:1000]
    batch.write_bytes(truncated)
    with pytest.raises(OSError, match=r"data_batch_3 is corrupt or truncated.*left untouched") as info:
        make(cifar10_root, download=download).prepare_data()
    assert "download: true" in str(info.value)
    assert batch.read_bytes() == truncated


def test_download_extracts_a_local_archive_without_network(
    cifar10_root: Path, tmp_path: Path, no_network, tarfile_flavour
) -> None:
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copy(cifar10_root / CIFAR10.filename, fresh)
    dm = make(fresh, download=True)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_set) == 500 and (fresh / "cifar-10-batches-py" / "test_batch").is_file()


def test_corrupt_archive_is_not_replaced(cifar10_root: Path, tmp_path: Path, no_network) -> None:
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / CIFAR10.filename).write_bytes(b"half a download")
    with pytest.raises(OSError, match="cifar-10-python.tar.gz is corrupt"):
        make(fresh, download=True).prepare_data()
    assert (fresh / CIFAR10.filename).read_bytes() == b"half a download"


def test_failed_download_says_where_to_get_the_files(tmp_path: Path, no_network, tarfile_flavour) -> None:
    with pytest.raises(ConnectionError, match=rf"Could not download CIFAR-10 from {CIFAR10.url}.*extract it"):
        make(tmp_path / "empty", download=True).prepare_data()


def test_val_size_must_leave_training_images(cifar10_root: Path) -> None:
    with pytest.raises(ValueError, match="val_size=600 leaves no training images out of 600"):
        make(cifar10_root, val_size=600).setup("fit")
    with pytest.raises(ValueError, match="data.val_size must be a positive"):
        make(cifar10_root, val_size=0)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"batch_size": 0}, "data.batch_size must be a positive number of images per device; got 0"),
        ({"std": (0.2, 0.0, 0.2)}, "data.std must not contain 0 (images are divided by it); got [0.2, 0.0, 0.2]"),
        ({"val_size": -1}, "data.val_size must be a positive number of validation images; got -1"),
    ],
)
def test_the_constructor_and_effnet_check_arguments_in_the_same_words(tmp_path: Path, arguments, message) -> None:
    """`effnet` runs the class's own checks on the parsed config, before anything is built (config_checks.py)."""
    with pytest.raises(ConfigError) as built:
        make(tmp_path, **arguments)
    with pytest.raises(ConfigError) as checked:
        CIFAR10DataModule.check_arguments(arguments)
    assert str(built.value) == str(checked.value) == message


def test_subprocess_env_accepts_the_standins(cifar10_root: Path, cifar10_env: dict[str, str]) -> None:
    """What end-to-end tests of the console script rely on: the checksum patch reaches a child Python."""
    code = "import sys; from torchvision.datasets import CIFAR10; print(len(CIFAR10(sys.argv[1], train=False)))"
    done = subprocess.run(
        [sys.executable, "-c", code, str(cifar10_root)],
        env=cifar10_env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "200"


@pytest.mark.parametrize("seed", ["7", "true"])
def test_cli_links_the_run_seed_into_the_data_order(cifar10_root: Path, tmp_path: Path, seed: str) -> None:
    """`seed_everything` (an int, or the one drawn for `true`) seeds the training order: no environment variable."""
    from effnet_lightning.assembly.lightning_cli import EffnetCLI

    args = [
        "--data=CIFAR10DataModule",
        f"--data.data_dir={cifar10_root}",
        "--data.val_size=100",
        "--model.scaling.phi=-4",
        "--model.scaling.resolution=32",
        f"--seed_everything={seed}",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.logger=false",
    ]
    cli = EffnetCLI(args=args, run=False)
    assert isinstance(cli.config.seed_everything, int) and cli.datamodule.seed == cli.config.seed_everything
    assert seed == "true" or cli.datamodule.seed == 7
    explicit = EffnetCLI(args=[*args, "--data.seed=3"], run=False)
    assert explicit.datamodule.seed == 3  # a seed given for the data wins
