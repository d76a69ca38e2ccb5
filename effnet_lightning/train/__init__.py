"""The training layer: LightningModule, Trainer, LightningCLI, run folders, checkpoints, signals and plugins.

Imports the model layer, never the study or tools layers."""

__all__: list[str] = []
