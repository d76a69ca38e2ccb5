"""`effnet benchmark` end to end, in process, on a tiny model (phi -2, 32 px)."""

import csv
import io
import math

import pytest
import torch

from effnet_lightning.cli import main
from effnet_lightning.errors import outcome
from effnet_lightning.model import scaling as sc
from effnet_lightning.model.flops import count_macs
from effnet_lightning.model.memory import size_estimate
from effnet_lightning.model.network import create_model
from effnet_lightning.tools import benchmark, measure

SETTING = measure.Setting(batch_size=4, num_classes=10)
original_run = benchmark.run
TINY = ["--phi", "-2", "--resolution", "32", "--batch-size", "4", "--num-classes", "10", "--warmup", "1"]


def benchmark_csv(capsys, *extra: str) -> dict[str, str]:
    assert main(["benchmark", *TINY, "--format", "csv", *extra]) == 0
    (row,) = csv.DictReader(io.StringIO(capsys.readouterr().out))
    return row


def test_csv_numbers_are_positive_and_consistent(capsys):
    row = benchmark_csv(capsys, "--steps", "3")
    train, infer = float(row["train_img_s"]), float(row["infer_img_s"])
    assert 0 < float(row["train_min"]) <= train <= float(row["train_max"])
    assert 0 < float(row["infer_min"]) <= infer <= float(row["infer_max"])
    assert infer > train  # a forward alone is cheaper than forward + backward + optimizer + EMA
    scaling = sc.ScalingSpec(phi=-2, resolution=32).resolve()
    with torch.device("meta"):
        macs = count_macs(create_model(scaling, num_classes=10), 32)
    assert int(row["macs"]) == macs
    assert float(row["train_tflops"]) == pytest.approx(6 * macs * train / 1e12, rel=1e-6)
    # CPU peak memory is counted: at least the 20 bytes per parameter of fp32 training state, plus activations
    params = size_estimate(scaling, num_classes=10).params
    assert row["memory_source"] == "counted"
    assert params * 20 < int(row["peak_memory"]) < params * 20 + 4 * 10 * 10**6
    assert (row["device"], row["precision"], row["resolution"], row["batch_size"]) == ("cpu", "32-true", "32", "4")
    assert row["overhead"] == ""  # only with --vs-bare


def test_checkpointing_lowers_counted_peak_memory(capsys):
    plain = int(benchmark_csv(capsys, "--steps", "1")["peak_memory"])
    checkpointed = benchmark_csv(capsys, "--steps", "1", "--grad-checkpointing")
    assert checkpointed["grad_checkpointing"] == "True"
    assert int(checkpointed["peak_memory"]) < plain


def test_text_table_with_vs_bare(capsys):
    assert main(["benchmark", *TINY, "--steps", "2", "--vs-bare", "--source-size", "16"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["name", "res", "batch", "precision"]
    row = lines[2].split()
    assert row[:4] == ["phi-2", "32", "4", "32-true"] and float(row[4]) > 0
    vs = lines[3]
    assert vs.startswith("  vs bare: framework ")
    ratio = float(vs.rsplit("= ", 1)[1].rstrip("x"))
    assert math.isfinite(ratio) and ratio > 0  # its size is a measurement (BENCHMARKS.md), not a test: 2 timed steps
    assert "peak memory counted" in lines[-1] and "device cpu" in lines[-1]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--phi", "100"], "1.33e+09 blocks; the limit is 1,000"),
        (["--batch-size", "0"], "expected a whole number >= 1"),
        (["--precision", "fp8"], "choose auto, 32-true, bf16-mixed or 16-mixed"),
        (["--device", "tpu"], "choose auto, cpu, cuda or cuda:N"),
        (["--device", "cpu", "--precision", "16-mixed"], "16-mixed needs a CUDA device"),
    ],
)
def test_user_errors_are_one_line_exit_2(capsys, args, message):
    assert main(["benchmark", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_is_refused(capsys):
    assert main(["benchmark", "--device", "cuda"]) == 2 and "no CUDA device is visible here" in capsys.readouterr().err


def test_out_of_memory_is_one_line_exit_2(monkeypatch, capsys):
    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr("effnet_lightning.tools.benchmark.run", out_of_memory)
    plenty = lambda device: 10**15  # noqa: E731  the estimate lets it start (an estimate can be low)
    assert outcome("benchmark", lambda: benchmark.main(["--batch-size", "4096", "--device", "cpu"], plenty)) == 2
    err = capsys.readouterr().err
    assert "out of device memory at batch 4096; lower --batch-size or add --grad-checkpointing" in err
    assert len(err.strip().splitlines()) == 1


def test_a_configuration_that_does_not_fit_is_skipped_before_it_runs(capsys, monkeypatch):
    """memory.py's estimate against the available memory (injected): phi -2 needs more than phi -4 at 32 px."""
    estimates = {
        phi: measure.memory_shortfall(sc.ScalingSpec(phi=phi, resolution=32), SETTING, False, lambda device: 0)
        for phi in (-4, -2)
    }
    needed = {phi: float(reason.split("~")[1].split(" MB")[0]) * 1e6 for phi, reason in estimates.items()}
    assert needed[-4] < needed[-2]
    available = int((needed[-4] + needed[-2]) / 2)
    runs = []
    monkeypatch.setattr(benchmark, "run", lambda spec, *args: runs.append(spec) or original_run(spec, *args))
    args = ["--phi", "-2", "-4", "--resolution", "32", "--batch-size", "4", "--num-classes", "10", "--warmup", "0"]
    benchmark.main([*args, "--steps", "1", "--format", "csv"], lambda device: available)
    skipped, measured = csv.DictReader(io.StringIO(capsys.readouterr().out))
    assert skipped["name"] == "phi-2" and skipped["train_img_s"] == "" and skipped["peak_memory"] == ""
    assert skipped["skipped"] == f"needs ~{needed[-2] / 1e6:.3g} MB, {available / 1e6:.3g} MB available"
    assert measured["name"] == "phi-4" and float(measured["train_img_s"]) > 0 and measured["skipped"] == ""
    assert [spec.phi for spec in runs] == [-4]  # phi -2 was never started


def test_the_only_configuration_not_fitting_is_one_line_exit_2(capsys):
    assert outcome("benchmark", lambda: benchmark.main([*TINY, "--steps", "1"], lambda device: 10**6)) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert "phi-2 at 32 px, batch 4 needs ~" in captured.err and ", 1 MB available" in captured.err
    assert captured.err.rstrip().endswith("lower --batch-size, add --grad-checkpointing or choose a smaller model")
