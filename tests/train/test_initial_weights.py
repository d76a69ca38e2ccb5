"""`model.init`: one timm state dict, saved in every format the option reads, loads with every non-classifier
tensor identical; a classifier for another class count is re-initialised; each refusal names its cause."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from effnet_lightning.errors import (
    EXIT_USER_ERROR,
    CheckpointError,
    ConfigError,
    CorruptFileError,
    DownloadError,
    MissingFileError,
)
from effnet_lightning.model.network import create_model
from effnet_lightning.model.scaling import ScalingSpec
from effnet_lightning.tools.export import export
from effnet_lightning.train.module import EfficientNetModule

SPEC = ScalingSpec(phi=-4, resolution=32)
SOURCE_CLASSES = 1000
MEAN, STD = (0.1, 0.2, 0.3), (0.4, 0.5, 0.6)  # recorded in the checkpoint, so adoption is visible


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, torch.Tensor], Path]:
    """A timm state dict with non-trivial BN statistics, written as .safetensors, .pth, an effnet .ckpt (EMA and
    raw weights) and an `effnet export` folder."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    network = create_model(SPEC, num_classes=SOURCE_CLASSES)
    state = {k: (v + torch.rand_like(v) if v.is_floating_point() else v + 3) for k, v in network.state_dict().items()}
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "timm.safetensors"))
    torch.save(state, folder / "timm.pth")
    torch.save({"state_dict_ema": state, "epoch": 3}, folder / "timm_train.pth")  # a timm train.py checkpoint
    raw = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
    torch.save(
        {  # an effnet fit checkpoint with the EMA callback (checkpoint_format.py)
            "state_dict": {f"model.{k}": v for k, v in state.items()},
            "current_model_state": {f"model.{k}": v for k, v in raw.items()},
            "averaging_state": {"n_averaged": torch.tensor(10)},
            "hyper_parameters": {"scaling": SPEC, "num_classes": SOURCE_CLASSES, "bn_eps": 1e-3},
            "data_config": {
                "input_size": [3, 32, 32],
                "mean": list(MEAN),
                "std": list(STD),
                "interpolation": "bilinear",
                "crop_pct": 1.0,
                "crop_mode": "center",
            },
        },
        folder / "run.ckpt",
    )
    export(str(folder / "run.ckpt"), str(folder / "export" / "model.safetensors"))
    return state, folder


def module(init: str, num_classes: int = 10, **kwargs) -> EfficientNetModule:
    return EfficientNetModule(scaling=SPEC, num_classes=num_classes, init=init, **kwargs)


