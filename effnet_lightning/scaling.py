"""The import path of `ScalingSpec` in checkpoints written before the package had layers.

Those checkpoints pickle `effnet_lightning.scaling.ScalingSpec`; this module gives that name the same class, for
plain unpickling and (registered under the old name in train/checkpoint_format.py) for weights-only loading.
"""

from effnet_lightning.model.scaling import *  # noqa: F403
from effnet_lightning.model.scaling import __all__  # noqa: F401
