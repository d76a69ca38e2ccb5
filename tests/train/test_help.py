"""`effnet fit --help` explains every argument of the model and data sections (jsonargparse reads the constructors'
Google-style "Args:" docstrings through docstring-parser), the data section's heading says how to pick a class,
and `--ckpt_path` says what `last` and a run folder mean here."""

from __future__ import annotations

import dataclasses
import inspect
import re

import pytest
from effnet_run import effnet

from effnet_lightning.assembly.lightning_cli import DATA_HELP
from effnet_lightning.datamodules.base import ImageDataModule
from effnet_lightning.model.scaling import ScalingSpec
from effnet_lightning.train.module import EfficientNetModule

DATAMODULES = ("ImageDataModule", "CIFAR10DataModule", "ImageFolderDataModule", "ImageNetDataModule")


def help_texts(output: str) -> dict[str, str]:
    """`--option` -> its help text (without the metavar), from argparse's layout: an option starts a line with two
    spaces and `--`; its help follows two or more spaces later on that line, or on the more indented lines below."""
    texts: dict[str, str] = {}
    option = None
    for line in output.splitlines():
        if line.startswith("  --"):
            spec, _, rest = line.strip().partition("  ")
            option = spec.split()[0]
            texts[option] = rest.strip()
        elif option is not None and line.startswith("    "):
            texts[option] = f"{texts[option]} {line.strip()}".strip()
        else:
            option = None
    return texts


def assert_each_has_help(texts: dict[str, str], prefix: str, names: list[str]) -> None:
    missing = [name for name in names if texts.get(f"{prefix}{name}", "(type:").startswith("(type:")]
    assert not missing, f"no help line: {', '.join(prefix + name for name in missing)}"


def constructor_arguments(cls: type) -> list[str]:
    """The constructor's own named arguments (not what it takes as **kwargs)."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    return [p.name for p in parameters if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def test_every_model_argument_has_a_help_line(capfd) -> None:
    done = effnet(capfd, "fit", "--help")
    assert done.returncode == 0
    texts = help_texts(done.stdout)
    linked = ("scaling", "num_classes")  # scaling: a section of its own; num_classes: linked from the data
    assert_each_has_help(texts, "--model.", [n for n in constructor_arguments(EfficientNetModule) if n not in linked])
    assert_each_has_help(texts, "--model.scaling.", [f.name for f in dataclasses.fields(ScalingSpec)])


def test_data_section_says_how_to_pick_a_class(capfd) -> None:
    done = effnet(capfd, "fit", "--help")
    assert done.returncode == 0
    assert f"\n{DATA_HELP}:\n" in done.stdout  # argparse prints a group's heading unwrapped
    assert "A DataModule standardizes" not in done.stdout  # Lightning's docstring, cut off after "is:"


@pytest.mark.parametrize("name", DATAMODULES)
def test_every_datamodule_argument_has_a_help_line(capfd, name: str) -> None:
    from effnet_lightning.assembly import plugins

    done = effnet(capfd, "fit", "--data.help", name)
    assert done.returncode == 0, done.stderr[-2000:]
    texts = help_texts(done.stdout)
    # its own arguments and the shared ones it takes as **kwargs (declared once, in ImageDataModule), and every
    # other argument jsonargparse found on the way (an intermediate base's)
    shared = constructor_arguments(ImageDataModule)
    assert_each_has_help(texts, "--data.", constructor_arguments(plugins.resolve(name)) + shared)
    assert_each_has_help(texts, "", [option for option in texts if option.startswith("--data.")])


@pytest.mark.parametrize("subcommand", ["fit", "validate"])
def test_ckpt_path_help_explains_last_and_run_folders(capfd, subcommand: str) -> None:
    done = effnet(capfd, subcommand, "--help")
    assert done.returncode == 0
    text = help_texts(done.stdout)["--ckpt_path"]
    assert re.search(r"`last` \(the newest runs/\*/checkpoints/last\.ckpt", text), text
    assert "a run folder (runs/version_3: its checkpoints/last.ckpt)" in text
    assert "restricts loading" in help_texts(done.stdout)["--weights_only"]  # Lightning's, passed through
