"""EMA of the weights as in the EfficientNet recipe: a callback that owns its averaged copy of the module.

The paper (arXiv 1905.11946, sec. 5.2) evaluates an exponential moving average of the weights, decay
0.9999. The official code (tensorflow/tpu efficientnet/main.py) uses `tf.train.ExponentialMovingAverage(
decay, num_updates=global_step)` over the trainable variables *and* the BN moving statistics: the decay warms
up as min(decay, (1 + n) / (10 + n)) and the shadow copy starts at the initial weights.

What this does that Lightning 2.6's `WeightAveraging` / `EMAWeightAveraging` does not:
- the TF decay warm-up, from `trainer.global_step`, so resuming needs no extra state;
- one `torch._foreach_lerp_` over all floating tensors (parameters and BN buffers) and one `_foreach_copy_`
  for integer buffers (`num_batches_tracked`), the decay a Python float: no Python loop per tensor and no
  host-device sync (0.6% of a step, against 6% for `EMAWeightAveraging`'s per-tensor `avg_fn`);
- validation of both weights: the module keeps its raw weights (and logs `val/*` itself); this callback runs
  the averaged copy on the same batches through the module's own metric definitions
  (`pl_module.evaluation_metrics(prefix)`) and logs `val_ema/loss`, `val_ema/acc1`, `val_ema/acc5` (and
  `test_ema/*`).
It is a plain Callback, not a `WeightAveraging` subclass: that base swaps the averaged weights into the module
for validation and at the end of training, which is the opposite of what we want, and is built around
`AveragedModel`'s per-tensor update.

Checkpoints keep the layout of Lightning's `WeightAveraging`: `state_dict` holds the EMA weights (so a plain
`load_from_checkpoint` or a timm export gets the EMA model), `current_model_state` the raw weights and
`averaging_state` the number of updates. Resuming restores both exactly.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from torch import Tensor, nn
from torchmetrics import MetricCollection
from typing_extensions import override

from effnet_lightning.errors import ConfigError
from effnet_lightning.train.checkpoint_format import (
    AVERAGING_STATE,
    RAW_STATE,
    STATE,
    TrainedCheckpoint,
    has_ema,
)
from effnet_lightning.train.checkpoint_format import Weights as Which

__all__ = ["EMA", "TensorPairs", "Which", "ema_update_", "load_weights", "tf_ema_decay"]

log = logging.getLogger(__name__)


def tf_ema_decay(num_updates: int, decay: float = 0.9999, warmup: bool = True) -> float:
    """The decay of TF's `ExponentialMovingAverage(decay, num_updates)` after `num_updates` updates."""
    return min(decay, (1.0 + num_updates) / (10.0 + num_updates)) if warmup else decay


class TensorPairs:
    """The averaged copy's tensors matched by name to the model's, split into those to lerp and those to copy.

    Built once per fit (after the strategy has moved the model) so that an update is two foreach calls.
    """

    def __init__(self, average: nn.Module, current: nn.Module, use_buffers: bool = True) -> None:
        avg_params, cur_params = dict(average.named_parameters()), dict(current.named_parameters())
        avg_buffers, cur_buffers = dict(average.named_buffers()), dict(current.named_buffers())
        if avg_params.keys() != cur_params.keys() or avg_buffers.keys() != cur_buffers.keys():
            raise RuntimeError("The averaged copy and the model have different parameters or buffers.")
        self.lerp_average: list[Tensor] = []
        self.lerp_current: list[Tensor] = []
        self.copy_average: list[Tensor] = []
        self.copy_current: list[Tensor] = []
        pairs = [(avg_params[n], cur_params[n], True) for n in cur_params]
        pairs += [(avg_buffers[n], cur_buffers[n], use_buffers) for n in cur_buffers]
        for avg, cur, average_it in pairs:
            if avg.shape != cur.shape or avg.dtype != cur.dtype or avg.device != cur.device:
                raise RuntimeError(
                    f"Averaged tensor {tuple(avg.shape)} {avg.dtype} {avg.device} does not match "
                    f"the model's {tuple(cur.shape)} {cur.dtype} {cur.device}."
                )
            if avg.stride() != cur.stride():  # e.g. the model went channels_last after the copy was made
                avg.data = torch.empty_like(cur).copy_(avg)
            if average_it and (avg.is_floating_point() or avg.is_complex()):
                self.lerp_average.append(avg)
                self.lerp_current.append(cur)
            else:  # integer buffers (BN num_batches_tracked) are counters: copy, never average
                self.copy_average.append(avg)
                self.copy_current.append(cur)

    def __len__(self) -> int:
        return len(self.lerp_average) + len(self.copy_average)


