"""ImageDataModule: argument checks, the on-device resize/normalize, per-worker augmentation seeds."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch

from effnet_lightning.console import console
from effnet_lightning.datamodules.base import ImageDataModule


class Gradient(ImageDataModule):
    """Minimal subclass: 64 identical horizontal-gradient images, so a batch shows only its augmentation."""

    num_classes = 2

    def train_dataset(self):
        image = np.tile(np.arange(32, dtype=np.uint8)[None, :, None] * 8, (32, 1, 3))
        return [(image, i % 2) for i in range(64)]

    val_dataset = train_dataset

    def train_transform(self):
        return A.Compose([A.Pad(padding=8), A.RandomCrop(height=32, width=32), A.HorizontalFlip(p=0.5)])


@pytest.mark.parametrize(
    ("arg", "value"), [("batch_size", 0), ("batch_size", -4), ("num_workers", -1), ("resolution", 0)]
)
def test_bad_loader_args_raise_a_sentence(arg: str, value: int) -> None:
    with pytest.raises(ValueError, match=rf"data\.{arg} must be .*; got {value}$"):  # a ConfigError, effnet's words
        Gradient("unused", **{arg: value})


def test_batch_is_resized_on_device_and_normalized() -> None:
    dm = Gradient("unused", resolution=64, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    images = torch.full((4, 3, 32, 32), 255, dtype=torch.uint8)
    images[:, :, :16] = 0  # top half black
    x, y = dm.on_after_batch_transfer((images, torch.arange(4)), 0)
    assert x.shape == (4, 3, 64, 64) and x.dtype == torch.float32 and y.tolist() == [0, 1, 2, 3]
    white = torch.tensor([(1 - 0.5) / 0.5, (1 - 0.25) / 0.25, 1.0])
    black = torch.tensor([-1.0, -1.0, 0.0])
    torch.testing.assert_close(x[:, :, -1, 0], white.expand(4, 3))  # bottom row
    torch.testing.assert_close(x[:, :, 0, -1], black.expand(4, 3))  # top row


def test_batch_at_resolution_is_only_normalized() -> None:
    dm = Gradient("unused", resolution=32)
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    x, _ = dm.on_after_batch_transfer((images, torch.zeros(2)), 0)
    mean, std = torch.tensor(dm.mean).view(1, 3, 1, 1), torch.tensor(dm.std).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (images / 255 - mean) / std)


def test_workers_and_epochs_draw_different_augmentations() -> None:
    dm = Gradient("unused", batch_size=16, num_workers=2, persistent_workers=False)
    dm.setup("fit")
    loader = dm.train_dataloader()
    epoch1, epoch2 = [[images for images, _ in loader] for _ in range(2)]
    assert epoch1[0].dtype == torch.uint8 and epoch1[0].shape == (16, 3, 32, 32)
    assert not torch.equal(epoch1[0], epoch1[1]), "worker 0 and worker 1 repeated the same augmentations"
    assert not torch.equal(epoch1[0], epoch2[0]), "epoch 2 repeated the augmentations of epoch 1"


class NoTestSplit(Gradient):
    """Gradient has no test_dataset(): test and predict fall back to the validation images."""


class WithTestSplit(Gradient):
    def test_dataset(self):
        return self.train_dataset()[:8]


@pytest.mark.parametrize("stage", ["test", "predict"])
def test_the_fallback_to_validation_images_is_said_in_one_line(stage: str, capfd: pytest.CaptureFixture) -> None:
    """It used to be a Python warning (two lines, the second a line of base.py) that read as if test/* were a
    test split's numbers."""
    with console():  # as under `effnet`
        NoTestSplit("unused").setup(stage)
    lines = capfd.readouterr().err.splitlines()
    what = "predict uses the validation images" if stage == "predict" else "test/* are the validation images'"
    assert len(lines) == 1 and lines[0].startswith(f"effnet: note: NoTestSplit has no test split: {what}")
    with console():
        WithTestSplit("unused").setup(stage)
    assert capfd.readouterr().err == ""


class Digits(Gradient):
    """A plugin that declares its dataset's statistics as class attributes."""

    default_mean = (0.1, 0.2, 0.3)
    default_std = (0.5, 0.4, 0.25)


def test_a_plugins_mean_and_std_reach_the_batch_and_the_data_config() -> None:
    from effnet_lightning.train.module import eval_data_config

    images = torch.full((2, 3, 32, 32), 51, dtype=torch.uint8)  # 0.2 on the 0-1 scale
    for dm, mean, std in [
        (Digits("unused", resolution=32), Digits.default_mean, Digits.default_std),
        (Digits("unused", resolution=32, mean=(0.2, 0.2, 0.2), std=(1.0, 1.0, 1.0)), (0.2,) * 3, (1.0,) * 3),
    ]:
        x = dm.on_after_batch_transfer((images, torch.tensor([0, 1])), 0)[0]
        expected = (0.2 - torch.tensor(mean)) / torch.tensor(std)
        torch.testing.assert_close(x[0, :, 0, 0], expected)
        config = eval_data_config(dm, 32)
        assert config["mean"] == pytest.approx(list(mean)) and config["std"] == pytest.approx(list(std))


def test_pad_random_crop_shifts_small_images_at_their_size() -> None:
    """The small-image augmentation the guide recommends: a shift of at most `pad` px, a flip only if asked."""
    from effnet_lightning.datamodules.transforms import pad_random_crop

    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert np.array_equal(pad_random_crop(8, pad=0, hflip=0.0)(image=image)["image"], image)
    assert np.array_equal(pad_random_crop(8, pad=0, hflip=1.0)(image=image)["image"], image[:, ::-1])
    padded = np.pad(image, ((2, 2), (2, 2), (0, 0)), mode="reflect")
    windows = {padded[y : y + 8, x : x + 8].tobytes() for y in range(5) for x in range(5)}
    outputs = [pad_random_crop(8, pad=2, hflip=0.0)(image=image)["image"] for _ in range(20)]
    assert all(out.shape == (8, 8, 3) and out.tobytes() in windows for out in outputs)
    assert len({out.tobytes() for out in outputs}) > 1
