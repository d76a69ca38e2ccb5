"""The training runtime: the LightningModule and what it and the callbacks stand on (checkpoint format and IO,
run layout, signals, finite checks, LR schedule, precision, freezing, mixing, initial weights).

Imports the model and datamodules tiers, never callbacks or the assembly above them."""

__all__: list[str] = []
