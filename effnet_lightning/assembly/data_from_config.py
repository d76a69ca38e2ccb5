"""The datamodule that `effnet fit`'s options configure, built without a trainer or a run folder.

`effnet cam --split val --config X --data.data_dir Y` must read the same images that `effnet fit` with those
options validates on. Rather than a second, hand-written data parser, this is EffnetCLI itself (same `--config`,
`--data.*`, `--model.scaling.*` links and datamodule error reports) run without a subcommand (LightningCLI's
`run=False`), stopped after the datamodule is built: no run folder is created and no Trainer is set up.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningDataModule
from lightning.pytorch.cli import LightningArgumentParser

from effnet_lightning.assembly.lightning_cli import EffnetCLI

__all__ = ["DataModuleCLI", "datamodule_from_args"]


class DataModuleCLI(EffnetCLI):
    """EffnetCLI(args, run=False) that builds the model and datamodule only (the model is needed by the
    `data.num_classes -> model.num_classes` link)."""

    def __init__(self, args: list[str]) -> None:
        # The images do not depend on the global seed: leave the caller's random state alone (no "Seed set to")
        super().__init__(args=[*args, "--seed_everything=false"], run=False)

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse the options given after cam's own. (LightningCLI's warns that they differ from sys.argv, which
        holds the whole `effnet cam ...` command line; there is no checkpoint for EffnetCLI's own to check.)"""
        self.config = parser.parse_args(args)

    def before_instantiate_classes(self) -> None:
        """Nothing to prepare: this command writes no run folder (EffnetCLI's would create one)."""

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        """No Trainer: only the datamodule is read (a Trainer would set up the accelerator and the loggers)."""
        return None


def datamodule_from_args(args: list[str]) -> LightningDataModule:
    """The datamodule `effnet fit <args>` would train on (its constructor run, no data read yet)."""
    return DataModuleCLI(args).datamodule