def assert_backbone_equal(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    for key, tensor in want.items():
        if not key.startswith("classifier."):
            assert torch.equal(got[f"model.{key}"], tensor), key


@pytest.mark.parametrize("name", ["timm.safetensors", "timm.pth", "timm_train.pth", "run.ckpt", "export"])
def test_every_route_loads_every_tensor_but_a_new_head(source, name, caplog) -> None:
    state, folder = source
    with caplog.at_level(logging.INFO):
        loaded = module(str(folder / name)).state_dict()
    assert_backbone_equal(loaded, state)
    assert loaded["model.classifier.weight"].shape == (10, state["classifier.weight"].shape[1])
    assert "classifier: 1000 → 10 classes, re-initialised" in caplog.text


def test_same_class_count_loads_the_head_too(source) -> None:
    state, folder = source
    loaded = module(str(folder / "timm.safetensors"), num_classes=SOURCE_CLASSES).state_dict()
    assert all(torch.equal(loaded[f"model.{k}"], v) for k, v in state.items())


def test_checkpoint_raw_weights_on_request(source) -> None:
    state, folder = source
    loaded = module(str(folder / "run.ckpt"), init_weights="raw").state_dict()
    assert torch.equal(loaded["model.conv_stem.weight"], state["conv_stem.weight"] + 1)


def test_datamodule_adopts_the_weights_preprocessing_unless_configured(source) -> None:
    from effnet_lightning.datamodules.cifar10 import CIFAR10_MEAN, CIFAR10DataModule

    _, folder = source
    for name in ("run.ckpt", "export"):
        preprocessing = module(str(folder / name)).pretrained_preprocessing
        assert preprocessing is not None
        data = CIFAR10DataModule("unused", resolution=32)
        data.use_pretrained_preprocessing(preprocessing)
        assert data.mean == pytest.approx(MEAN) and data.std == pytest.approx(STD)
    data = CIFAR10DataModule("unused", resolution=32, mean=CIFAR10_MEAN, std=(0.25, 0.25, 0.25))
    data.use_pretrained_preprocessing(preprocessing)
    assert data.mean == CIFAR10_MEAN  # the config's own wins
    assert module(str(folder / "timm.pth")).pretrained_preprocessing is None  # a bare state dict records none


def test_refuses_weights_of_another_size_naming_key_and_shapes(source) -> None:
    _, folder = source
    first_mismatch = r"blocks\.1\.0\.conv_pwl\.weight is \(16, 96, 1, 1\) there and \(24, 96, 1, 1\) here"
    with pytest.raises(ConfigError, match=first_mismatch):
        EfficientNetModule(scaling=ScalingSpec(phi=-2, resolution=32), num_classes=10, init=str(folder / "timm.pth"))


def test_refuses_missing_corrupt_and_unknown(source, tmp_path) -> None:
    _, folder = source
    with pytest.raises(MissingFileError, match="nowhere.safetensors does not exist"):
        module(str(tmp_path / "nowhere.safetensors"))
    (tmp_path / "bad.pth").write_bytes(b"not a zip")
    with pytest.raises(CorruptFileError, match="bad.pth"):
        module(str(tmp_path / "bad.pth"))
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CorruptFileError, match="bad.safetensors"):
        module(str(tmp_path / "bad.safetensors"))
    torch.save({"weights": [1, 2]}, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match="no state dict of tensors"):
        module(str(tmp_path / "odd.pth"))
    with pytest.raises(ConfigError, match="timm has no pretrained weights named efficientnet_b0.no_such_tag"):
        module("efficientnet_b0.no_such_tag")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingFileError, match="has no model.safetensors"):
        module(str(tmp_path / "empty"))


def test_a_refusal_is_one_line_and_exit_2(effnet_capfd_args) -> None:
    done = effnet_capfd_args
    assert done.returncode == EXIT_USER_ERROR
    assert "effnet fit: error: model.init:" in done.stderr and "does not exist" in done.stderr


@pytest.fixture
def effnet_capfd_args(tmp_path: Path, capfd: pytest.CaptureFixture):
    from effnet_run import effnet

    return effnet(
        capfd,
        "fit",
        "--data=CIFAR10DataModule",
        f"--data.data_dir={tmp_path}",
        "--data.download=false",
        "--model.scaling.phi=-4",
        f"--model.init={tmp_path / 'gone.safetensors'}",
        f"--trainer.default_root_dir={tmp_path / 'runs'}",
    )


def test_offline_without_cache_says_where_timm_looks(tmp_path: Path) -> None:
    """A real process: huggingface_hub reads HF_HUB_OFFLINE and HF_HOME when it is imported."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1"}
    code = (
        "from effnet_lightning.train.initial_weights import read_initial_weights\n"
        "from effnet_lightning.errors import DownloadError\n"
        "try:\n    read_initial_weights('efficientnet_b0.ra_in1k')\n"
        "except DownloadError as err:\n    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"not in timm's cache {tmp_path / 'hf' / 'hub'}" in out.stdout
    assert "huggingface.co/timm/efficientnet_b0.ra_in1k/resolve/main/model.safetensors" in out.stdout
    assert DownloadError.__mro__[1].__name__ == "UserError"


def test_timms_own_b0_loads_into_the_b0_variant(tmp_path: Path) -> None:
    """What the timm-name route loads (timm's efficientnet_b0, built by timm; random weights: no network here) fits
    `scaling: {variant: b0}` tensor for tensor."""
    import timm

    state = timm.create_model("efficientnet_b0", pretrained=False).state_dict()
    torch.save(state, tmp_path / "b0.pth")
    loaded = EfficientNetModule(scaling=ScalingSpec(variant="b0"), num_classes=10, init=str(tmp_path / "b0.pth"))
    assert_backbone_equal(loaded.state_dict(), state)
