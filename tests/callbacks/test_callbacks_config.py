"""The callbacks' constructors are the YAML schema: LightningCLI must parse and instantiate them."""

import pytest
from callbacks_testkit import TinyLinear
from lightning.pytorch.cli import LightningCLI

from effnet_lightning.callbacks import EMA


@pytest.mark.parametrize(
    "class_path, init_args, cls, expected",
    [
        (
            "EMA",
            '{"decay": 0.999, "predict_weights": "raw"}',
            EMA,
            {"decay": 0.999, "predict_weights": "raw"},
        ),
    ],
)
def test_lightning_cli_builds_callback(tmp_path, class_path, init_args, cls, expected):
    cli = LightningCLI(
        TinyLinear,
        run=False,
        save_config_callback=None,
        args=[
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.logger=false",
            f'--trainer.callbacks=[{{"class_path": "effnet_lightning.callbacks.{class_path}", '
            f'"init_args": {init_args}}}]',
        ],
    )
    (callback,) = [c for c in cli.trainer.callbacks if isinstance(c, cls)]
    assert {key: getattr(callback, key) for key in expected} == expected
