"""`model.grad_checkpointing` and `model.compile`: same gradients, plain checkpoint keys, EMA and resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from effnet_run import debug_args, effnet

from effnet_lightning import scaling as sc
from effnet_lightning.memory import saved_activation_bytes
from effnet_lightning.model import create_model
from effnet_lightning.module import EfficientNetModule

TINY = sc.ScalingSpec(phi=-4, resolution=32)
# torch.compile backend for CPU tests: inductor took 152 s to compile phi -4 here (2 shared cores), aot_eager 6 s;
# aot_eager still traces with dynamo and runs AOTAutograd's forward/backward graphs.
TEST_BACKEND = "aot_eager"


def _module(**kwargs: object) -> EfficientNetModule:
    torch.manual_seed(0)
    return EfficientNetModule(scaling=TINY, num_classes=10, dropout=0.0, drop_path_rate=0.0, **kwargs).train()


def test_grad_checkpointing_leaves_gradients_equal_and_saves_activations() -> None:
    images, targets = torch.randn(4, 3, 32, 32), torch.tensor([1, 2, 3, 4])
    grads, saved = [], []
    for checkpointing in (False, True):
        module = _module(grad_checkpointing=checkpointing)
        F.cross_entropy(module(images), targets).backward()
        grads.append([p.grad for p in module.parameters()])
        saved.append(saved_activation_bytes(module.model, images)[0])
    for plain, checkpointed in zip(*grads, strict=True):
        torch.testing.assert_close(checkpointed, plain, rtol=1e-4, atol=1e-6)
    assert saved[1] * 4 <= saved[0]  # the option reaches the network: at least 4x fewer bytes kept for backward


def _last(runs: Path) -> dict:
    return torch.load(runs / "version_0" / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")


def test_compiled_fit_checkpoint_loads_into_uncompiled_module_and_plain_timm_and_resumes(
    cifar10_root: Path, tmp_path: Path, capfd: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled: list[str] = []
    original = EfficientNetModule.compile_network

    def spy(self: EfficientNetModule) -> None:
        original(self)
        compiled.append(self.hparams.compile_backend)

    monkeypatch.setattr(EfficientNetModule, "compile_network", spy)
    runs = tmp_path / "runs"
    args = debug_args(cifar10_root, runs, "--model.compile=true", f"--model.compile_backend={TEST_BACKEND}")
    done = effnet(capfd, "fit", *args, "--trainer.max_steps=3", "--trainer.limit_val_batches=1")
    assert done.returncode == 0, done.stderr
    assert compiled == [TEST_BACKEND]
    checkpoint = _last(runs)
    assert not any("_orig_mod" in key for key in checkpoint["state_dict"])
    assert "current_model_state" in checkpoint  # the EMA callback ran: state_dict holds the averaged weights
    for weights in (checkpoint["state_dict"], checkpoint["current_model_state"]):
        EfficientNetModule(scaling=TINY, num_classes=10).load_state_dict(weights, strict=True)
        network = {key.removeprefix("model."): value for key, value in weights.items()}
        create_model(TINY, num_classes=10).load_state_dict(network, strict=True)  # timm's EfficientNet

    done = effnet(capfd, "fit", *args, "--trainer.max_steps=5", "--trainer.limit_val_batches=1", "--ckpt_path=last")
    assert done.returncode == 0, done.stderr
    assert _last(runs)["global_step"] == 5 and compiled == [TEST_BACKEND] * 2
