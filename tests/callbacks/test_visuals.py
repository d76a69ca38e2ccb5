"""TensorBoard pictures a person can read: the prediction grid and the CAM grid enlarge 32 px inputs and caption
each with the predicted and true class; the confusion matrix is torchmetrics' own plot with named, labelled axes.
(A real fit that logs all three is tests/train/test_run_log.py.)"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from torchmetrics.classification import MulticlassConfusionMatrix

from effnet_lightning.callbacks.cam_images import CAMImages
from effnet_lightning.callbacks.confusion_matrix import MAX_TICK_LABELS, confusion_figure
from effnet_lightning.callbacks.prediction_grid import PredictionGrid
from effnet_lightning.datamodules.cifar10 import CIFAR10_CLASSES
from effnet_lightning.drawing.pictures import CAPTION_PX, LINE_PX, MIN_CELL_PX, PAD_PX
from effnet_lightning.errors import UserError
from effnet_lightning.model.network import create_model
from effnet_lightning.model.scaling import ScalingSpec

NAMES = list(CIFAR10_CLASSES)
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
CELL_H = MIN_CELL_PX + CAPTION_PX  # a 32 px image enlarged 4x, over its two caption lines


def batch(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalized 32 px images and their labels."""
    generator = torch.Generator().manual_seed(0)
    return torch.randn(count, 3, 32, 32, generator=generator), torch.arange(count) % len(NAMES)


