"""`model.grad_checkpointing` and `model.compile`: same gradients, plain checkpoint keys, EMA and resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from effnet_run import debug_args, effnet
from torch.utils.data import DataLoader, TensorDataset

from effnet_lightning.model import scaling as sc
from effnet_lightning.model.memory import saved_activation_bytes
from effnet_lightning.model.network import create_model
from effnet_lightning.train.checkpoint_format import load_checkpoint
from effnet_lightning.train.module import EfficientNetModule

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


class RandomBatches(pl.LightningDataModule):
    """Four float batches of 32 px images made up in memory: all a Trainer needs to take optimizer steps."""

    batch_size = 8

    def train_dataloader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(0)
        images = torch.randn(4 * self.batch_size, 3, 32, 32, generator=generator)
        targets = torch.randint(0, 10, (len(images),), generator=generator)
        return DataLoader(TensorDataset(images, targets), batch_size=self.batch_size)


def _batchnorm_statistics(steps: int, grad_checkpointing: bool, tmp_path: Path) -> dict[str, torch.Tensor]:
    """running_mean, running_var and num_batches_tracked of every BatchNorm after `steps` real Trainer steps."""
    module = _module(grad_checkpointing=grad_checkpointing)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, datamodule=RandomBatches())
    statistics = ("running_mean", "running_var", "num_batches_tracked")
    return {k: v for k, v in module.model.state_dict().items() if k.endswith(statistics)}


def test_grad_checkpointing_counts_each_batch_once_in_batchnorm_statistics(tmp_path: Path) -> None:
    """Backward re-runs every checkpointed block in train mode; BatchNorm must not update its statistics then."""
    plain, checkpointed = (_batchnorm_statistics(3, on, tmp_path / str(on)) for on in (False, True))
    assert plain.keys() == checkpointed.keys() and len(plain) > 3 * 10  # every BN of the network, blocks included
    for name, value in checkpointed.items():
        if name.endswith("num_batches_tracked"):
            assert value.item() == plain[name].item() == 3, name
        else:  # one momentum step per batch: the same statistics as without checkpointing
            torch.testing.assert_close(value, plain[name], rtol=1e-4, atol=1e-6, msg=name)


def _last(runs: Path) -> dict:
    return load_checkpoint(runs / "version_0" / "checkpoints" / "last.ckpt")


class CompiledProbe(pl.Callback):
    """Records, for every forward of the module's network while fitting, whether it ran as a torch.compile graph:
    `torch.compiler.is_compiling()` in a forward hook is True only where dynamo traced the call (the hook is part
    of the compiled `nn.Module.__call__`); for an eager network it is False."""

    seen: ClassVar[list[bool]] = []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._hook = pl_module.model.register_forward_hook(self._record)

    def _record(self, module: torch.nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        CompiledProbe.seen.append(torch.compiler.is_compiling())

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._hook.remove()


def test_compiled_fit_checkpoint_loads_into_uncompiled_module_and_plain_timm_and_resumes(
    cifar10_root: Path, tmp_path: Path, capfd: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(CompiledProbe, "seen", [])
    probe = "--trainer.callbacks+=" + json.dumps({"class_path": f"{__name__}.{CompiledProbe.__name__}"})
    runs = tmp_path / "runs"
    # precise BN off: its mixed-mode pass is one more compiled graph per network (about a minute on a 2-core CPU),
    # and not this test's claim
    compile_args = ["--model.compile=true", f"--model.compile_backend={TEST_BACKEND}", probe, "--precise_bn=null"]
    args = debug_args(cifar10_root, runs, *compile_args)
    done = effnet(capfd, "fit", *args, "--trainer.max_steps=3", "--trainer.limit_val_batches=1")
    assert done.returncode == 0, done.stderr
    assert len(CompiledProbe.seen) >= 3 and all(CompiledProbe.seen)  # every training step ran the compiled graph
    checkpoint = _last(runs)
    assert not any("_orig_mod" in key for key in checkpoint["state_dict"])
    assert "current_model_state" in checkpoint  # the EMA callback ran: state_dict holds the averaged weights
    for weights in (checkpoint["state_dict"], checkpoint["current_model_state"]):
        EfficientNetModule(scaling=TINY, num_classes=10).load_state_dict(weights, strict=True)
        network = {key.removeprefix("model."): value for key, value in weights.items()}
        create_model(TINY, num_classes=10).load_state_dict(network, strict=True)  # timm's EfficientNet

    CompiledProbe.seen.clear()
    done = effnet(capfd, "fit", *args, "--trainer.max_steps=5", "--trainer.limit_val_batches=1", "--ckpt_path=last")
    assert done.returncode == 0, done.stderr
    assert _last(runs)["global_step"] == 5
    assert len(CompiledProbe.seen) >= 2 and all(CompiledProbe.seen)  # the resumed fit compiled the network too
