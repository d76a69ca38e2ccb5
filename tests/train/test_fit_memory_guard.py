"""`effnet fit` estimates the training memory before building the model and refuses what cannot fit (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from effnet_run import debug_args, effnet, error_lines

from effnet_lightning.model import memory
from effnet_lightning.train import module


@pytest.fixture
def builder_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The refusal must come before the network is built: building it fails the test."""

    def unreachable(*args: object, **kwargs: object) -> None:
        raise AssertionError("create_model was reached")

    monkeypatch.setattr(module, "create_model", unreachable)


def test_phi_100_is_refused_before_the_model_is_built(
    cifar10_root: Path, tmp_path: Path, capfd: pytest.CaptureFixture, builder_unreachable: None
) -> None:
    runs = tmp_path / "runs"
    done = effnet(capfd, "fit", *debug_args(cifar10_root, runs, "--model.scaling.phi=100"))
    assert done.returncode == 2, done.stderr
    (line,) = error_lines(done.stderr)
    assert "1.33e+09 blocks; the limit is 1,000" in line and "Traceback" not in done.stderr
    assert not runs.exists()  # no empty run folder left behind


def test_a_batch_over_the_device_memory_is_refused_with_estimate_and_limit(
    cifar10_root: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    builder_unreachable: None,
) -> None:
    monkeypatch.setattr(memory, "device_memory_bytes", lambda accelerator="auto": 10**9)  # a 1 GB device
    # phi -4 at 32 px keeps about 1.3 MB of activations per image: 2,000 images need about 2.7 GB
    done = effnet(capfd, "fit", *debug_args(cifar10_root, tmp_path / "runs", "--data.init_args.batch_size=2000"))
    assert done.returncode == 2, done.stderr
    (line,) = error_lines(done.stderr)
    assert "batch 2000, needs about" in line and "the limit is 1 GB" in line and "lower data.batch_size" in line
