"""Stochastic depth: the drop-path rate of every EfficientNet block, set in place on timm's DropPath modules.

The paper (arXiv 1905.11946, sec. 5.2) uses stochastic depth with survival probability 0.8. The official
code (tensorflow/tpu efficientnet_model.py) scales the drop rate linearly with the block index,
`drop_rate * idx / num_blocks`, so block 0 never drops and the last block drops `rate * (N-1)/N`. timm's
builder (`_efficientnet_builder.py`, `drop_path_rate * block_idx / total_block_count`) does the same.

Interplay with timm: a block built with rate 0 gets `nn.Identity` instead of `DropPath`, so build the model
with `drop_path_rate > 0` (the project's `create_model` defaults to 0.2) and let this callback own the
values: it overwrites every block's `drop_prob` with the same linear rule, optionally scaled up from 0 over
the first `ramp_epochs` epochs (per optimizer update, a function of `trainer.global_step`: resume needs no
state). With `ramp_epochs=0` and the same rate it reproduces timm's construction exactly. timm's DropPath is
the identity in eval mode, so validation and the EMA copy never drop. Blocks without a residual (those that
change shape) never drop, whatever their rate.
"""

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from timm.layers import DropPath
from timm.models.efficientnet import EfficientNet, EfficientNetFeatures
from torch import nn
from typing_extensions import override

from .lr_schedule import updates_per_epoch


def drop_path_rates(num_blocks: int, drop_path_rate: float) -> list[float]:
    """Per-block drop probabilities, linear in the block index (TF efficientnet_model.py, timm's builder)."""
    return [drop_path_rate * index / num_blocks for index in range(num_blocks)]


def efficientnet_blocks(module: nn.Module) -> list[nn.Module]:
    """The blocks of every timm EfficientNet inside `module`, in forward order."""
    blocks = [
        block
        for net in module.modules()
        if isinstance(net, EfficientNet | EfficientNetFeatures)
        for stage in net.blocks
        for block in stage
    ]
    if not blocks:
        raise ValueError("StochasticDepth found no timm EfficientNet in the LightningModule.")
    return blocks


def set_drop_path_rates(module: nn.Module, drop_path_rate: float) -> list[float]:
    """Set every block's DropPath.drop_prob in place; returns the rates set (one per block)."""
    blocks = efficientnet_blocks(module)
    rates = drop_path_rates(len(blocks), drop_path_rate)
    for index, (block, rate) in enumerate(zip(blocks, rates, strict=True)):
        drop_path = getattr(block, "drop_path", None)
        if isinstance(drop_path, DropPath):
            drop_path.drop_prob = rate
        elif rate > 0:
            raise ValueError(
                f"Block {index} has no DropPath module (the model was built with drop_path_rate=0?); "
                "build it with drop_path_rate > 0, e.g. create_model(..., drop_path_rate=0.2)."
            )
    return rates


class StochasticDepth(Callback):
    """Sets every block's drop-path rate before each training batch: linear in depth, optionally ramped."""

    def __init__(
        self,
        drop_path_rate: float = 0.2,  # paper: survival 0.8 (== drop 0.2), scaled by idx / num_blocks
        ramp_epochs: float = 0.0,  # 0: full rate from the start; else scale linearly from 0 over these epochs
    ) -> None:
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}.")
        if ramp_epochs < 0:
            raise ValueError(f"ramp_epochs must be >= 0, got {ramp_epochs}.")
        self.drop_path_rate = drop_path_rate
        self.ramp_epochs = ramp_epochs

    def rate_at(self, update: int, updates_per_epoch: int) -> float:
        """The (ramped) `drop_path_rate` at optimizer update `update`; block i gets it times i / N."""
        if self.ramp_epochs == 0:
            return self.drop_path_rate
        return self.drop_path_rate * min(1.0, update / (self.ramp_epochs * updates_per_epoch))

    @override
    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        if stage == "fit":
            set_drop_path_rates(pl_module, self.drop_path_rate)  # fails early on a model without DropPath
            if self.ramp_epochs > 0:
                set_drop_path_rates(pl_module, 0.0)

    @override
    def on_train_batch_start(
        self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: object, batch_idx: int
    ) -> None:
        if self.ramp_epochs > 0:
            set_drop_path_rates(pl_module, self.rate_at(trainer.global_step, updates_per_epoch(trainer)))
