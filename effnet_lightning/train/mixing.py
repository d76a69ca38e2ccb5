"""Mixup and CutMix for training batches: timm's `Mixup`, configured from the module's settings.

The module pairs it with timm's `SoftTargetCrossEntropy` and logs no train accuracy against mixed targets.
"""

from __future__ import annotations

from timm.data import Mixup

from effnet_lightning.errors import ConfigError

__all__ = ["mixing"]


def mixing(
    num_classes: int, label_smoothing: float, mixup_alpha: float, cutmix_alpha: float, prob: float, switch_prob: float
) -> Mixup | None:
    """timm's Mixup/CutMix on whole batches (with label smoothing on the mixed targets), or None when both are off.
    It draws from NumPy's global generator, which the RNGState callback saves: a resumed run mixes alike."""
    if mixup_alpha < 0 or cutmix_alpha < 0 or not 0 <= prob <= 1 or not 0 <= switch_prob <= 1:
        raise ConfigError(
            "model.mixup_alpha and model.cutmix_alpha must be >= 0, mixup_prob and mixup_switch_prob in [0, 1]; "
            f"got {mixup_alpha}, {cutmix_alpha}, {prob}, {switch_prob}"
        )
    if mixup_alpha == 0 and cutmix_alpha == 0:
        return None
    return Mixup(
        mixup_alpha=mixup_alpha,
        cutmix_alpha=cutmix_alpha,
        prob=prob,
        switch_prob=switch_prob,
        mode="batch",
        label_smoothing=label_smoothing,
        num_classes=num_classes,
    )
