"""AutoBatchSize: the largest per-device batch within the memory budget, the global batch and the LR kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from effnet_run import debug_args

from effnet_lightning.assembly.lightning_cli import EffnetCLI
from effnet_lightning.callbacks.auto_batch import AutoBatchSize, split_batch
from effnet_lightning.console import console
from effnet_lightning.model import memory
from effnet_lightning.model import scaling as sc

DEBUG = sc.ScalingSpec(phi=-4, resolution=32)  # configs/cifar_debug.yaml
CONFIGURED = 64  # images per device per update
FITS = 20  # images the budget below leaves room for


@pytest.mark.parametrize(
    "global_batch, largest, expected",
    [(64, 20, (16, 4)), (64, 64, (64, 1)), (64, 1000, (64, 1)), (96, 40, (32, 3)), (7, 3, (1, 7)), (64, 0, (1, 64))],
)
def test_split_keeps_the_global_batch(global_batch: int, largest: int, expected: tuple[int, int]) -> None:
    per_device, accumulate = split_batch(global_batch, largest)
    assert (per_device, accumulate) == expected and per_device * accumulate == global_batch


def _fit(data: Path, tmp_path: Path, *extra: str) -> EffnetCLI:
    args = debug_args(
        data, tmp_path / "runs", f"--data.init_args.batch_size={CONFIGURED}", "--model.lr_schedule=constant"
    )
    with console():  # what `effnet` shows on the terminal
        return EffnetCLI(args=["fit", *args, "--trainer.max_steps=2", "--trainer.limit_val_batches=0", *extra])


def test_auto_batch_keeps_the_global_batch_and_the_lr(
    cifar10_module: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    estimate = memory.estimate(DEBUG.resolve(), num_classes=10)
    budget_gb = estimate.training_bytes(FITS) / 1e9
    plain = _fit(cifar10_module, tmp_path / "plain")
    auto = _fit(
        cifar10_module,
        tmp_path / "auto",
        "--trainer.callbacks+=effnet_lightning.callbacks.AutoBatchSize",
        f"--trainer.callbacks.memory_budget_gb={budget_gb}",
    )
    (callback,) = [c for c in auto.trainer.callbacks if isinstance(c, AutoBatchSize)]
    assert (callback.per_device, callback.accumulate) == (16, 4)  # 20 fit; 16 x 4 = 64 exactly
    assert auto.datamodule.batch_size == 16 and auto.trainer.accumulate_grad_batches == 4
    assert auto.trainer.train_dataloader.batch_size == 16  # the loader the fit ran with
    assert auto.model.global_batch_size() == plain.model.global_batch_size() == CONFIGURED
    lr = [cli.trainer.optimizers[0].param_groups[0]["lr"] for cli in (plain, auto)]
    assert lr[0] == lr[1] == pytest.approx(0.016 * CONFIGURED / 256)
    assert auto.trainer.global_step == plain.trainer.global_step == 2  # updates, each of 64 images
    assert "auto batch: 16 images per device x accumulate_grad_batches 4 = 64" in capfd.readouterr().err
