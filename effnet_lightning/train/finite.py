"""Which floating-point tensors of a model state or checkpoint hold NaN or inf.

A diverged run can have a finite loss while its weights or BatchNorm running statistics are already infinite
(train-mode BatchNorm normalises with the batch's statistics, not the running ones), so checking the loss alone
let a broken last.ckpt be written (seen in a diverged run: inf running_var in 14 of 228 tensors). Every checkpoint
write checks the tensors themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

__all__ = ["NonFiniteStateError", "all_finite", "nonfinite_names"]


class NonFiniteStateError(RuntimeError):
    """A checkpoint or model state holds NaN/inf; nothing was written."""


def _tensors(obj: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            yield from _tensors(value, f"{prefix}.{index}")


def all_finite(obj: Any) -> torch.Tensor:
    """A device bool, without a host sync: every floating-point tensor in `obj` (nested dicts/lists) is finite."""
    flags = [t.detach().isfinite().all() for _, t in _tensors(obj) if t.is_floating_point() and t.numel()]
    return torch.stack(flags).all() if flags else torch.tensor(True)


def nonfinite_names(obj: Any) -> list[str]:
    """The dotted names of the floating-point tensors in `obj` that hold NaN or inf."""
    return [name for name, t in _tensors(obj) if t.is_floating_point() and not bool(t.detach().isfinite().all())]
