"""Stand-in pretrained weights for fine-tuning tests: a 1000-class φ = -4 network at 32 px whose BatchNorm
statistics are shifted (running_mean + 0.5), so a test can tell loaded statistics from recomputed or trained ones."""

from __future__ import annotations

import torch

from effnet_lightning.model.network import create_model
from effnet_lightning.model.scaling import ScalingSpec

MEAN_SHIFT = 0.5  # added to every running_mean: far from what 32 px stand-in images give


def pretrained_state() -> dict[str, torch.Tensor]:
    """The weights, as timm's state dict (seeded: the same on every call)."""
    torch.manual_seed(0)
    state = create_model(ScalingSpec(phi=-4, resolution=32), num_classes=1000).state_dict()
    return {k: v + MEAN_SHIFT if k.endswith("running_mean") else v for k, v in state.items()}


def backbone_difference(module_state: dict[str, torch.Tensor], pretrained: dict[str, torch.Tensor]) -> float:
    """Largest change of any backbone tensor (weights and BN statistics) of a module's state from the pretrained
    one."""
    return max(
        (module_state[f"model.{k}"].double() - v.double()).abs().max().item()
        for k, v in pretrained.items()
        if not k.startswith("classifier.")
    )
