"""`effnet study`: arms on the CIFAR-10 stand-ins at 32 px, one short epoch each (tests/cifar_standin.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib.image
import pytest
import yaml
from effnet_run import DEBUG_CONFIG, effnet, error_lines

import effnet_lightning.cli
import effnet_lightning.train.run
from effnet_lightning.model import scaling as sc
from effnet_lightning.model.solve import compound_target
from effnet_lightning.tools.scale import measure

TOLERANCE = 0.03  # the issue: arms of a table7 study match MACs within +-3%
DEBUG_BASE = sc.ScalingSpec(phi=-4.0, resolution=32)  # configs/cifar_debug.yaml's model.scaling


def tiny(data_dir: Path, runs: Path, *extra: str) -> list[str]:
    """configs/cifar_debug.yaml on the stand-ins: 2 steps of 32 images, 1 validation batch, 1 epoch, no sanity
    check (a study test checks what an arm records, not what it learns: each step or batch more costs every arm)."""
    return [
        "--config", str(DEBUG_CONFIG), f"--data.init_args.data_dir={data_dir}", "--data.init_args.download=false",
        "--data.init_args.num_workers=0", "--data.init_args.val_size=64", "--data.init_args.batch_size=32",
        f"--trainer.default_root_dir={runs}", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1",
        "--trainer.num_sanity_val_steps=0", "--trainer.max_epochs=1", "--trainer.enable_progress_bar=false",
        "--bench-steps=1", *extra,
    ]  # fmt: skip


def read_rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "results.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def table7(cifar10_module: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    runs = tmp_path_factory.mktemp("runs")
    args = ["study", "table7", *tiny(cifar10_module, runs)]
    assert effnet_lightning.cli.main(args) == 0
    return runs / "study-table7", args


def test_table7_arms_cost_the_same_macs_as_effnet_scale_counts(table7: tuple[Path, list[str]]) -> None:
    folder, _ = table7
    rows = read_rows(folder)
    assert [r["arm"] for r in rows] == ["baseline", "depth", "width", "resolution", "compound"]
    target = compound_target(DEBUG_BASE)
    for row in rows:
        assert row["status"] == "done"
        counted = measure(sc.Scaling("arm", float(row["depth"]), float(row["width"]), int(row["resolution"]), 0.2))
        assert (int(row["macs"]), int(row["params"])) == (counted.macs, counted.params)
        if row["arm"] != "baseline":
            assert abs(int(row["macs"]) / target - 1) <= TOLERANCE, row
        assert 0.0 <= float(row["ema_acc1"]) <= 1.0 and float(row["train_img_s"]) > 0
        assert int(row["peak_memory"]) > 0 and int(row["epochs"]) == 1 and float(row["wall_s"]) > 0
    single = {r["arm"]: r for r in rows}
    assert float(single["depth"]["width"]) == float(single["baseline"]["width"])
    assert int(single["width"]["resolution"]) == int(single["baseline"]["resolution"])
    assert float(single["resolution"]["depth"]) == float(single["baseline"]["depth"])
    assert yaml.safe_load((folder / "study.yaml").read_text())["asked"]["kind"] == "table7"
    assert "| compound | done |" in (folder / "results.md").read_text()


def test_table7_writes_readable_plots(table7: tuple[Path, list[str]]) -> None:
    folder, _ = table7
    for name in ("accuracy_vs_macs", "accuracy_vs_params", "accuracy_vs_train_img_s", "marginal_gain"):
        image = matplotlib.image.imread(folder / f"{name}.png")
        assert image.shape[0] > 100 and image.shape[1] > 100
    assert list((folder / "tensorboard").glob("events.out.tfevents.*"))
    assert (folder / "most_cost_effective.txt").read_text().split(":")[0] in {r["arm"] for r in read_rows(folder)}


def test_rerun_skips_finished_arms(table7: tuple[Path, list[str]], capfd: pytest.CaptureFixture) -> None:
    folder, args = table7
    before = read_rows(folder)
    done = effnet(capfd, *args)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("finished before, skipped") == 5
    assert sorted(p.name for p in (folder / "depth").glob("version_*")) == ["version_0"]
    assert read_rows(folder) == before


def test_a_different_command_on_the_folder_is_refused(table7: tuple[Path, list[str]], capfd) -> None:
    folder, args = table7
    done = effnet(capfd, *args, "--trainer.max_epochs=3")
    assert done.returncode == 2
    assert error_lines(done.stderr) == [error_lines(done.stderr)[0]] and "overrides" in done.stderr
    assert "different study command" in done.stderr


def test_interrupted_arm_resumes_from_its_last_checkpoint(
    cifar10_module: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    """An arm whose run stopped after epoch 1 (last.ckpt, no result) continues to the study's 2 epochs."""
    args = ["study", "family", "--phi", "0", *tiny(cifar10_module, tmp_path), "--trainer.max_epochs=2"]
    arm_root = tmp_path / "study-family" / "phi0"
    base = sc.ScalingSpec(phi=-4.0, resolution=32).resolve()
    stopped = ["fit", *tiny(cifar10_module, arm_root)[:-1], "--model.scaling.phi=null",
               f"--model.scaling.depth={base.depth!r}", f"--model.scaling.width={base.width!r}",
               "--model.scaling.resolution=32"]  # fmt: skip
    assert effnet_lightning.cli.main(stopped) == 0
    assert (arm_root / "version_0" / "checkpoints" / "last.ckpt").is_file()
    done = effnet(capfd, *args)
    assert done.returncode == 0, done.stderr
    assert "phi0: resuming from" in done.stderr
    (row,) = read_rows(tmp_path / "study-family")
    assert row["status"] == "done" and int(row["epochs"]) == 2
    assert [p.name for p in arm_root.glob("version_*")] == ["version_0"]


