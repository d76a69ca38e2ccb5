"""`effnet fit|validate|test|predict` end to end through the console script, on CIFAR-10 stand-ins."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from cifar_standin import write_cifar10, write_sitecustomize
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

EFFNET = shutil.which("effnet") or str(Path(sys.executable).parent / "effnet")
DEBUG_CONFIG = Path(__file__).parents[1] / "configs" / "cifar_debug.yaml"
STEPS_PER_EPOCH = 15  # 500 training stand-ins // batch 32 (drop_last)


def effnet(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([EFFNET, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def debug_args(data_dir: Path, runs: Path, *extra: str) -> list[str]:
    return [
        "--config", str(DEBUG_CONFIG),
        f"--data.init_args.data_dir={data_dir}", "--data.init_args.download=false",
        "--data.init_args.num_workers=0", "--data.init_args.val_size=100", "--data.init_args.batch_size=32",
        f"--trainer.default_root_dir={runs}", f"--trainer.limit_train_batches={STEPS_PER_EPOCH}",
        "--trainer.limit_val_batches=4", "--trainer.enable_progress_bar=false", *extra,
    ]  # fmt: skip


def scalars(run_dir: Path) -> dict[str, float]:
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return {tag: events.Scalars(tag)[-1].value for tag in events.Tags()["scalars"]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One debug run (3 epochs) shared by the tests that need a checkpoint."""
    root = tmp_path_factory.mktemp("fit")
    md5s = write_cifar10(root / "cifar10")
    site = write_sitecustomize(root / "site", md5s).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    out = effnet("fit", *debug_args(root / "cifar10", root / "runs", "--trainer.max_epochs=4"), env=env, cwd=root)
    assert out.returncode == 0, out.stderr[-3000:]
    return {"root": root, "env": env, "run": root / "runs" / "version_0", "data": root / "cifar10"}


def test_fit_writes_one_run_directory(trained):
    run = trained["run"]
    assert sorted(p.name for p in (trained["root"] / "runs").iterdir()) == ["version_0"]
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert any(p.name.startswith("best-") for p in (run / "checkpoints").iterdir())
    assert any(p.name.startswith("events.out.tfevents") for p in run.iterdir())
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["scaling"]["phi"] == -4.0 and config["trainer"]["max_epochs"] == 4


def test_fit_learns_above_chance(trained):
    metrics = scalars(trained["run"])
    assert {"train/loss", "train/lr", "val/acc1", "val/acc5", "val_ema/acc1"} <= set(metrics)
    assert metrics["val/acc1"] > 0.5  # 10 classes: chance is 0.1


def test_checkpoint_holds_the_linked_num_classes(trained):
    checkpoint = torch.load(trained["run"] / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert checkpoint["hyper_parameters"]["num_classes"] == 10
    assert checkpoint["state_dict"]["model.classifier.weight"].shape[0] == 10
    assert checkpoint["global_step"] == 4 * STEPS_PER_EPOCH


@pytest.mark.parametrize("command, metric", [("validate", "val/acc1"), ("test", "test/acc1")])
def test_validate_and_test_from_checkpoint(trained, command, metric):
    ckpt = trained["run"] / "checkpoints" / "last.ckpt"
    runs = trained["root"] / f"runs_{command}"
    out = effnet(command, *debug_args(trained["data"], runs), f"--ckpt_path={ckpt}", env=trained["env"],
                 cwd=trained["root"])  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert metric in out.stdout
    value = float(out.stdout.split(metric)[1].split()[1].strip("│"))
    assert value > 0.5


def test_predict_writes_probabilities(trained):
    ckpt = trained["run"] / "checkpoints" / "last.ckpt"
    runs = trained["root"] / "runs_predict"
    out = effnet("predict", *debug_args(trained["data"], runs), f"--ckpt_path={ckpt}", env=trained["env"],
                 cwd=trained["root"])  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    saved = torch.load(runs / "version_0" / "predictions.pt", weights_only=True)
    probabilities = saved["probabilities"]
    assert probabilities.shape == (200, 10)  # the stand-in test set
    torch.testing.assert_close(probabilities.sum(1), torch.ones(200))


def test_resume_continues_at_the_saved_step_in_the_same_run(trained):
    run = trained["run"]
    runs = trained["root"] / "runs"
    out = effnet("fit", *debug_args(trained["data"], runs, "--trainer.max_epochs=5"), f"--ckpt_path={run}",
                 env=trained["env"], cwd=trained["root"])  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert sorted(p.name for p in runs.iterdir()) == ["version_0"]  # the resumed run keeps its folder
    resumed = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert (resumed["epoch"], resumed["global_step"]) == (4, 5 * STEPS_PER_EPOCH)


def test_print_config(tmp_path):
    out = effnet("fit", "--config", str(DEBUG_CONFIG), "--print_config", env=dict(os.environ), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert yaml.safe_load(out.stdout)["model"]["scaling"]["phi"] == -4.0


@pytest.mark.parametrize(
    "model_args, resolution",
    [
        (["--model.scaling.variant=b1", "--model.scaling.phi=null", "--model.scaling.resolution=null"], 240),
        (["--model.scaling.phi=1", "--model.scaling.resolution=null"], 256),  # 224 * 1.15, rounded to 4 px
        ([], 32),  # model.scaling.resolution overrides
    ],
)
def test_links_resolution_into_data_and_num_classes_into_model(trained, model_args, resolution):
    from effnet_lightning.training_cli import EffnetCLI

    cli = EffnetCLI([*debug_args(trained["data"], trained["root"] / "unused"), *model_args], run=False)
    assert cli.datamodule.resolution == resolution
    assert cli.model.hparams.num_classes == cli.model.model.num_classes == 10


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model.scaling.variant=b9", "--model.scaling.phi=null"], "'b0', 'b1'"),
        (["--data.init_args.batch_size=0"], "batch_size must be a positive"),
        (["--data.init_args.data_dir=nowhere"], "Set download: true"),
    ],
)
def test_user_errors_are_one_line_exit_2(trained, tmp_path, extra, message):
    args = debug_args(trained["data"], tmp_path / "runs", *extra)
    out = effnet("fit", *args, env=trained["env"], cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    assert message in out.stderr and "Traceback" not in out.stderr


def test_missing_config_file(tmp_path):
    out = effnet("fit", "--config", "no_such.yaml", env=dict(os.environ), cwd=tmp_path)
    assert out.returncode == 2 and "no_such.yaml" in out.stderr and "does not exist" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_corrupt_batch_file_is_reported_and_left_alone(trained, tmp_path):
    data = tmp_path / "cifar10"
    shutil.copytree(trained["data"], data)
    batch = data / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:1000])  # truncated
    before = batch.read_bytes()
    out = effnet("fit", *debug_args(data, tmp_path / "runs"), env=trained["env"], cwd=tmp_path)
    assert out.returncode == 2 and "data_batch_3" in out.stderr and "corrupt" in out.stderr
    assert "Traceback" not in out.stderr
    assert batch.read_bytes() == before
