"""Callbacks for the EfficientNet training recipe: LR schedule, EMA of weights, stochastic depth."""

from .ema import EMA, TensorPairs, ema_update_, export_ema_state_dict, load_weights, tf_ema_decay
from .lr_schedule import LRSchedule, lr_at, updates_per_epoch
from .stochastic_depth import StochasticDepth, drop_path_rates, set_drop_path_rates

__all__ = [
    "EMA",
    "LRSchedule",
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
