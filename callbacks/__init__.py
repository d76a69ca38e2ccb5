"""Callbacks for the EfficientNet training recipe (EMA of weights) and for long runs (checkpoints on SIGTERM and
every N steps/minutes, RNG states, non-finite loss guard). The LR schedule and stochastic depth are the
module's own arguments (`model.lr_schedule`, `model.drop_path_rate`)."""

from .ema import EMA, TensorPairs, ema_update_, export_ema_state_dict, load_weights, tf_ema_decay
from .nonfinite import NonFiniteLoss, NonFiniteLossError
from .rng_state import RNGState
from .run_checkpoint import RunCheckpoint

__all__ = [
    "EMA",
    "NonFiniteLoss",
    "NonFiniteLossError",
    "RNGState",
    "RunCheckpoint",
    "TensorPairs",
    "ema_update_",
    "export_ema_state_dict",
    "load_weights",
    "tf_ema_decay",
]
