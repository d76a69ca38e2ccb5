"""`effnet study` in process on the CIFAR-10 stand-ins at 32 px (tests/support/cifar_standin.py): a tiny table7
at 2 paired seeds, its files and verdict, resuming, and the mistakes that must stop it early."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import matplotlib.image
import pytest
import yaml
from effnet_run import DEBUG_CONFIG, effnet, error_lines

import effnet_lightning.cli
from effnet_lightning.errors import EXIT_CRASH, ConfigError
from effnet_lightning.model import scaling as sc
from effnet_lightning.model.flops import cost

MATCH = 0.01  # every arm of a table7 budget within ±1% of its MACs
SEEDS = 2


def tiny(data_dir: Path, runs: Path, *extra: str) -> list[str]:
    """configs/cifar_debug.yaml on the stand-ins: 2 steps of 32 images, 1 validation and 1 test batch, 1 epoch,
    precise BN over one batch, no sanity check and no fit-end pictures (a study test checks what a unit records,
    not what it learns)."""
    return [
        "--config",
        str(DEBUG_CONFIG),
        f"--data.init_args.data_dir={data_dir}",
        "--data.init_args.download=false",
        "--data.init_args.num_workers=0",
        "--data.init_args.val_size=64",
        "--data.init_args.batch_size=32",
        f"--trainer.default_root_dir={runs}",
        "--trainer.limit_train_batches=2",
        "--trainer.limit_val_batches=1",
        "--trainer.limit_test_batches=1",
        "--trainer.num_sanity_val_steps=0",
        "--trainer.max_epochs=1",
        "--trainer.enable_progress_bar=false",
        "--trainer.log_every_n_steps=1",
        "--cam_images=null",
        "--prediction_grid=null",
        "--confusion_matrix=null",
        "--precise_bn.num_images=32",
        "--bench-steps=1",
        *extra,
    ]


def read(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def table7(cifar10_module: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    runs = tmp_path_factory.mktemp("runs")
    args = ["study", "table7", f"--seeds={SEEDS}", *tiny(cifar10_module, runs)]
    assert effnet_lightning.cli.main(args) == 0
    return runs / "study-table7", args


def test_every_arm_lands_within_one_percent_of_the_budget(table7: tuple[Path, list[str]]) -> None:
    folder, _ = table7
    rows = read(folder / "results.csv")
    assert [r["arm"] for r in rows] == ["baseline", "depth", "width", "resolution", "compound"]
    targets = {r["target_macs"] for r in rows[1:]}
    assert len(targets) == 1 and rows[0]["target_macs"] == ""
    for row in rows[1:]:
        counted = cost(float(row["depth"]), float(row["width"]), int(row["resolution"])).macs
        assert int(row["macs"]) == counted
        assert float(row["macs_deviation"]) == pytest.approx(counted / int(row["target_macs"]) - 1, abs=1e-6)
        assert abs(float(row["macs_deviation"])) <= MATCH
    plan = read(folder / "plan.csv")
    assert [p["arm"] for p in plan] == [r["arm"] for r in rows]
    assert list(plan[0])[:9] == [
        "arm",
        "depth",
        "width",
        "resolution",
        "params",
        "macs",
        "target_macs",
        "macs_deviation",
        "activations",
    ]


def test_every_unit_is_evaluated_on_the_test_split(table7: tuple[Path, list[str]]) -> None:
    folder, _ = table7
    for row in read(folder / "results.csv"):
        assert row["status"] == "done" and row["split"] == "test" and int(row["n"]) == SEEDS
        acc1 = [
            json.loads((folder / row["arm"] / f"seed{k}" / "result.json").read_text())["acc1"] for k in range(SEEDS)
        ]
        assert all(0 <= a <= 1 for a in acc1)  # each seed's test top-1, as its own evaluation wrote it
        assert float(row["test_acc1_mean"]) == pytest.approx(statistics.fmean(acc1), abs=1e-6)
        assert float(row["test_acc1_sd"]) == pytest.approx(statistics.stdev(acc1), abs=1e-6)
        assert float(row["train_img_s"]) > 0 and int(row["peak_memory"]) > 0  # measured at the trained setting
        assert row["precision"] == "32-true" and row["batch_size"] == "32" and float(row["device_hours"]) > 0
    units = read(folder / "runs.csv")
    assert len(units) == 5 * SEEDS and {u["seed"] for u in units} == {"42", "43"}  # base seed 42 + k
    result = json.loads((folder / "compound" / "seed1" / "result.json").read_text())
    assert result["selected_by"] == "val_ema/acc1" and result["split"] == "test"
    assert Path(result["checkpoint"]).name.startswith("best-")  # the checkpoint validation selected
    assert result["seed"] == 43 and result["epochs"] == 1


def test_comparisons_have_an_interval_each_and_the_verdict_comes_first(table7: tuple[Path, list[str]]) -> None:
    folder, _ = table7
    comparisons = read(folder / "comparisons.csv")
    assert list(comparisons[0]) == ["arm", "versus", "delta", "ci_low", "ci_high", "n", "significant", "doublings"]
    headline = [c for c in comparisons if c["versus"] != "baseline"]
    assert [(c["arm"], c["versus"]) for c in headline] == [("compound", m) for m in ("depth", "width", "resolution")]
    for c in comparisons:
        assert c["n"] == str(SEEDS)
        if c["ci_low"] == "":  # the same difference on both seeds: no spread, no interval, no verdict
            assert c["significant"] == "false"
            continue
        assert float(c["ci_low"]) <= float(c["delta"]) <= float(c["ci_high"])
        assert c["significant"] == str(float(c["ci_low"]) > 0 or float(c["ci_high"]) < 0).lower()
    text = (folder / "results.md").read_text()
    verdict = text.split("## Verdict")[1].split("## Arms")[0]
    assert text.index("## Verdict") < text.index("## Arms")
    for method in ("depth", "width", "resolution"):
        assert f"- compound − {method} = " in verdict and "points" in verdict


def test_the_plots_are_written(table7: tuple[Path, list[str]]) -> None:
    folder, _ = table7
    for name in ("accuracy_by_arm", "differences", "accuracy_vs_train_img_s", "accuracy_vs_activations"):
        image = matplotlib.image.imread(folder / f"{name}.png")
        assert image.shape[0] > 200 and image.shape[1] > 400, name
    assert not (folder / "marginal_gain.png").exists()  # one budget: no doubling to divide by
    assert not (folder / "accuracy_vs_macs.png").exists()
    assert list((folder / "tensorboard").glob("events.out.tfevents.*"))


def test_rerun_skips_finished_units_and_launch_options_do_not_change_the_study(
    table7: tuple[Path, list[str]], capfd: pytest.CaptureFixture
) -> None:
    folder, args = table7
    before = read(folder / "results.csv")
    done = effnet(capfd, *args, "--bench-steps=0")  # how it runs is not what it is
    assert done.returncode == 0, done.stderr
    assert f"{5 * SEEDS} of {5 * SEEDS} units finished before, skipped" in done.stderr
    assert sorted(p.name for p in (folder / "depth" / "seed0").glob("version_*")) == ["version_0"]
    assert read(folder / "results.csv") == before


def test_a_different_study_on_the_folder_is_refused(
    table7: tuple[Path, list[str]], tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    folder, args = table7
    done = effnet(capfd, *args, "--trainer.max_epochs=3")
    assert done.returncode == 2 and len(error_lines(done.stderr)) == 1
    assert "different study (overrides" in done.stderr
    config = tmp_path / "debug.yaml"
    config.write_text(DEBUG_CONFIG.read_text().replace("lr: 0.016", "lr: 0.032"))
    moved = [f"--config={config}" if a == str(DEBUG_CONFIG) else a for a in args if a != "--config"]
    done = effnet(capfd, *moved)
    assert done.returncode == 2 and "the config file's content" in done.stderr
    assert (folder / "results.csv").is_file() and (folder / "depth" / "seed0" / "result.json").is_file()


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["table7", "--seeds", "0"], "--seeds: expected a whole number >= 1"),
        (["table7", "--target-macs", "1K"], "below the smallest model"),
        (["table7", "--sedes", "2"], "effnet fit does not take these options"),  # a typo: fit's parser says so
        (["tabel7"], "choose one of table7, family, grid"),
        (["family"], "--variants b0 ... bk or --phi"),
        (["family", "--phi", "0", "--model.scaling.phi=1"], "leave them out"),
        (["family", "--phi", "0", "--coefficients", "missing.yaml"], "does not exist"),
    ],
)
def test_mistakes_are_one_line_exit_2_before_anything_trains(
    extra: list[str], words: str, cifar10_module: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    done = effnet(capfd, "study", *extra, *tiny(cifar10_module, tmp_path))
    assert done.returncode == 2, done.stderr
    assert len(error_lines(done.stderr)) == 1 and words in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.glob("study-*/*/seed0"))  # nothing trained


def test_require_test_refuses_a_datamodule_without_a_test_split(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    from imagenet_tree import write_tree

    tree = write_tree(tmp_path / "images", train_per_class=4, val_per_class=2)  # train/ and val/, no test/
    config = yaml.safe_load(DEBUG_CONFIG.read_text())
    config["data"] = {"class_path": "ImageFolderDataModule", "init_args": {"data_dir": str(tree.root)}}
    (tmp_path / "folder.yaml").write_text(yaml.safe_dump(config))
    previous = tmp_path / "runs" / "study-family" / "keep.txt"
    previous.parent.mkdir(parents=True)
    previous.write_text("from an earlier study\n")
    args = [
        "study",
        "family",
        "--phi",
        "0",
        "--require-test",
        "--config",
        str(tmp_path / "folder.yaml"),
        f"--trainer.default_root_dir={tmp_path / 'runs'}",
    ]
    done = effnet(capfd, *args)
    assert done.returncode == 2 and "has no test split" in done.stderr and len(error_lines(done.stderr)) == 1
    assert previous.read_text() == "from an earlier study\n"  # nothing deleted


def test_dry_runs_plan_without_training(cifar10_module: Path, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """The grid at 2x the base's counted MACs, every point distinct; phi = 1 from B0 is 256 px, as in scale/fit."""
    done = effnet(capfd, "study", "grid", "--dry-run", *tiny(cifar10_module, tmp_path), "--bench-steps=0")
    assert done.returncode == 0, done.stderr
    plan = read(tmp_path / "study-grid" / "plan.csv")
    assert plan and all(abs(float(p["macs_deviation"])) <= MATCH for p in plan)
    assert len({(p["depth"], p["width"], p["resolution"]) for p in plan}) == len(plan)
    assert "arms x 3 seeds" in done.stdout and not list((tmp_path / "study-grid").glob("*/seed0"))
    assert not (tmp_path / "study-grid" / "study.yaml").exists()

    b0 = Path(DEBUG_CONFIG).with_name("b0_cifar.yaml")
    runs = tmp_path / "b0"
    done = effnet(
        capfd,
        "study",
        "family",
        "--phi",
        "1",
        "--dry-run",
        "--config",
        str(b0),
        "--bench-steps=0",
        f"--data.init_args.data_dir={cifar10_module}",
        "--data.init_args.download=false",
        f"--trainer.default_root_dir={runs}",
    )
    assert done.returncode == 0, done.stderr
    (arm,) = read(runs / "study-family" / "plan.csv")
    scale = effnet(capfd, "scale", "--phi", "1", "--format", "csv")
    (row,) = csv.DictReader(scale.stdout.splitlines())
    fit = effnet(
        capfd, "fit", "--config", str(b0), "--model.scaling.variant=null", "--model.scaling.phi=1", "--print_config"
    )
    resolution = sc.ScalingSpec(**yaml.safe_load(fit.stdout)["model"]["scaling"]).resolve().resolution
    assert arm["resolution"] == row["resolution"] == str(resolution) == "256"


