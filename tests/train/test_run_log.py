"""What a fit tells its user: plain lines when stdout is not a terminal, the model's scaling, params and
MACs at start, a closing summary, and TensorBoard's text, scalars, images (confusion matrix, sample predictions)
and hparams entries."""

from __future__ import annotations

from pathlib import Path

import pytest
from effnet_run import STEPS_PER_EPOCH, debug_args, effnet
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from effnet_lightning.datamodules.cifar10 import CIFAR10_CLASSES
from effnet_lightning.drawing.pictures import CAPTION_PX

EPOCHS = 2
EVERY = 5  # steps between plain lines


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory, cifar10_module: Path) -> dict:
    """One debug fit with stdout captured (not a terminal), as under SLURM or nohup."""
    root = tmp_path_factory.mktemp("runlog")
    return {"root": root, "data": cifar10_module}


def run_fit(fitted: dict, capfd: pytest.CaptureFixture) -> tuple[str, Path]:
    runs = fitted["root"] / "runs"
    args = debug_args(
        fitted["data"],
        runs,
        f"--trainer.max_epochs={EPOCHS}",
        f"--plain_log.every_n_steps={EVERY}",
        "--cam_images.every_n_epochs=2",
    )
    done = effnet(capfd, "fit", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, runs / "version_0"


def test_non_tty_log_lines_summary_and_tensorboard(fitted, capfd) -> None:
    stdout, run = run_fit(fitted, capfd)
    lines = stdout.splitlines()
    epoch_lines = [line for line in lines if line.startswith("epoch ") and " | val/" in line]
    assert len(epoch_lines) == EPOCHS, stdout[-3000:]
    assert all(key in epoch_lines[-1] for key in ("loss", "top-1", "lr", "img/s", "ETA", "val/acc1", "val_ema/acc1"))
    step_lines = [line for line in lines if line.startswith("epoch ") and " | val/" not in line]
    total = EPOCHS * STEPS_PER_EPOCH
    assert [line.split()[3] for line in step_lines] == [f"{s}/{total}" for s in range(EVERY, total + 1, EVERY)]
    assert step_lines[-1].endswith("ETA 0:00:00")

    model_line = next(line for line in lines if line.startswith("model: scaling"))
    assert "phi -4, depth" in model_line and "resolution 32 px" in model_line and "GMACs" in model_line

    summary = stdout[stdout.index("run summary:") :].splitlines()
    assert summary[1].split() == ["run", "folder", str(run)]
    best = Path(summary[2].split()[-1])
    assert best.is_file() and best.parent == run / "checkpoints"
    assert "val/acc1 0." in summary[3] and "val_ema/acc1 0." in summary[3]
    assert summary[4].split()[:2] == ["mean", "img/s"] and float(summary[4].split()[2]) > 0
    assert summary[5].split()[:2] == ["wall", "time"]

    events = EventAccumulator(str(run))
    events.Reload()
    assert "model/scaling/text_summary" in events.PluginTagToContent("text")
    assert events.PluginTagToContent("hparams")  # the hparams tab: hyperparameters with the best metrics
    scalars = events.Tags()["scalars"]
    assert {"model/params", "model/macs", "best/val_acc1", "best/val_ema_acc1"} <= set(scalars)
    assert {f"val_class_acc1/{name}" for name in CIFAR10_CLASSES} <= set(scalars)  # per-class accuracy by name
    assert {"val/confusion_matrix", "val/predictions"} <= set(events.Tags()["images"])
    matrix = events.Images("val/confusion_matrix")
    assert len(matrix) == EPOCHS and matrix[-1].width >= 500  # one per validation; a matplotlib figure
    cams = events.Images("val/cam")
    assert [c.step for c in cams] == [EPOCHS * STEPS_PER_EPOCH]  # every 2nd epoch: once in a 2-epoch run
    cell = (128 + 2, 128 + CAPTION_PX + 2)  # 32 px enlarged 4x, two caption lines, 2 px padding
    assert (cams[0].width, cams[0].height) == (8 * cell[0] + 2, cell[1] + 2)  # 8 images in one row
    grid = events.Images("val/predictions")[-1]
    assert (grid.width, grid.height) == (8 * cell[0] + 2, 2 * cell[1] + 2)  # 16 images, 8 per row
    assert {"val/confusion_matrix/text_summary", "val/predictions/text_summary"} <= set(
        events.PluginTagToContent("text")
    )
    best_raw = events.Scalars("best/val_acc1")[-1].value
    assert best_raw == pytest.approx(max(e.value for e in events.Scalars("val/acc1")))
