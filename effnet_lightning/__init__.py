"""effnet-lightning: compound-scaled EfficientNet on timm blocks, trained with PyTorch Lightning."""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use, so `effnet --help` and `effnet scale --help` start without loading torch and timm.
_EXPORTS = {
    "create_model": "effnet_lightning.model.network",
    "Scaling": "effnet_lightning.model.scaling",
    "ScalingSpec": "effnet_lightning.model.scaling",
    "compound": "effnet_lightning.model.scaling",
    "explicit": "effnet_lightning.model.scaling",
    "official": "effnet_lightning.model.scaling",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'effnet_lightning' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
