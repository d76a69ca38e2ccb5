"""A frozen backbone: the classifier trains alone for the first N epochs (or the whole run, a linear probe).

The backbone is everything timm's `forward_features` runs (stem, blocks, head conv and their BatchNorms); the head
is the pooling, dropout and classifier. While the backbone is frozen:
- its forward runs under `torch.no_grad()`, so backward stops at the features (no gradient through the convs);
- its modules are in eval mode: BatchNorm uses and keeps the loaded running statistics, drop-path is off;
- its parameters get no update: their gradients are set to None before the optimizer steps, and torch's and timm's
  optimizers skip a parameter without a gradient (no weight decay, no momentum, no optimizer state).

Why not Lightning's `BackboneFinetuning`, which freezes by `requires_grad` and adds parameter groups mid-run: a
resumed run comes back frozen, and DDP registers the parameters that require gradients when it wraps the model,
so changing `requires_grad` mid-run breaks it. Here `requires_grad` never changes and the optimizer holds every
parameter from the start. The phase is a pure function of `trainer.current_epoch`, so a resumed run is in the
phase an uninterrupted one would be, with no state of its own in the checkpoint. Under DDP every parameter must
take part in every backward (the default `find_unused_parameters=False`): `anchor` ties the backbone parameters
to the loss with a zero weight, so DDP reduces zero gradients for them, which are then dropped as above.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import torch
from torch import Tensor, nn

__all__ = [
    "FrozenEpochs",
    "anchor",
    "backbone",
    "backbone_parameters",
    "drop_backbone_grads",
    "frozen_at",
    "head_only_logits",
    "set_backbone_training",
]

FrozenEpochs = int | Literal["all"]  # epochs the backbone stays frozen; "all": the whole run (a linear probe)
HEAD_PREFIX = "classifier."  # timm EfficientNet: the only parameters outside forward_features


def frozen_at(epoch: int, frozen_epochs: FrozenEpochs) -> bool:
    """Whether the backbone is frozen in (0-based) `epoch`."""
    return frozen_epochs == "all" or epoch < frozen_epochs


def backbone(network: nn.Module) -> list[nn.Module]:
    """The modules timm EfficientNet's `forward_features` runs."""
    return [network.conv_stem, network.bn1, network.blocks, network.conv_head, network.bn2]


def backbone_parameters(network: nn.Module) -> Iterator[nn.Parameter]:
    return (p for name, p in network.named_parameters() if not name.startswith(HEAD_PREFIX))


def set_backbone_training(network: nn.Module, training: bool) -> None:
    """Backbone modules to train or eval mode (BatchNorm statistics, drop-path); the head keeps the network's."""
    for module in backbone(network):
        module.train(training)


def head_only_logits(network: nn.Module, images: Tensor) -> Tensor:
    """(B, classes) logits with no autograd graph through the backbone: backward costs the head only."""
    with torch.no_grad():
        features = network.forward_features(images)
    return network.forward_head(features)


def anchor(network: nn.Module) -> Tensor:
    """0 as a function of every backbone parameter: added to the loss, DDP sees them all take part (zero
    gradients), at the cost of one pass over the parameters, not over the activations."""
    return torch.stack([p.sum() for p in backbone_parameters(network)]).sum() * 0.0


def drop_backbone_grads(network: nn.Module) -> None:
    """Optimizers skip parameters whose gradient is None: the frozen backbone is not updated at all."""
    for p in backbone_parameters(network):
        p.grad = None
