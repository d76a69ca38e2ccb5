"""Callbacks for the EfficientNet training recipe (LR schedule, EMA of weights, stochastic depth) and for long
runs (checkpoints on SIGTERM and every N steps/minutes, RNG states, non-finite loss guard)."""

from .ema import EMA, TensorPairs, ema_update_, export_ema_state_dict, load_weights, tf_ema_decay
from .last_checkpoint import LastCheckpoint
from .lr_schedule import LRSchedule, lr_at, updates_per_epoch
from .nonfinite import NonFiniteLoss, NonFiniteLossError
from .resume_overrides import ResumeOverrides
from .rng_state import RNGState
from .stochastic_depth import StochasticDepth, drop_path_rates, set_drop_path_rates

__all__ = [
    "EMA",
    "LastCheckpoint",
    "LRSchedule",
    "NonFiniteLoss",
    "NonFiniteLossError",
    "RNGState",
    "ResumeOverrides",
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
