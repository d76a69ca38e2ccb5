"""`effnet scale`, in process (`cli.main`)."""

import csv
import io

import pytest
from effnet_run import Done, effnet


@pytest.fixture
def run(capfd: pytest.CaptureFixture):
    def run(*args: str) -> Done:
        return effnet(capfd, *args)

    return run


def test_default_table_lists_b0_to_b7(run):
    out = run("scale")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == [
        "name",
        "phi",
        "depth",
        "width",
        "res",
        "params",
        "MACs",
        "state",
        "act/img",
        "ckpt/img",
    ]
    rows = {line.split()[0]: line.split() for line in lines[2:10]}
    assert list(rows) == [f"b{i}" for i in range(8)]
    assert rows["b0"][4:] == ["224", "5.29M", "386M", "106MB", "88.2MB", "8.25MB"]
    assert rows["b7"][2:] == ["3.100", "2.000", "600", "66.3M", "37.7G", "1.33GB", "3.85GB", "203MB"]
    assert "x1.920 per unit of phi" in lines[-2]
    assert "ckpt/img = the same with gradient checkpointing" in lines[-1]


def test_csv_for_phi_values(run):
    out = run("scale", "--phi", "0", "0.5", "1", "2.5", "--format", "csv")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert list(rows[0]) == [
        "name",
        "phi",
        "depth",
        "width",
        "resolution",
        "params",
        "macs",
        "state_bytes",
        "activation_bytes_per_image",
        "checkpointed_activation_bytes_per_image",
    ]
    assert int(rows[0]["state_bytes"]) == 5288548 * 20
    assert int(rows[0]["activation_bytes_per_image"]) > 4 * int(rows[0]["checkpointed_activation_bytes_per_image"])
    assert [float(r["phi"]) for r in rows] == [0, 0.5, 1, 2.5]
    assert rows[0]["params"] == "5288548" and int(rows[0]["macs"]) == 385_814_752
    assert float(rows[2]["depth"]) == pytest.approx(1.2) and rows[2]["resolution"] == "256"


def test_explicit_and_custom_coefficients(run):
    out = run("scale", "--depth", "1.4", "--width", "1.2", "--resolution-multiplier", "1.3", "--format", "csv")
    (row,) = csv.DictReader(io.StringIO(out.stdout))
    assert (row["depth"], row["width"], row["resolution"]) == ("1.4", "1.2", "292")
    out = run("scale", "--phi", "1", "--alpha", "2", "--base-resolution", "32", "--format", "csv")
    (row,) = csv.DictReader(io.StringIO(out.stdout))
    assert (row["depth"], row["resolution"]) == ("2.0", "36")  # 32 * 1.15 = 36.8 -> 36


def test_resolution_is_pixels_for_every_model(run):
    """`--resolution` is the input side in px, as in `effnet benchmark`; the multiplier has its own name."""
    out = run("scale", "--variants", "b0", "--phi", "1", "--resolution", "64", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [(r["name"], r["resolution"]) for r in rows] == [("b0", "64"), ("phi1", "64")]
    assert int(rows[0]["macs"]) < 385_814_752 / 10  # B0 at 64 px: about (64 / 224)^2 of its 224 px MACs


@pytest.mark.parametrize("value", ["1.3", "2", "0.5", "nan"])
def test_a_multiplier_given_as_resolution_names_the_new_option(run, value):
    out = run("scale", "--depth", "1.4", "--resolution", value)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert f"--resolution is the input side in whole pixels (at least 8), got {value}" in out.stderr
    assert out.stderr.rstrip().endswith(f"use --resolution-multiplier {value}")


@pytest.mark.parametrize(
    "args, message",
    [
        (["scale", "--phi", "abc"], "expected a real number"),
        (["scale", "--width", "-1"], "expected a positive multiplier"),
        (["scale", "--variants", "b9"], "choose one of b0, b1, b2, b3, b4, b5, b6, b7"),
        (["scale", "--alpha", "0.5", "--phi", "1"], "alpha must be"),
        (["nonsense"], "unknown command"),
    ],
)
def test_errors_are_one_clear_line_exit_2(run, args, message):
    out = run(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--phi", "100"], "phi100 (depth x8.28e+07) would have 1.33e+09 blocks; the limit is 1,000"),
        (["--depth", "1e6"], "would have 1.6e+07 blocks; the limit is 1,000"),
        (["--phi", "1e308"], "phi=1e+308 scales depth, width and resolution beyond any number a float holds"),
        (["--width", "1e308"], "parameters, 1e+603 B of weights"),
    ],
)
def test_absurd_sizes_are_refused_in_one_line_before_building(monkeypatch, capsys, args, message):
    """In process, with the network builder replaced by a failure: the refusal comes from arithmetic alone
    (before this guard `--phi 100` hung in timm's builder, `--depth 1e6` raised MemoryError)."""
    from effnet_lightning.cli import main

    def refuse(*args, **kwargs):
        raise AssertionError("a network was built")

    monkeypatch.setattr("effnet_lightning.model.network.EfficientNet", refuse)
    assert main(["scale", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
