"""Throughput in the logs: img/s and FLOP/s from Lightning's ThroughputMonitor and the project's MAC counter."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from effnet_run import debug_args, effnet, scalars

from effnet_lightning.model import scaling as sc
from effnet_lightning.model.flops import count_macs
from effnet_lightning.model.network import create_model

DEBUG = sc.ScalingSpec(phi=-4, resolution=32)  # configs/cifar_debug.yaml
BATCH = 32  # debug_args
UNITS = {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}  # Lightning's summary


def test_fit_logs_images_and_flops_per_second_and_the_summary_counts_flops(
    cifar10_module: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    runs = tmp_path / "runs"
    args = debug_args(
        cifar10_module,
        runs,
        "--trainer.callbacks+=effnet_lightning.callbacks.ImageThroughputMonitor",
        "--trainer.callbacks.window_size=2",
        "--trainer.log_every_n_steps=1",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=4",
        "--trainer.enable_model_summary=true",
    )
    done = effnet(capfd, "fit", *args)
    assert done.returncode == 0, done.stderr
    logged = scalars(runs / "version_0")
    images_per_s, flops_per_s = logged["train/device/samples_per_sec"], logged["train/device/flops_per_sec"]
    assert len(images_per_s) >= 2 and all(value > 0 for value in images_per_s)
    macs = count_macs(create_model(DEBUG, num_classes=10), 32)
    # FLOP/s = img/s x 2 FLOPs per MAC x 3 passes per training image (forward + backward), same window
    for images, flops in zip(images_per_s, flops_per_s, strict=True):
        assert flops == pytest.approx(images * 2 * 3 * macs, rel=1e-4)
    evaluated = zip(logged["validate/device/samples_per_sec"], logged["validate/device/flops_per_sec"], strict=True)
    for images, flops in evaluated:  # evaluation: one forward pass per image
        assert flops == pytest.approx(images * 2 * macs, rel=1e-4)
    summary = done.stdout + done.stderr
    (line,) = [line for line in summary.splitlines() if "Total FLOPs" in line or "Total Flops" in line]
    value, unit = re.search(r"([\d.]+) ([KMGT])", line).groups()  # rich: "Total FLOPs: 6.0 M"; plain: "6.0 M  Total…"
    assert float(value) * UNITS[unit] == pytest.approx(2 * macs, rel=0.01)  # one image's forward pass (it was 0)
