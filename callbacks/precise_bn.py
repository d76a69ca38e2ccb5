"""PreciseBN: BatchNorm statistics recomputed for the weights being evaluated, before every validation and test.

BatchNorm's running statistics are an exponential average over training batches taken while the weights moved,
so they describe earlier weights. On small images, where the last stages run on 2x2 and 1x1 maps, they lag by
orders of magnitude (BENCHMARKS.md, "Small images"): evaluation lands near chance while training-mode accuracy
is fine. The EMA's BN buffers are averages of the same stale statistics. This callback recomputes the statistics
of the raw weights and of the EMA callback's averaged copy over a fixed set of training images, as pycls's
`compute_precise_bn_stats` does (8,192 images by default), with `torch.optim.swa_utils.update_bn`: statistics
reset, then the plain mean over the batches (momentum None).

- Images: the datamodule's `calibration_dataloader(num_images)`, a seeded fixed subset of the training split
  through the eval transform, in training's batch size (datamodules/base.py), then the datamodule's batch hooks
  (on the device: float, resize, normalise), as in evaluation.
- Only the BatchNorm layers run in training mode. Dropout and stochastic depth stay off, as in evaluation, so
  the statistics are those of the network evaluation runs, and no random number is drawn: a fit with
  evaluations trains exactly as one without them, and exact resume holds.
- A frozen backbone (`model.frozen_epochs`) holds every BatchNorm and keeps its loaded statistics: nothing is
  recomputed while it is frozen.
- DDP: every rank recomputes over the same images in the same order, so the ranks agree without a collective
  (a SyncBatchNorm still averages across ranks: the same numbers).
- Checkpoints: best-k files and the last.ckpt written after a validation come after the recomputation; when
  training ends with weights changed since the last validation, the statistics are recomputed then, before the
  final last.ckpt. Mid-epoch resume points (every N steps or minutes, on a signal) keep training's running
  statistics, so resuming from one continues exactly. Each checkpoint records the step its statistics belong
  to; validate and test from a checkpoint recompute unless that is the checkpoint's own step.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor, nn
from torch.optim.swa_utils import update_bn
from typing_extensions import override

from effnet_lightning.errors import ConfigError
from effnet_lightning.model.grad_checkpointing import BATCH_NORMS

from .ema import EMA

__all__ = ["PRECISE_BN_IMAGES", "PreciseBN", "recompute_batchnorm"]

# images; pycls's default (its config's `BN.NUM_SAMPLES_PRECISE = 8192`). Measured (BENCHMARKS.md, "Precise
# BatchNorm"): one pass for the raw and EMA weights costs about 0.5x a training step per image, so 0.3% of an ImageNet
# epoch and 7-9% of a CIFAR-10 epoch per validation; a training split this small or smaller is used whole.
PRECISE_BN_IMAGES = 8192


class _BatchNormsOnly(nn.Module):
    """Networks as `update_bn` drives them: `train()` switches their BatchNorm layers only, so dropout and
    stochastic depth stay in evaluation mode (deterministic, and no RNG draws); `forward` runs each network on
    the batch, so one pass over the images serves the raw and the EMA weights."""

    def __init__(self, networks: list[nn.Module]) -> None:
        super().__init__()
        self.networks = nn.ModuleList(networks)

    def train(self, mode: bool = True) -> _BatchNormsOnly:
        for module in self.networks.modules():
            if isinstance(module, BATCH_NORMS):
                module.train(mode)
        return self

    def forward(self, images: Tensor) -> None:
        for network in self.networks:
            network(images)


@torch.no_grad()
def recompute_batchnorm(networks: list[nn.Module], batches: Iterable[Tensor]) -> None:
    """Reset the running statistics of every BatchNorm in `networks` and set them to the mean over `batches`
    (model inputs on the networks' device) of each batch's statistics; the rest of each network runs in evaluation
    mode. Every module's train/eval mode is as before afterwards."""
    modes = {module: module.training for network in networks for module in network.modules()}
    for network in networks:
        network.eval()
    try:
        update_bn(batches, _BatchNormsOnly(networks))
    finally:
        for module, training in modes.items():
            module.train(training)


class PreciseBN(Callback):
    """Recomputes BatchNorm statistics of the raw and EMA weights over fixed training images before evaluating.

    Args:
        num_images: training images the statistics are computed over (the whole training split if it has
            fewer), in the datamodule's batch size; pycls's 8,192 by default.
    """

    def __init__(self, num_images: int = PRECISE_BN_IMAGES) -> None:
        if num_images < 1:
            raise ConfigError(
                f"precise_bn.num_images must be 1 or more, got {num_images}; set `precise_bn: null` to turn it off"
            )
        self.num_images = num_images
        self.step: int | None = None  # global_step of the weights the statistics were last recomputed for
        self._checkpoint_step: int | None = None  # global_step of the checkpoint evaluated (validate/test)

    # ---- when ----

    @override
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After every callback's on_validation_start (the EMA callback makes its copy there) and eval().
        if not trainer.sanity_checking:  # the sanity check runs the pipeline, not the weights
            self._recompute_if_stale(trainer, pl_module)

    @override
    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._recompute_if_stale(trainer, pl_module)

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Before the checkpoint callbacks' on_train_end (Lightning runs them last): the final last.ckpt.
        self._recompute_if_stale(trainer, pl_module)

    def _recompute_if_stale(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        fitting = trainer.state.fn == TrainerFn.FITTING
        step = trainer.global_step if fitting else self._checkpoint_step
        if step is not None and step == self.step:
            return  # these weights' statistics are computed (or were, before the checkpoint was written)
        if getattr(pl_module, "backbone_frozen", False):
            return  # every BatchNorm is in the frozen backbone: its loaded statistics belong to its unchanged weights
        self.recompute(trainer, pl_module)
        self.step = step

    # ---- how ----

    def recompute(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Recompute the statistics of the module's weights and, with the EMA callback, of its averaged copy."""
        datamodule = trainer.datamodule
        if not hasattr(datamodule, "calibration_dataloader"):
            raise ConfigError(
                f"precise_bn recomputes BatchNorm statistics over training images from the datamodule's "
                f"calibration_dataloader(num_images); {type(datamodule).__name__} has none: derive it from "
                "ImageDataModule, or set `precise_bn: null`"
            )
        networks: list[nn.Module] = [pl_module]
        networks += [c.averaged for c in trainer.callbacks if isinstance(c, EMA) and c.averaged is not None]
        with trainer.precision_plugin.val_step_context():
            recompute_batchnorm(networks, self._model_inputs(datamodule, pl_module))

    def _model_inputs(self, datamodule: Any, pl_module: pl.LightningModule) -> Iterator[Tensor]:
        """The calibration images as evaluation feeds them: the datamodule's hooks before and after the copy."""
        for batch in datamodule.calibration_dataloader(self.num_images):
            batch = datamodule.on_before_batch_transfer(batch, 0)
            batch = datamodule.transfer_batch_to_device(batch, pl_module.device, 0)
            batch = datamodule.on_after_batch_transfer(batch, 0)
            yield batch[0] if isinstance(batch, (tuple, list)) else batch

    # ---- checkpoints ----

    @override
    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        self._checkpoint_step = checkpoint.get("global_step")

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.step = state_dict.get("step")