def caption_colour(grid: np.ndarray, index: int, per_row: int) -> str:
    """'green', 'red' or 'black': the colour of the predicted-class line under cell `index`."""
    top = PAD_PX + (index // per_row) * (CELL_H + PAD_PX) + MIN_CELL_PX
    left = PAD_PX + (index % per_row) * (MIN_CELL_PX + PAD_PX)
    line = grid[top : top + LINE_PX, left : left + MIN_CELL_PX].reshape(-1, 3).astype(int)
    ink = line[line.min(axis=1) < 200]  # the text's pixels
    red, green = (ink[:, 0] - ink[:, 1]).mean(), (ink[:, 1] - ink[:, 0]).mean()
    return "red" if red > 60 else "green" if green > 60 else "black"


def test_prediction_grid_is_enlarged_and_captioned() -> None:
    """16 images of 32 px, 8 per row: cells of 128 px with 'pred <class> <p>' in green (right) or red (wrong) and
    'true <class>' under each; the legend repeats them."""
    images, targets = batch(16)
    logits = torch.nn.functional.one_hot(torch.arange(16) % 3, len(NAMES)).float() * 5  # predicted 0, 1, 2, 0, ...
    grid, legend = PredictionGrid(count=16, per_row=8).grid(images, targets, logits, NAMES, MEAN, STD)
    assert grid.shape == (PAD_PX + 2 * (CELL_H + PAD_PX), PAD_PX + 8 * (MIN_CELL_PX + PAD_PX), 3)
    assert grid.dtype == np.uint8
    right = (torch.arange(16) % 3 == targets).tolist()
    assert [caption_colour(grid, i, 8) for i in range(16)] == ["green" if ok else "red" for ok in right]
    assert legend.splitlines()[3] == "3. predicted **airplane** (0.94), true cat"  # e^5 / (e^5 + 9)


def cam_module() -> SimpleNamespace:
    """What CAMImages reads from an EfficientNetModule: the network, its resolution and class names."""
    torch.manual_seed(0)
    network = create_model(ScalingSpec(phi=-4, resolution=32), num_classes=len(NAMES))
    return SimpleNamespace(model=network, resolution=32, class_names=NAMES)


def test_cam_grid_is_enlarged_captioned_and_leaves_the_network_alone() -> None:
    module = cam_module()
    before = {k: v.clone() for k, v in module.model.state_dict().items()}
    images, targets = batch(4)
    grid = CAMImages(every_n_epochs=1, count=4, per_row=4).cam_grid(module, images, targets, MEAN, STD)
    assert grid.shape == (PAD_PX + CELL_H + PAD_PX, PAD_PX + 4 * (MIN_CELL_PX + PAD_PX), 3)
    assert {caption_colour(grid, i, 4) for i in range(4)} <= {"green", "red"}  # the truth is known: coloured
    assert module.model.training and all(p.grad is None for p in module.model.parameters())
    assert all(torch.equal(before[k], v) for k, v in module.model.state_dict().items())


def test_cam_layer_is_checked_when_the_fit_starts() -> None:
    module = cam_module()
    CAMImages(every_n_epochs=1, layer="blocks.4").setup(None, module, "fit")  # a stage of the network: fine
    with pytest.raises(UserError, match=r"^layer 'blocks\.9' is not a module of this network; at 32 px"):
        CAMImages(every_n_epochs=1, layer="blocks.9").setup(None, module, "fit")


def confusion(classes: int, names: list[str]) -> tuple[object, np.ndarray]:
    """The figure of a matrix where 60% of each class is right, and its rendered pixels."""
    generator = torch.Generator().manual_seed(0)
    targets = torch.arange(classes).repeat(10)
    wrong = torch.randint(0, classes, targets.shape, generator=generator)
    predicted = torch.where(torch.rand(targets.shape, generator=generator) < 0.6, targets, wrong)
    metric = MulticlassConfusionMatrix(classes)
    metric.update(predicted, targets)
    figure = confusion_figure(metric, metric.compute().float(), names, "validation at step 30")
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return figure, np.asarray(canvas.buffer_rgba())


def test_confusion_matrix_names_its_axes_and_writes_the_shares() -> None:
    figure, pixels = confusion(10, NAMES)
    axes = figure.axes[0]
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("Predicted class", "True class")
    assert [t.get_text() for t in axes.get_xticklabels()] == NAMES
    assert [t.get_text() for t in axes.get_yticklabels()] == NAMES
    cells = [float(t.get_text()) for t in axes.texts]
    assert len(cells) == 100 and all(0 <= c <= 1 for c in cells)
    assert np.sum(np.reshape(cells, (10, 10)), axis=1) == pytest.approx(np.ones(10), abs=0.06)  # rows sum to 1
    assert axes.get_title() == "validation at step 30: 100 images, each row sums to 1"
    assert pixels.shape[0] >= 500 and pixels.shape[1] >= 500


def test_confusion_matrix_of_many_classes_stays_readable() -> None:
    """260 classes: no numbers in the cells, every k-th class named (at most MAX_TICK_LABELS per axis)."""
    names = [f"class_{i:03d}" for i in range(260)]
    figure, pixels = confusion(260, names)
    axes = figure.axes[0]
    assert not axes.texts
    labels = [t.get_text() for t in axes.get_xticklabels()]
    assert 10 <= len(labels) <= MAX_TICK_LABELS and labels[:2] == ["class_000", "class_007"]
    assert "every 7th class named" in axes.get_title()
    assert pixels.shape[:2] == (2000, 2000)


class Recorded:
    """The images and labels each grid was drawn from, per validation."""

    def __init__(self) -> None:
        self.images: list[torch.Tensor] = []
        self.targets: list[list[int]] = []

    def add(self, images: torch.Tensor, targets: torch.Tensor) -> None:
        self.images.append(images.detach().cpu().clone())
        self.targets.append(targets.tolist())


def test_grid_images_span_the_classes_and_stay_the_same_across_epochs(tmp_path) -> None:
    """A fit on a JPEG folder, whose validation files come class by class: both grids show images of every class,
    the same ones at every validation."""
    from imagenet_tree import write_tree
    from lightning.pytorch import Trainer
    from lightning.pytorch.loggers import TensorBoardLogger

    from effnet_lightning.datamodules.image_folder import ImageFolderDataModule
    from effnet_lightning.train.module import EfficientNetModule

    recorded = {"predictions": Recorded(), "cam": Recorded()}

    class SpiedGrid(PredictionGrid):
        def grid(self, images, targets, *args):
            recorded["predictions"].add(images, targets)
            return super().grid(images, targets, *args)

    class SpiedCAM(CAMImages):
        def cam_grid(self, pl_module, images, targets, *args):
            recorded["cam"].add(images, targets)
            return super().cam_grid(pl_module, images, targets, *args)

    write_tree(tmp_path / "data", train_per_class=4, val_per_class=4)
    data = ImageFolderDataModule(str(tmp_path / "data"), resolution=32, batch_size=4, num_workers=0)
    torch.manual_seed(0)
    module = EfficientNetModule(ScalingSpec(phi=-4, resolution=32), num_classes=data.num_classes, optimizer="sgd")
    trainer = Trainer(
        max_epochs=2,
        limit_train_batches=1,
        accelerator="cpu",
        logger=TensorBoardLogger(tmp_path / "runs"),
        callbacks=[SpiedGrid(count=6, per_row=3), SpiedCAM(every_n_epochs=1, count=6, per_row=3)],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=data)
    for name, seen in recorded.items():
        assert seen.targets == [[0, 1, 2, 0, 1, 2]] * 2, name  # every class, twice, at both validations
        assert torch.equal(seen.images[0], seen.images[1]), name
        assert not torch.equal(seen.images[0][0], seen.images[0][3]), name  # two different images of class 0
