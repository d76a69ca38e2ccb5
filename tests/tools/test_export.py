"""`effnet export`: the exported safetensors + config.json load into plain timm and, with timm's own eval
transforms, reproduce the validation top-1 that `effnet validate` reports.

The network is B0's multipliers at 32 px: plain timm can only build the official variants (`efficientnet_bN`);
φ-scaled networks have no timm entry point (export.py). The data is the CIFAR-10 stand-ins at their native 32 px,
where the two pipelines are comparable: ours converts on the device (no resize at 32 px, normalize on 0-255),
timm's resizes 32 -> 32 with crop_pct 1.0 (a no-op), ToTensor, Normalize; the same operations in float32.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch
from effnet_run import debug_args, effnet
from PIL import Image
from safetensors import safe_open
from timm.data import create_transform, resolve_data_config

from effnet_lightning.cli import main
from effnet_lightning.datamodules.cifar10 import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, CIFAR10DataModule
from effnet_lightning.model.network import TF_BN_EPS, create_model
from effnet_lightning.model.scaling import ScalingSpec
from effnet_lightning.train.checkpoint_format import load_checkpoint

VAL_SIZE = 100  # debug_args' val split: 4 batches of 32 hold all 100 images
B0_AT_32PX = ("--model.scaling.phi=null", "--model.scaling.variant=b0", "--model.scaling.resolution=32")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, cifar10_module: Path) -> dict:
    root = tmp_path_factory.mktemp("export")
    args = debug_args(cifar10_module, root / "runs", "--trainer.max_epochs=1", *B0_AT_32PX)  # 15 steps
    assert main(["fit", *args]) == 0
    return {"ckpt": root / "runs" / "version_0" / "checkpoints" / "last.ckpt", "data": cifar10_module}


def reported(stdout: str, metric: str) -> float:
    """A metric from Lightning's results table."""
    return float(stdout.split(metric)[1].split()[1].strip("│"))


def timm_top1(folder: Path, data_dir: Path) -> tuple[float, dict, torch.Tensor]:
    """Top-1 on the validation split with plain timm (create_model from the folder, timm's eval transform), the
    config it used and its logits."""
    model = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    data_config = resolve_data_config(model=model)
    transform = create_transform(**data_config)
    samples = CIFAR10DataModule(str(data_dir), val_size=VAL_SIZE).val_dataset()
    images = torch.stack([transform(Image.fromarray(samples[i][0])) for i in range(len(samples))])
    labels = torch.tensor([samples[i][1] for i in range(len(samples))])
    with torch.no_grad():
        logits = model(images)
    return (logits.argmax(dim=1) == labels).float().mean().item(), {**data_config, **model.pretrained_cfg}, logits


def our_logits(ckpt: Path, weights: str, data_dir: Path) -> torch.Tensor:
    """The checkpoint's network on the validation split through this project's own pipeline (the datamodule's
    uint8 images, its on-device conversion): what `effnet validate` computes."""
    checkpoint = load_checkpoint(ckpt)
    state = checkpoint["current_model_state" if weights == "raw" else "state_dict"]  # the EMA callback's layout
    network = create_model(ScalingSpec(variant="b0", resolution=32), num_classes=10, bn_eps=TF_BN_EPS)
    network.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
    data = CIFAR10DataModule(str(data_dir), val_size=VAL_SIZE, resolution=32)
    samples = data.val_dataset()
    images = torch.stack([torch.from_numpy(samples[i][0]).permute(2, 0, 1) for i in range(len(samples))])
    with torch.no_grad():
        return network.eval()(data.to_model_input(images))


@pytest.mark.parametrize("weights, metric", [("ema", "val_ema/acc1"), ("raw", "val/acc1")])
def test_export_reproduces_validation_top1_in_plain_timm(trained, tmp_path, capfd, weights, metric) -> None:
    args = debug_args(trained["data"], tmp_path / "runs", *B0_AT_32PX)
    done = effnet(capfd, "validate", *args, f"--ckpt_path={trained['ckpt']}")
    assert done.returncode == 0, done.stderr[-3000:]
    expected = reported(done.stdout, metric)

    out = tmp_path / "export" / "model.safetensors"
    done = effnet(capfd, "export", f"--ckpt_path={trained['ckpt']}", f"--weights={weights}", str(out))
    assert done.returncode == 0, done.stderr
    top1, config, logits = timm_top1(out.parent, trained["data"])
    assert abs(top1 - expected) <= 0.005, (top1, expected)
    # The same numbers, not only the same top-1: a preprocessing mismatch (mean, std, scale, crop) moves every
    # logit, whatever the model learnt. Not every logit within 1e-3: the briefly trained B0 amplifies float
    # rounding of its input (x / 255 - mean) / std; with 1 thread up to 5% of logits differed by more than 0.01
    # (at most 0.58), while their median difference was 4e-7.
    difference = (logits - our_logits(trained["ckpt"], weights, trained["data"])).abs()
    assert difference.median() < 1e-4, difference.median()
    assert tuple(config["input_size"]) == (3, 32, 32) and config["crop_pct"] == 1.0
    assert config["interpolation"] == "bilinear"
    assert tuple(config["mean"]) == pytest.approx(CIFAR10_MEAN) and tuple(config["std"]) == pytest.approx(CIFAR10_STD)
    assert config["label_names"] == list(CIFAR10_CLASSES)
    with safe_open(str(out), "pt") as file:  # the file alone says how to feed it
        assert json.loads(file.metadata()["config"])["pretrained_cfg"]["mean"] == pytest.approx(CIFAR10_MEAN)


def test_export_never_overwrites(trained, tmp_path, capfd) -> None:
    out = tmp_path / "model.safetensors"
    out.write_bytes(b"the user's file")
    done = effnet(capfd, "export", f"--ckpt_path={trained['ckpt']}", str(out))
    assert done.returncode == 2
    assert done.stderr.startswith("effnet export: error: ") and done.stderr.count("\n") == 1
    assert out.read_bytes() == b"the user's file" and not (tmp_path / "config.json").exists()


def test_phi_scaled_networks_name_their_multipliers(trained_run, tmp_path, capfd) -> None:
    """No timm entry point builds φ = -4: architecture is null, and effnet_scaling rebuilds it."""
    out = tmp_path / "export" / "model.safetensors"
    done = effnet(capfd, "export", f"--ckpt_path={trained_run / 'checkpoints' / 'last.ckpt'}", str(out))
    assert done.returncode == 0, done.stderr
    config = json.loads((out.parent / "config.json").read_text())
    assert config["architecture"] is None
    from effnet_lightning.model.network import create_model
    from effnet_lightning.model.scaling import ScalingSpec

    scaling = config["effnet_scaling"]
    model = create_model(ScalingSpec(depth=scaling["depth"], width=scaling["width"]), num_classes=10)
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(out)))  # strict: every key and shape matches
