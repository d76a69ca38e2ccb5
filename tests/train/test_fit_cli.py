"""`effnet fit|validate|test|predict` end to end, in process (`cli.main`), on CIFAR-10 stand-ins.

The session's run (conftest.py trained_run) trains for 4 epochs; the tests that need a checkpoint read it and never
change it (a test that continues the run copies it first), so every test passes alone and in any order.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from effnet_run import STEPS_PER_EPOCH, TRAINED_EPOCHS, debug_args, effnet, error_lines, scalars

from effnet_lightning.train.checkpoint_format import load_checkpoint


@pytest.fixture
def trained(trained_run: Path, cifar10_module: Path) -> dict:
    """The session's debug run (conftest.py), shared by the tests that need a checkpoint; read-only for them."""
    return {"root": trained_run.parents[1], "run": trained_run, "data": cifar10_module}


def test_fit_writes_one_run_directory(trained):
    run = trained["run"]
    assert sorted(p.name for p in (trained["root"] / "runs").iterdir()) == ["version_0"]
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert any(p.name.startswith("best-") for p in (run / "checkpoints").iterdir())
    assert any(p.name.startswith("events.out.tfevents") for p in run.iterdir())
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["scaling"]["phi"] == -4.0 and config["trainer"]["max_epochs"] == TRAINED_EPOCHS


@pytest.mark.learning
def test_fit_learns_above_chance(trained, record_property):
    metrics = scalars(trained["run"])
    record_property("val/acc1", metrics["val/acc1"][-1])
    record_property("val_ema/acc1", metrics["val_ema/acc1"][-1])
    assert {"train/loss", "train/lr", "val/acc1", "val/acc5", "val_ema/acc1"} <= set(metrics)
    # 10 classes, chance 0.1; over threads, kernels and seeds (BENCHMARKS.md): val/acc1 0.67-1.0, val_ema 0.86-0.92
    assert metrics["val/acc1"][-1] > 0.4 and metrics["val_ema/acc1"][-1] > 0.4


def test_checkpoint_holds_the_linked_num_classes(trained):
    checkpoint = load_checkpoint(trained["run"] / "checkpoints" / "last.ckpt")
    assert checkpoint["hyper_parameters"]["num_classes"] == 10
    assert checkpoint["state_dict"]["model.classifier.weight"].shape[0] == 10
    assert checkpoint["global_step"] == TRAINED_EPOCHS * STEPS_PER_EPOCH