def test_a_crash_keeps_its_traceback_and_a_study_where_everything_failed_exits_1(
    cifar10_module: Path, tmp_path: Path, capfd: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import effnet_lightning.assembly.run

    def failing(argv: list[str]) -> int:
        if "phi-5" in " ".join(argv):
            raise RuntimeError("a bug in a callback")
        if "phi-3" in " ".join(argv):
            raise ConfigError("data.init_args.data_dir is empty; point it at the images")
        return 3  # as a non-finite loss ends

    monkeypatch.setattr(effnet_lightning.assembly.run, "main", failing)
    done = effnet(capfd, "study", "family", "--phi", "-5", "-4", "-3", "--seeds=1", *tiny(cifar10_module, tmp_path))
    assert done.returncode == EXIT_CRASH and "every unit failed" in done.stderr
    folder = tmp_path / "study-family"
    log = (folder / "phi-5" / "seed0" / "error.log").read_text()
    assert "Traceback" in log and "RuntimeError: a bug in a callback" in log
    assert "exited with code 3" in (folder / "phi-4" / "seed0" / "error.log").read_text()
    log = (folder / "phi-3" / "seed0" / "error.log").read_text()  # a user error: its one line, no traceback
    assert "exited with code 2" in log and "effnet fit: error: data.init_args.data_dir is empty" in log
    assert "Traceback" not in log
    rows = {r["arm"]: r for r in read(folder / "results.csv")}
    assert rows["phi-5"]["status"] == "failed (seed 0: exit 1)" and rows["phi-4"]["status"] == "failed (seed 0: exit 3)"
    assert rows["phi-3"]["status"] == "failed (seed 0: exit 2)"


def test_the_study_reads_its_folder_and_base_seed_as_fit_would() -> None:
    """trainer.default_root_dir and seed_everything: the last override (`--key value` or `--key=value`), else the
    config's; a seed drawn at random (`true`) counts from 0."""
    from effnet_lightning.study.main import FitSettings

    config = {"trainer": {"default_root_dir": "from_config"}, "seed_everything": 7}
    assert FitSettings.read(config, []) == FitSettings(Path("from_config"), 7)
    given = ["--seed_everything", "3", "--trainer.default_root_dir=a", "--data.x", "1", "--seed_everything=5"]
    assert FitSettings.read(config, [*given, "--seed_everything_x=1"]) == FitSettings(Path("a"), 5)
    assert FitSettings.read({"seed_everything": True}, []) == FitSettings(Path("runs"), 0)
    assert FitSettings.read(config, ["--seed_everything"]) == FitSettings(Path("from_config"), 7)  # fit reports it


def test_a_failure_while_measuring_is_the_arms_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from effnet_lightning.study.evaluation import Trained, measure_arm
    from effnet_lightning.study.plan import family

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("device lost")

    monkeypatch.setattr("effnet_lightning.tools.measure.run", broken)
    (arm,) = family(sc.ScalingSpec(phi=-4.0, resolution=32).resolve(), phis=[0]).arms
    trained = Trained("32-true", False, False, 32, "cpu", 1, True, 10, 0)
    record = measure_arm(tmp_path, arm, trained, bench_steps=1)
    assert record["error"] == "RuntimeError: device lost" and "train_img_s" not in record
    assert "RuntimeError: device lost" in (tmp_path / arm.name / "error.log").read_text()


def test_an_interrupted_unit_resumes_from_its_last_checkpoint(
    cifar10_module: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    """A unit whose fit stopped after epoch 1 (last.ckpt, no result) continues to the study's 2 epochs."""
    args = ["study", "family", "--phi", "0", "--seeds=1", *tiny(cifar10_module, tmp_path), "--trainer.max_epochs=2"]
    unit = tmp_path / "study-family" / "phi0" / "seed0"
    base = sc.ScalingSpec(phi=-4.0, resolution=32).resolve()
    stopped = [
        "fit",
        *tiny(cifar10_module, unit)[:-1],
        "--model.scaling.phi=null",
        "--seed_everything=42",
        f"--model.scaling.depth={base.depth!r}",
        f"--model.scaling.width={base.width!r}",
        "--model.scaling.resolution=32",
    ]
    assert effnet_lightning.cli.main(stopped) == 0
    assert (unit / "version_0" / "checkpoints" / "last.ckpt").is_file()
    done = effnet(capfd, *args)
    assert done.returncode == 0, done.stderr
    assert "--ckpt_path=" in done.stderr
    (row,) = read(tmp_path / "study-family" / "results.csv")
    assert row["status"] == "done" and int(row["epochs"]) == 2
    assert [p.name for p in unit.glob("version_*")] == ["version_0"]


def test_a_unit_whose_fit_never_validated_is_flagged_not_done(
    cifar10_module: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    """Validation on, but the fit ended before one ran (here: every 2nd epoch of 1): no checkpoint was selected,
    so the unit is not evaluated as if it were done (before: `selected_by: last`, listed as done)."""
    args = ["study", "family", "--phi", "0", "--seeds=1", *tiny(cifar10_module, tmp_path), "--bench-steps=0"]
    done = effnet(capfd, *args, "--trainer.check_val_every_n_epoch=2")
    assert done.returncode == EXIT_CRASH and "every unit failed" in done.stderr
    assert "phi0 seed 42: its fit ended without a validation" in done.stderr
    unit = tmp_path / "study-family" / "phi0" / "seed0"
    assert not (unit / "result.json").exists() and "delete " in (unit / "error.log").read_text()
    (row,) = read(tmp_path / "study-family" / "results.csv")
    assert row["status"] == "failed (seed 0: never validated)" and row["n"] == "0"


def test_devices_runs_one_unit_per_gpu_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scheduling of `--devices N` (CPU only here): never two units on one GPU, never more than N at once."""
    import threading
    import time

    from effnet_lightning.study import launch
    from effnet_lightning.study.plan import family

    lock, running, seen = threading.Lock(), set(), []

    def fake_launch(folder: Path, u: launch.Unit, config: str, overrides: list[str], device: int) -> int:
        with lock:
            assert device not in running and len(running) < 2
            running.add(device)
            seen.append((u.arm.name, device))
        time.sleep(0.05)
        with lock:
            running.remove(device)
        return 3 if u.arm.name == "phi-2" else 0

    monkeypatch.setattr(launch, "launch", fake_launch)
    arms = family(sc.official("b0"), phis=[-4, -3, -2, -1, 0]).arms
    units = [launch.Unit(arm, 0, 0) for arm in arms]
    results = dict((u.arm.name, code) for u, code in launch.run_parallel(units, 2, tmp_path, "base.yaml", []))
    assert results == {"phi-4": 0, "phi-3": 0, "phi-2": 3, "phi-1": 0, "phi0": 0}
    assert sorted(name for name, _ in seen) == sorted(results)
    assert {device for _, device in seen} == {0, 1}


def test_devices_unit_runs_as_its_own_process(
    tmp_path: Path, cifar10_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    """`--devices 2` starts each unit as `python -m effnet_lightning.cli fit ...` with CUDA_VISIBLE_DEVICES set;
    the study evaluates and measures it afterwards, here."""
    monkeypatch.setenv("PYTHONPATH", cifar10_env["PYTHONPATH"])  # the stand-ins' checksums, in the child too
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # cifar10_env also lets this process, which evaluates, read them
    runs = tmp_path / "runs"
    done = effnet(
        capfd,
        "study",
        "family",
        "--phi",
        "0",
        "--seeds=1",
        "--devices",
        "2",
        *tiny(tmp_path / "cifar10", runs),
        "--bench-steps=0",
    )
    assert done.returncode == 0, done.stderr
    assert "phi0 seed 42 on the CPU (parallel slot 0; no GPU here)" in done.stderr  # no GPU in the tests
    (row,) = read(runs / "study-family" / "results.csv")
    assert row["status"] == "done" and int(row["epochs"]) == 1 and row["split"] == "test"
    assert "max_epochs=1` reached" in (runs / "study-family" / "phi0" / "seed0" / "fit.log").read_text()


def test_submitit_local_executor_runs_evaluates_and_measures_each_unit(
    tmp_path: Path, cifar10_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    """`--launcher local`: the slurm path (one submitit job per unit) with submitit's LocalExecutor."""
    monkeypatch.setenv("PYTHONPATH", cifar10_env["PYTHONPATH"])
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    runs = tmp_path / "runs"
    done = effnet(
        capfd, "study", "family", "--phi", "0", "--seeds=1", "--launcher", "local", *tiny(tmp_path / "cifar10", runs)
    )
    assert done.returncode == 0, done.stderr
    assert "phi0 seed 42: submitit job" in done.stderr
    (row,) = read(runs / "study-family" / "results.csv")
    assert row["status"] == "done" and row["split"] == "test" and float(row["train_img_s"]) > 0
    assert list((runs / "study-family" / "submitit").glob("*_log.err"))