@torch.no_grad()
def ema_update_(pairs: TensorPairs, decay: float) -> None:
    """average <- decay * average + (1 - decay) * current, in one foreach call; integer buffers copied."""
    if pairs.lerp_average:
        torch._foreach_lerp_(pairs.lerp_average, pairs.lerp_current, 1.0 - decay)
    if pairs.copy_average:
        torch._foreach_copy_(pairs.copy_average, pairs.copy_current)


class EMA(Callback):
    """EMA of weights and BN statistics with TF's decay warm-up; validates raw and EMA weights side by side.

    Cooperation with the LightningModule: batches are `(images, targets)` at `on_*_batch_end`, the module's
    `forward(images)` returns logits, and `evaluation_metrics(prefix)` returns a fresh `MetricCollection` of
    the metrics `val/*` uses, updated with `(logits, targets)`. The averaged copy is a deepcopy of the whole
    module, so it runs the same forward. Monitor `val_ema/acc1` (mode max) to select on the EMA weights.

    `predict_weights` picks the weights `trainer.predict(ckpt_path=...)` runs with; `validate`/`test` from a
    checkpoint report both (`val/*` raw from the module, `val_ema/*` EMA from here). Outside the Trainer use
    `load_weights(ckpt, "ema"|"raw")`, or `effnet export` for the bare network.
    """

    def __init__(
        self,
        decay: float = 0.9999,  # paper / TF main.py moving_average_decay
        warmup: bool = True,  # TF num_updates warm-up: min(decay, (1 + n) / (10 + n))
        use_buffers: bool = True,  # TF averages the BN moving mean/variance too
        predict_weights: Which = "ema",
    ) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ConfigError(f"EMA decay must be in [0, 1], got {decay}.")
        if predict_weights not in ("ema", "raw"):
            raise ConfigError(f"predict_weights must be 'ema' or 'raw', got {predict_weights!r}.")
        self.decay = decay
        self.warmup = warmup
        self.use_buffers = use_buffers
        self.predict_weights = predict_weights
        self.averaged: pl.LightningModule | None = None  # the averaged copy, on the training device
        self.num_updates = 0  # EMA updates so far (saved as averaging_state)
        self._last_step = 0  # global_step of the last update: one update per optimizer step
        self._pairs: TensorPairs | None = None
        self._loaded: dict[str, Tensor] | None = None  # EMA weights from a checkpoint, for the copy to come
        self._metrics: dict[str, MetricCollection] = {}

    def _make_averaged(self, pl_module: pl.LightningModule) -> None:
        """The averaged copy: of the module as it is now (after the strategy placed it), or of a checkpoint's EMA."""
        if self.averaged is None:
            self.averaged = copy.deepcopy(pl_module).eval().requires_grad_(False)
        if self._loaded is not None:
            self.averaged.load_state_dict(self._loaded)
            self._loaded = None

    # ---- training: the update ----

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After the strategy moved the model (and made it channels_last, if so) and before validation starts.
        self._make_averaged(pl_module)

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After a checkpoint (if any) restored global_step.
        assert self.averaged is not None
        self._pairs = TensorPairs(self.averaged, pl_module, self.use_buffers)
        self._last_step = trainer.global_step

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # global_step counts optimizer updates; with accumulation only a window's last micro-batch updates.
        step = trainer.global_step
        if step > self._last_step:
            assert self._pairs is not None
            ema_update_(self._pairs, tf_ema_decay(step, self.decay, self.warmup))
            self.num_updates += 1
            self._last_step = step

    # ---- validation / test: both weights ----

    @override
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._loaded is not None:  # `validate` from a checkpoint with EMA weights
            self._make_averaged(pl_module)

    @override
    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._loaded is not None:
            self._make_averaged(pl_module)

    @override
    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        with trainer.precision_plugin.val_step_context():
            self._evaluate_batch("val_ema/", batch, pl_module)

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log_epoch("val_ema/", pl_module)

    @override
    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        with trainer.precision_plugin.test_step_context():
            self._evaluate_batch("test_ema/", batch, pl_module)

    @override
    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log_epoch("test_ema/", pl_module)

    @torch.no_grad()
    def _evaluate_batch(self, prefix: str, batch: Any, pl_module: pl.LightningModule) -> None:
        if self.averaged is None:
            return
        images, targets = batch[0], batch[1]
        logits = self.averaged(images)  # (N, C)
        metrics = self._metrics.get(prefix)
        if metrics is None:
            if not hasattr(pl_module, "evaluation_metrics"):
                raise TypeError(
                    f"EMA evaluates the averaged weights with the module's metrics: give {type(pl_module).__name__} "
                    "an evaluation_metrics(prefix) method returning a torchmetrics MetricCollection."
                )
            metrics = self._metrics[prefix] = pl_module.evaluation_metrics(prefix).to(logits.device)
        metrics.update(logits, targets)

    def _log_epoch(self, prefix: str, pl_module: pl.LightningModule) -> None:
        metrics = self._metrics.get(prefix)
        if metrics is None:
            return
        for name, value in metrics.compute().items():
            # compute() already all-reduces across ranks; sync_dist only keeps Lightning's DDP check quiet.
            pl_module.log(name, value, on_step=False, on_epoch=True, sync_dist=True)
        metrics.reset()

    # ---- checkpoints ----

    @override
    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """`state_dict` becomes the EMA weights, `current_model_state` the raw ones (WeightAveraging's layout)."""
        if self.averaged is None:
            return
        checkpoint[RAW_STATE] = checkpoint[STATE]
        checkpoint[STATE] = self.averaged.state_dict()
        checkpoint[AVERAGING_STATE] = {"n_averaged": torch.tensor(self.num_updates)}

    @override
    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # Lightning has loaded checkpoint["state_dict"] (the EMA weights, if any) into the module already.
        averaged = has_ema(checkpoint)
        if trainer.state.fn == TrainerFn.PREDICTING:
            if averaged and self.predict_weights == "raw":
                pl_module.load_state_dict(checkpoint[RAW_STATE])
            elif not averaged and self.predict_weights == "ema":
                _warn("The checkpoint holds no EMA weights; predicting with its raw weights.")
            return
        if averaged:
            # Keep the EMA weights for the averaged copy (made once the strategy has placed the module) and give
            # the module its raw weights back.
            self._loaded = {name: tensor.detach().clone() for name, tensor in pl_module.state_dict().items()}
            pl_module.load_state_dict(checkpoint[RAW_STATE])
            self.num_updates = int(checkpoint[AVERAGING_STATE]["n_averaged"])


def load_weights(checkpoint_path: str | Path, which: Which = "ema", weights_only: bool = True) -> dict[str, Tensor]:
    """The LightningModule state_dict (keys like `model.conv_stem.weight`) of the EMA or the raw weights.

    Use it as `module.load_state_dict(load_weights(ckpt, "raw"))`. A checkpoint saved without the EMA callback
    (or with `save_weights_only=True`, which skips callback hooks) only has raw weights. `weights_only=False`
    accepts a checkpoint that names other Python objects: only for a file you trust.
    """
    return TrainedCheckpoint.read(checkpoint_path, trusted=not weights_only).module_state(which)


@rank_zero_only
def _warn(message: str) -> None:
    """One line on stderr under `effnet`, once per run (rank 0), not per process."""
    log.warning(f"effnet: warning: {message}")