@pytest.mark.learning
@pytest.mark.parametrize("command, metric", [("validate", "val/acc1"), ("test", "test/acc1")])
def test_validate_and_test_from_checkpoint(trained, tmp_path, capfd, record_property, command, metric):
    run = tmp_path / "copied" / "version_0"
    shutil.copytree(trained["run"], run)  # evaluation writes into the run's eval/ folder; the fixture stays as is
    ckpt = run / "checkpoints" / "last.ckpt"
    done = effnet(capfd, command, *debug_args(trained["data"], tmp_path / "runs"), f"--ckpt_path={ckpt}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert metric in done.stdout
    value = float(done.stdout.split(metric)[1].split()[1].strip("│"))
    record_property(metric, value)
    assert value > 0.3  # chance 0.1; 0.57-0.98 over threads, kernels and seeds (BENCHMARKS.md)


def test_predict_writes_probabilities(trained, tmp_path, capfd):
    run = tmp_path / "copied" / "version_0"
    shutil.copytree(trained["run"], run)  # predict writes into the run's eval/ folder; the fixture stays as is
    done = effnet(capfd, "predict", *debug_args(trained["data"], tmp_path / "runs"), f"--ckpt_path={run}")
    assert done.returncode == 0, done.stderr[-3000:]
    saved = torch.load(run / "eval" / "version_0" / "predictions.pt", weights_only=True)
    probabilities = saved["probabilities"]
    assert probabilities.shape == (200, 10)  # the stand-in test set
    torch.testing.assert_close(probabilities.sum(1), torch.ones(200))


def test_predict_without_a_checkpoint_is_refused(cifar10_module, tmp_path, capfd):
    """It used to write predictions of random weights and exit 0."""
    done = effnet(capfd, "predict", *debug_args(cifar10_module, tmp_path / "runs"))
    assert done.returncode == 2
    assert error_lines(done.stderr) == [
        "effnet predict: error: --ckpt_path is required: pass a .ckpt file, a run directory or 'last' "
        "(without one the predictions would come from untrained, random weights)"
    ]
    assert not (tmp_path / "runs").exists()


def test_resume_continues_at_the_saved_step_in_the_same_run(cifar10_module, tmp_path, capfd):
    """Its own one-epoch run (the shared one is read-only; a copy of it would be a moved run, test_preemption.py)."""
    runs = tmp_path / "runs"
    done = effnet(capfd, "fit", *debug_args(cifar10_module, runs, "--trainer.max_epochs=1"))
    assert done.returncode == 0, done.stderr[-3000:]
    done = effnet(
        capfd, "fit", *debug_args(cifar10_module, runs, "--trainer.max_epochs=2"), f"--ckpt_path={runs}/version_0"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in runs.iterdir()) == ["version_0"]  # the resumed run keeps its folder
    resumed = load_checkpoint(runs / "version_0" / "checkpoints" / "last.ckpt")
    assert (resumed["epoch"], resumed["global_step"]) == (1, 2 * STEPS_PER_EPOCH)


def test_print_config(capfd):
    done = effnet(
        capfd, "fit", "--config", str(Path(__file__).parents[2] / "configs" / "cifar_debug.yaml"), "--print_config"
    )
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["model"]["scaling"]["phi"] == -4.0


@pytest.mark.parametrize(
    "model_args, resolution",
    [
        (["--model.scaling.variant=b1", "--model.scaling.phi=null", "--model.scaling.resolution=null"], 240),
        (["--model.scaling.phi=1", "--model.scaling.resolution=null"], 256),  # 224 * 1.15, rounded to 4 px
        ([], 32),  # model.scaling.resolution overrides
    ],
)
def test_links_resolution_into_data_and_num_classes_into_model(cifar10_module, tmp_path, model_args, resolution):
    from effnet_lightning.assembly.lightning_cli import EffnetCLI

    cli = EffnetCLI([*debug_args(cifar10_module, tmp_path / "unused"), *model_args], run=False)
    assert cli.datamodule.resolution == resolution
    assert cli.model.hparams.num_classes == cli.model.model.num_classes == 10


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--model.scaling.variant=b9", "--model.scaling.phi=null"],
            "Given value: b9",
        ),  # jsonargparse's words, on one line
        (
            ["--model.scaling.phi=-4", "--model.scaling.width=2"],
            "give only one of variant, phi or depth/width multipliers",
        ),
        (["--data.init_args.batch_size=0"], "data.batch_size must be a positive number of images per device; got 0"),
        (["--data.init_args.num_workers=-1"], "data.num_workers must be 0 (load in the main process) or more; got -1"),
        (["--data.init_args.std=[0.2,0,0.2]"], "data.std must not contain 0"),
        (["--data.init_args.val_size=0"], "data.val_size must be a positive number of validation images; got 0"),
        (["--data.init_args.data_dir=nowhere"], "Set download: true"),
        (["--trainer.max_epochs=-5"], "trainer.max_epochs must be -1 (no limit), 0 or more; got -5"),
        (["--trainer.limit_train_batches=-1"], "trainer.limit_train_batches must be a number of batches"),
        (["--trainer.limit_val_batches=1.5"], "trainer.limit_val_batches must be a number of batches"),
    ],
)
def test_user_errors_are_one_line_exit_2(cifar10_module, tmp_path, capfd, extra, message):
    done = effnet(capfd, "fit", *debug_args(cifar10_module, tmp_path / "runs", *extra))
    assert done.returncode == 2, done.stderr[-2000:]
    (line,) = error_lines(done.stderr)
    assert message in line and "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists()  # stopped before anything was written


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_gpu_accelerator_without_a_gpu(cifar10_module, tmp_path, capfd):
    done = effnet(capfd, "fit", *debug_args(cifar10_module, tmp_path / "runs", "--trainer.accelerator=gpu"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert error_lines(done.stderr) == [
        "effnet fit: error: trainer.accelerator is 'gpu' but this machine has no usable CUDA GPU; "
        "use --trainer.accelerator cpu (or auto)"
    ]


def test_default_root_dir_that_is_a_file(cifar10_module, tmp_path, capfd):
    runs = tmp_path / "runs"
    runs.write_text("my notes")
    done = effnet(capfd, "fit", *debug_args(cifar10_module, runs))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert error_lines(done.stderr) == [
        f"effnet fit: error: trainer.default_root_dir {runs} cannot hold runs: {runs} is a file; "
        "choose a folder (it is created if missing)"
    ]
    assert runs.read_text() == "my notes"


def test_resolution_below_the_stride_warns(cifar10_module, tmp_path, capfd):
    extra = ("--model.scaling.resolution=16", "--trainer.fast_dev_run=1")
    done = effnet(capfd, "fit", *debug_args(cifar10_module, tmp_path / "runs", *extra))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "effnet: warning: the input resolution 16 px is below the network's stride of 32 px" in done.stderr


def test_missing_config_file(tmp_path, capfd):
    done = effnet(capfd, "fit", "--config", str(tmp_path / "no_such.yaml"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (line,) = error_lines(done.stderr)
    assert "no_such.yaml" in line and "does not exist" in line


def test_corrupt_batch_file_is_reported_and_left_alone(cifar10_module, tmp_path, capfd):
    data = tmp_path / "cifar10"
    shutil.copytree(cifar10_module, data)
    batch = data / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:1000])  # truncated
    before = batch.read_bytes()
    done = effnet(capfd, "fit", *debug_args(data, tmp_path / "runs"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (line,) = error_lines(done.stderr)
    assert "data_batch_3" in line and "corrupt" in line
    assert batch.read_bytes() == before
