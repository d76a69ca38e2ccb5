"""The model layer: the scaling rule and solver, the timm-built network, its MAC count and memory estimate.

Imports nothing from the training layer. `create_model` is imported on first use, so `effnet scale --help` starts
without torch and timm.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["create_model"]


def __getattr__(name: str) -> Any:
    if name == "create_model":
        return importlib.import_module("effnet_lightning.model.network").create_model
    raise AttributeError(f"module 'effnet_lightning.model' has no attribute {name!r}")
