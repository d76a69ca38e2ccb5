"""`trainer.precision: auto` through the CLI: resolved for the device before the Trainer is built."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from effnet_lightning.assembly.lightning_cli import EffnetCLI
from effnet_lightning.console import console
from effnet_lightning.train import precision

CONFIGS = Path(__file__).parents[2] / "configs"
CIFAR = "effnet_lightning.datamodules.cifar10.CIFAR10DataModule"
TINY = ["--model.scaling.phi=-4", "--model.scaling.resolution=32", "--trainer.logger=false"]


def _cli(cifar10_root: Path, tmp_path: Path, *extra: str) -> EffnetCLI:
    with console():  # what `effnet` shows on the terminal
        return EffnetCLI(
            args=[
                f"--data={CIFAR}",
                f"--data.data_dir={cifar10_root}",
                "--data.val_size=100",
                f"--trainer.default_root_dir={tmp_path}",
                *extra,
            ],
            run=False,
        )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU resolution")
def test_auto_is_32_true_on_cpu(cifar10_root: Path, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    cli = _cli(cifar10_root, tmp_path, *TINY, "--trainer.precision=auto", "--trainer.accelerator=cpu")
    assert cli.trainer.precision == "32-true"
    assert "warning" not in capfd.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU resolution")
def test_shipped_gpu_config_runs_32_true_on_cpu(cifar10_root: Path, tmp_path: Path) -> None:
    """configs/b1_cifar.yaml says `precision: auto`: on a CPU it no longer runs bf16 autocast (17x slower)."""
    cli = _cli(
        cifar10_root,
        tmp_path,
        f"--config={CONFIGS / 'b1_cifar.yaml'}",
        "--data.num_workers=0",
        "--model.scaling.resolution=32",
        "--trainer.logger=false",
    )
    assert cli.trainer.precision == "32-true"


def test_explicit_bf16_on_a_cpu_without_bf16_warns_once(
    cifar10_root: Path, tmp_path: Path, capfd: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    capfd.readouterr()
    cli = _cli(cifar10_root, tmp_path, *TINY, "--trainer.precision=bf16-mixed", "--trainer.accelerator=cpu")
    assert cli.trainer.precision == "bf16-mixed"  # what was asked for runs, with the warning
    warnings = [line for line in capfd.readouterr().err.splitlines() if line.startswith("effnet: warning")]
    assert len(warnings) == 1 and f"{precision.CPU_BF16_SLOWDOWN}x slower" in warnings[0]
