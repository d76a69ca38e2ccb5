"""What was written before the package was split into layers still loads: a run's checkpoint with its config.yaml
(validated and exported through `effnet`, as a user would), a ScalingSpec pickled under its old import path; and
every config in configs/ parses. The files are in tests/support/data/pre_layers (its README says how they were made)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
import yaml
from effnet_run import effnet

from effnet_lightning.datamodules.cifar10 import CIFAR10_CLASSES
from effnet_lightning.model.scaling import ScalingSpec
from effnet_lightning.train.checkpoint_format import TrainedCheckpoint, checkpoint_globals

ROOT = Path(__file__).parents[2]
PRE_LAYERS = ROOT / "tests" / "support" / "data" / "pre_layers"
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def test_scaling_spec_pickled_under_its_old_name_loads_weights_only() -> None:
    """`effnet_lightning.scaling.ScalingSpec` is allow-listed for weights-only loads inside `checkpoint_globals()`,
    and only there: importing the package leaves torch's list alone."""
    with checkpoint_globals():
        loaded = torch.load(PRE_LAYERS / "scaling_spec.pt", weights_only=True)
    assert loaded == {"scaling": ScalingSpec(phi=-1.0)}
    assert ScalingSpec not in torch.serialization.get_safe_globals()
    with pytest.raises(pickle.UnpicklingError):
        torch.load(PRE_LAYERS / "scaling_spec.pt", weights_only=True)


def test_checkpoint_globals_keep_what_an_enclosing_block_allowed() -> None:
    """torch's own safe_globals block removes every entry it was given when it ends; ours leaves those that were
    allowed before it (by an enclosing block, or by the caller) in place."""
    with torch.serialization.safe_globals([ScalingSpec]):
        with checkpoint_globals():
            pass
        assert ScalingSpec in torch.serialization.get_safe_globals()


def test_the_checkpoint_reader_reads_it() -> None:
    checkpoint = TrainedCheckpoint.read(PRE_LAYERS / "last.ckpt")
    assert checkpoint.spec == ScalingSpec(phi=-10.0, resolution=32) and checkpoint.has_ema
    assert checkpoint.class_names == list(CIFAR10_CLASSES) and checkpoint.data_config["input_size"] == [3, 32, 32]
    network = checkpoint.network("ema")
    with torch.no_grad():
        assert network(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_validate_and_export_it_through_effnet(cifar10_module, tmp_path, capfd) -> None:
    """Validated with the run's own config.yaml, whose class paths name the old modules; then exported."""
    ckpt = PRE_LAYERS / "last.ckpt"
    places = [f"--data.init_args.data_dir={cifar10_module}", f"--trainer.default_root_dir={tmp_path / 'runs'}"]
    done = effnet(capfd, "validate", "--config", str(PRE_LAYERS / "config.yaml"), *places, f"--ckpt_path={ckpt}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "val/acc1" in done.stdout and "val_ema/acc1" in done.stdout
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["version_0"]  # a checkpoint outside a run folder
    out = tmp_path / "export" / "model.safetensors"
    done = effnet(capfd, "export", f"--ckpt_path={ckpt}", str(out))
    assert done.returncode == 0, done.stderr
    config = json.loads((out.parent / "config.json").read_text())
    assert config["label_names"] == list(CIFAR10_CLASSES) and config["architecture"] is None
    assert config["effnet_scaling"]["resolution"] == 32


@pytest.mark.parametrize("config", CONFIGS, ids=[path.name for path in CONFIGS])
def test_every_config_parses(config: Path, capfd) -> None:
    done = effnet(capfd, "fit", "--config", str(config), "--print_config")
    assert done.returncode == 0, done.stderr[-3000:]
    printed = yaml.safe_load(done.stdout)
    assert printed["model"]["scaling"] and printed["data"]["class_path"].startswith("effnet_lightning.datamodules.")
