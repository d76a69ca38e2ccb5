"""Callbacks for the EfficientNet training recipe (EMA of weights, BatchNorm statistics recomputed before
evaluation) and for long runs (last.ckpt on signals and every N steps/minutes, RNG states, non-finite loss guard,
optimizer settings given at resume). The LR schedule and stochastic depth are the module's own arguments
(`model.lr_schedule`, `model.drop_path_rate`)."""

from .auto_batch import AutoBatchSize
from .ema import EMA, TensorPairs, ema_update_, load_weights, tf_ema_decay
from .last_checkpoint import LastCheckpoint
from .nonfinite import NonFiniteLoss, NonFiniteLossError
from .precise_bn import PreciseBN
from .resume_overrides import ResumeOverrides
from .rng_state import RNGState
from .throughput import ImageThroughputMonitor

__all__ = [
    "AutoBatchSize",
    "EMA",
    "ImageThroughputMonitor",
    "LastCheckpoint",
    "NonFiniteLoss",
    "NonFiniteLossError",
    "PreciseBN",
    "RNGState",
    "ResumeOverrides",
    "TensorPairs",
    "ema_update_",
    "load_weights",
    "tf_ema_decay",
]
