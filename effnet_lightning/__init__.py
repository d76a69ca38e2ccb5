"""effnet-lightning: compound-scaled EfficientNet on timm blocks, trained with PyTorch Lightning."""

from effnet_lightning.model import create_model
from effnet_lightning.scaling import Scaling, compound, explicit, official

__all__ = ["Scaling", "compound", "create_model", "explicit", "official"]
