"""EffnetTrainer: Lightning's Trainer, with `precision: auto` resolved for the device before it is built.

Lightning's `precision` takes only concrete names; `auto` picks bf16-mixed on CUDA GPUs with bf16, 16-mixed
(loss-scaled) on older ones and 32-true on a CPU (precision.py). An explicit bf16 on a CPU without bf16 units
runs, with one warning on stderr saying how much slower it is. Every other argument is Trainer's own, passed on
unchanged (LightningCLI reads them from Trainer's signature through `super().__init__`).

fit/validate/test/predict are Trainer's own too; they are restated only for their docstrings, which jsonargparse
reads for `effnet fit --help`: what `--ckpt_path` accepts here (`last`, a run folder; resume.py resolves them)
differs from Lightning's text. The other arguments pass through `**kwargs`, and their help stays Lightning's.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from lightning.pytorch import Trainer
from lightning.pytorch.accelerators import Accelerator, CUDAAccelerator
from lightning.pytorch.utilities import rank_zero_only

from effnet_lightning.train.precision import resolve_precision

__all__ = ["EffnetTrainer", "Precision"]

log = logging.getLogger(__name__)

# Lightning 2.6's precision names (docs: Trainer "precision"), and "auto"; nested Literals flatten into one
PrecisionName = Literal["64-true", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true"]
TransformerEngine = Literal["transformer-engine", "transformer-engine-float16"]
ShortName = Literal["64", "32", "16", "bf16", 64, 32, 16]  # the short names Lightning still accepts
Precision = Literal["auto", PrecisionName, TransformerEngine, ShortName]


class EffnetTrainer(Trainer):
    def __init__(
        self,
        *,
        accelerator: str | Accelerator = "auto",
        precision: Precision | None = None,  # None: Lightning's default, 32-true; "auto": what fits the device
        **trainer_args: Any,  # the rest of Trainer's arguments, unchanged
    ) -> None:
        if precision is not None:
            name = "cuda" if isinstance(accelerator, CUDAAccelerator) else str(accelerator)
            resolved = resolve_precision(precision, name)
            if resolved.warning:
                _warn(resolved.warning)
            precision = resolved.precision
        super().__init__(accelerator=accelerator, precision=precision, **trainer_args)

    def fit(self, *args: Any, ckpt_path: str | Path | None = None, **kwargs: Any) -> None:
        """Train the model (`effnet fit`): a new run folder `<default_root_dir>/version_N/`, or resume one.

        Args:
            ckpt_path: resume training in the checkpoint's own run folder: `last` (the newest
                runs/*/checkpoints/last.ckpt that is not training now), a run folder (runs/version_3: its
                checkpoints/last.ckpt) or a .ckpt file; the model and data settings must match the run's.
        """
        return super().fit(*args, ckpt_path=ckpt_path, **kwargs)

    def validate(self, *args: Any, ckpt_path: str | Path | None = None, **kwargs: Any) -> Any:
        """Evaluate a checkpoint on the validation set (`effnet validate`); results go to <run>/eval/version_N/.

        Args:
            ckpt_path: the weights to evaluate: `last` (the newest runs/*/checkpoints/last.ckpt), a run folder
                (runs/version_3: its checkpoints/last.ckpt) or a .ckpt file; none: untrained weights.
        """
        return super().validate(*args, ckpt_path=ckpt_path, **kwargs)

    def test(self, *args: Any, ckpt_path: str | Path | None = None, **kwargs: Any) -> Any:
        """Evaluate a checkpoint on the test set (`effnet test`); results go to <run>/eval/version_N/.

        Args:
            ckpt_path: the weights to evaluate: `last` (the newest runs/*/checkpoints/last.ckpt), a run folder
                (runs/version_3: its checkpoints/last.ckpt) or a .ckpt file; none: untrained weights.
        """
        return super().test(*args, ckpt_path=ckpt_path, **kwargs)

    def predict(self, *args: Any, ckpt_path: str | Path | None = None, **kwargs: Any) -> Any:
        """Class probabilities from a checkpoint (`effnet predict`): predictions.pt and .csv in <run>/eval/.

        Args:
            ckpt_path: required; the weights to predict with: `last` (the newest runs/*/checkpoints/last.ckpt),
                a run folder (runs/version_3: its checkpoints/last.ckpt) or a .ckpt file.
        """
        return super().predict(*args, ckpt_path=ckpt_path, **kwargs)


@rank_zero_only
def _warn(message: str) -> None:
    log.warning(f"effnet: warning: {message}")