def test_a_failed_arm_is_marked_and_the_others_run(
    cifar10_module: Path, tmp_path: Path, capfd: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = effnet_lightning.train.run.main

    def failing_first_arm(argv: list[str]) -> int:
        if argv[0] == "fit" and "study-family/phi-5" in argv[-1]:
            return 3  # as a non-finite loss ends
        return real(argv)

    monkeypatch.setattr(effnet_lightning.train.run, "main", failing_first_arm)
    done = effnet(capfd, "study", "family", "--phi", "-5", "-4", *tiny(cifar10_module, tmp_path))
    assert done.returncode == 0, done.stderr
    rows = {r["arm"]: r for r in read_rows(tmp_path / "study-family")}
    assert rows["phi-5"]["status"] == "failed (exit 3)" and rows["phi-5"]["acc1"] == ""
    assert rows["phi-4"]["status"] == "done" and rows["phi-4"]["acc1"] != ""


def test_grid_ranks_its_points(cifar10_module: Path, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    done = effnet(capfd, "study", "grid", "--grid", "1.0", "1.41", *tiny(cifar10_module, tmp_path))
    assert done.returncode == 0, done.stderr
    rows = read_rows(tmp_path / "study-grid")
    assert {r["arm"] for r in rows} == {"a1-b1-g1.41", "a1-b1.41-g1"}
    for r in rows:
        assert abs(float(r["alpha"]) * float(r["beta"]) ** 2 * float(r["gamma"]) ** 2 - 2) <= 0.1
    accuracies = [float(r["ema_acc1"]) for r in rows]
    assert accuracies == sorted(accuracies, reverse=True)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["study", "tabel7"], "choose one of table7, family, grid"),
        (["study", "grid", "--grid", "1.0", "1.1"], "no grid point"),
        (["study", "family"], "--variants b0 ... bk or --phi"),
        (["study", "family", "--phi", "0", "--model.scaling.phi=1"], "leave them out"),
        (["study", "table7", "--target-macs", "1K"], "below the smallest model"),
    ],
)
def test_user_errors_are_one_line_exit_2(
    args: list[str], words: str, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    done = effnet(capfd, *args, "--config", str(DEBUG_CONFIG), f"--trainer.default_root_dir={tmp_path}")
    assert done.returncode == 2
    assert len(error_lines(done.stderr)) == 1 and words in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_devices_runs_one_arm_per_gpu_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scheduling of `--devices N` (CPU only here): never two arms on one GPU, never more than N at once."""
    import threading
    import time

    from effnet_lightning.study.main import main as study

    lock, running, seen = threading.Lock(), set(), []

    def fake_launch(folder: Path, arm: study.Arm, config: str, overrides: list[str], device: int) -> int:
        with lock:
            assert device not in running and len(running) < 2
            running.add(device)
            seen.append((arm.name, device))
        time.sleep(0.05)
        with lock:
            running.remove(device)
        return 3 if arm.name == "a2" else 0

    monkeypatch.setattr(study, "launch", fake_launch)
    arms = [study.Arm(f"a{i}", 1.0, 1.0, 32) for i in range(5)]
    results = study.run_parallel(arms, 2, tmp_path, "base.yaml", [])
    assert [(arm.name, code) for arm, code in results] == [("a0", 0), ("a1", 0), ("a2", 3), ("a3", 0), ("a4", 0)]
    assert sorted(name for name, _ in seen) == [f"a{i}" for i in range(5)]
    assert {device for _, device in seen} == {0, 1}


def test_devices_arm_runs_as_its_own_process(
    tmp_path: Path, cifar10_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    """`--devices 2` starts each arm as `python -m effnet_lightning.cli fit ...` with CUDA_VISIBLE_DEVICES set."""
    monkeypatch.setenv("PYTHONPATH", cifar10_env["PYTHONPATH"])  # the stand-ins' checksums, in the child too
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    runs = tmp_path / "runs"
    done = effnet(capfd, "study", "family", "--phi", "0", "--devices", "2", *tiny(tmp_path / "cifar10", runs))
    assert done.returncode == 0, done.stderr
    assert "phi0 on GPU 0" in done.stderr
    (row,) = read_rows(runs / "study-family")
    assert row["status"] == "done" and int(row["epochs"]) == 1
    assert "max_epochs=1` reached" in (runs / "study-family" / "phi0" / "fit.log").read_text()


def test_submitit_local_executor_runs_and_measures_each_arm(
    tmp_path: Path, cifar10_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    """`--launcher local`: the slurm path (one submitit job per arm) with submitit's LocalExecutor."""
    monkeypatch.setenv("PYTHONPATH", cifar10_env["PYTHONPATH"])
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    runs = tmp_path / "runs"
    done = effnet(capfd, "study", "family", "--phi", "0", "--launcher", "local", *tiny(tmp_path / "cifar10", runs))
    assert done.returncode == 0, done.stderr
    assert "phi0: submitit job" in done.stderr
    (row,) = read_rows(runs / "study-family")
    assert row["status"] == "done" and int(row["epochs"]) == 1 and float(row["train_img_s"]) > 0
    assert list((runs / "study-family" / "submitit").glob("*_log.err"))


def _row(arm: str, macs: int, acc: float | None, img_s: float = 100.0) -> object:
    from effnet_lightning.study.main import Row

    return Row(arm, "done", 1.0, 1.0, 32, macs, macs, train_img_s=img_s, ema_acc1=acc)


def test_pareto_front_and_most_cost_effective_arm() -> None:
    from effnet_lightning.study.plots import marginal_gains, most_cost_effective, pareto

    # (cost, accuracy): b dominates c (cheaper and better); a, b and d trade cost for accuracy
    assert pareto([(1.0, 0.5), (2.0, 0.7), (3.0, 0.6), (4.0, 0.8)]) == [0, 1, 3]
    assert pareto([(100.0, 0.5), (50.0, 0.7)], cheaper_is_lower=False) == [0, 1]  # img/s: higher is cheaper
    rows = [_row("small", 100, 0.50), _row("mid", 200, 0.60), _row("big", 800, 0.66), _row("broken", 400, None)]
    # gain over the cheapest per doubling of MACs: mid 0.10 / 1 = 0.10, big 0.16 / 3 = 0.053
    assert most_cost_effective(rows).arm == "mid"
    gains = dict(marginal_gains(rows))
    assert gains == pytest.approx({"mid": 0.10, "big": 0.03})  # big: 0.06 over 2 doublings from mid
    assert most_cost_effective([_row("a", 100, 0.5), _row("b", 200, 0.4)]).arm == "a"  # nothing pays: cheapest
