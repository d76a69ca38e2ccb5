"""`effnet fit --help` explains every model argument (jsonargparse reads the constructor's docstring)."""

from __future__ import annotations

import inspect
import re

from effnet_run import effnet

from effnet_lightning.module import EfficientNetModule


def test_every_model_argument_has_a_help_line(capfd) -> None:
    done = effnet(capfd, "fit", "--help")
    assert done.returncode == 0
    names = [
        n
        for n in inspect.signature(EfficientNetModule.__init__).parameters
        if n not in ("self", "scaling", "num_classes")
    ]  # num_classes: linked
    for name in names:
        match = re.search(rf"^  --model\.{name} \S+\s+(.*)$", done.stdout, flags=re.MULTILINE)
        if match is None or not match.group(1):  # a long option name: the help starts on the next line
            match = re.search(rf"^  --model\.{name} \S+\n\s+(.*)$", done.stdout, flags=re.MULTILINE)
        assert match is not None, name
        assert not match.group(1).startswith("(type:"), f"--model.{name} has no help line"
