"""Callbacks for the EfficientNet training recipe (LR schedule, EMA of weights, stochastic depth) and for long
runs (checkpoints on SIGTERM and every N steps/minutes, RNG states, non-finite loss guard)."""

from .ema import EMA, TensorPairs, ema_update_, export_ema_state_dict, load_weights, tf_ema_decay
from .lr_schedule import LRSchedule, lr_at, updates_per_epoch
from .nonfinite import NonFiniteLoss, NonFiniteLossError
from .rng_state import RNGState
from .run_checkpoint import RunCheckpoint
from .stochastic_depth import StochasticDepth, drop_path_rates, set_drop_path_rates

__all__ = [
    "EMA",
    "LRSchedule",
    "NonFiniteLoss",
    "NonFiniteLossError",
    "RNGState",
    "RunCheckpoint",
    "StochasticDepth",
    "TensorPairs",
    "drop_path_rates",
    "ema_update_",
    "export_ema_state_dict",
    "load_weights",
    "lr_at",
    "set_drop_path_rates",
    "tf_ema_decay",
    "updates_per_epoch",
]
