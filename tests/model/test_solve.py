"""The budget solver (effnet_lightning/model/solve.py) and `effnet scale --target-macs/--target-params`."""

from __future__ import annotations

import csv
import io

import pytest
from effnet_run import effnet, error_lines

from effnet_lightning.errors import UserError
from effnet_lightning.model import scaling as sc
from effnet_lightning.model.flops import cost as counted
from effnet_lightning.model.solve import (
    DIMENSIONS,
    bracket,
    compound_target,
    matched_budget,
    measure,
    parse_count,
    solve,
)

B0 = sc.ScalingSpec(variant="b0")
TOLERANCE = 0.03  # width and compound solve for the compound phi=1 budget within +-3%
MATCHED = 0.01  # matched_budget: every arm within +-1% of the budget it picks
# Resolution on timm's blocks moves in steps: the last stages see ceil(px / 32) pixels, so 352 -> 353 px adds 10%
# of B0's MACs at once (measured: 0.950G -> 1.048G).
RESOLUTION_STEP = 0.11


def cost(depth: float, width: float, resolution: int, num_classes: int = 1000) -> tuple[int, int]:
    c = counted(depth, width, resolution, num_classes)
    return c.macs, c.params


@pytest.fixture(scope="module")
def b0_budget() -> int:
    return compound_target(B0, phi=1.0)


def test_phi1_budget_is_the_rule_at_256_px(b0_budget: int) -> None:
    """scaling.compound is the one rule: phi = 1 from B0 is depth 1.2, width 1.1, 256 px wherever it is asked."""
    phi1 = sc.ScalingSpec(phi=1.0).resolve()
    assert phi1.resolution == 256
    assert b0_budget == cost(phi1.depth, phi1.width, 256)[0] == 859_853_760


@pytest.mark.parametrize("scale", ["width", "compound"])
def test_each_dimension_meets_the_compound_phi1_budget(scale: str, b0_budget: int) -> None:
    solution = solve(b0_budget, scale, B0)
    assert solution.macs == cost(solution.depth, solution.width, solution.resolution)[0]
    assert abs(solution.macs / b0_budget - 1) <= TOLERANCE
    assert solution.deviation == pytest.approx(solution.macs / b0_budget - 1)
    moved = {"depth": solution.depth != 1.0, "width": solution.width != 1.0, "resolution": solution.resolution != 224}
    if scale != "compound":
        assert [name for name, changed in moved.items() if changed] == [scale]


def test_depth_cannot_meet_it_and_says_how_far(b0_budget: int) -> None:
    """Depth 2.0 -> 2.0001 adds a block to all seven stages at once: nothing between 0.78G and 0.94G exists."""
    below, above = bracket(b0_budget, "depth", B0)
    assert below.depth == pytest.approx(2.0) and below.macs < b0_budget <= above.macs
    assert below.deviation < -0.08 and above.deviation > 0.08
    assert solve(b0_budget, "depth", B0) == below  # the nearer one


def test_matched_budget_lands_every_arm_within_one_percent(b0_budget: int) -> None:
    budget, solutions = matched_budget(b0_budget, DIMENSIONS, B0, tolerance=MATCHED)
    assert [s.scale for s in solutions] == list(DIMENSIONS)
    for s in solutions:
        assert s.target == budget and abs(s.deviation) <= MATCHED, s
        assert s.macs == cost(s.depth, s.width, s.resolution)[0]
    assert abs(budget / b0_budget - 1) < 0.10  # the nearest such budget: 0.785G here, -8.7%


def test_resolution_picks_the_nearest_achievable_side_of_a_stride_step() -> None:
    b0_budget = 993_000_000  # between 352 px (0.950G) and 353 px (1.048G)
    solution = solve(b0_budget, "resolution", B0)
    assert (solution.depth, solution.width) == (1.0, 1.0)
    below = cost(1.0, 1.0, solution.resolution - 1)[0]
    above = cost(1.0, 1.0, solution.resolution + 1)[0]
    neighbours = [m for m in (below, above) if m != solution.macs]
    assert all(abs(solution.macs - b0_budget) <= abs(m - b0_budget) for m in neighbours)
    assert abs(solution.deviation) <= RESOLUTION_STEP / 2


def test_compound_solve_of_its_own_budget_returns_phi_1(b0_budget: int) -> None:
    solution = solve(b0_budget, "compound", B0)
    assert solution.deviation == 0.0
    assert (solution.depth, solution.width, solution.resolution) == (
        pytest.approx(1.2, rel=0.02),
        pytest.approx(1.1, rel=0.02),
        256,
    )


def test_params_target_on_a_tiny_base() -> None:
    base = sc.ScalingSpec(phi=-2.0, resolution=32)
    target = 2 * cost(*_abs(base), 1000)[1]
    solution = solve(target_params=target, scale="width", base=base)
    assert solution.metric == "params"
    assert abs(solution.params / target - 1) <= TOLERANCE
    assert solution.resolution == 32


def _abs(spec: sc.ScalingSpec) -> tuple[float, float, int]:
    s = spec.resolve()
    return s.depth, s.width, s.resolution


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"target_macs": 1e3, "scale": "width"}, "below the smallest model"),
        ({"target_macs": 1e15, "scale": "depth"}, "beyond the memory guard"),
        ({"target_params": 1e7, "scale": "resolution"}, "resolution adds no parameters"),
        ({"target_macs": 1e9, "target_params": 1e7}, "exactly one"),
    ],
)
def test_impossible_targets_say_why(kwargs: dict, words: str) -> None:
    with pytest.raises(UserError, match=words):
        solve(base=B0, **kwargs)


def test_measure_is_the_counter_behind_the_guard() -> None:
    assert measure(1.0, 1.0, 224) == cost(1.0, 1.0, 224) == (385_814_752, 5_288_548)
    with pytest.raises(UserError, match="blocks; the limit is 1,000"):
        measure(1e6, 1.0, 224)


def test_parse_count() -> None:
    assert parse_count("1.8G") == 1.8e9
    assert parse_count("700M") == 7e8
    assert parse_count("5.3e6") == 5.3e6
    with pytest.raises(ValueError, match="1.8G"):
        parse_count("lots")


def test_cli_prints_what_solve_returns(capfd: pytest.CaptureFixture) -> None:
    base = sc.ScalingSpec(phi=-2.0)  # what `effnet scale --phi -2` means: 168 px
    target = compound_target(base)
    done = effnet(
        capfd, "scale", "--phi", "-2", "--target-macs", str(target), "--scale", "width", "compound", "--format", "csv"
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["scale"] for r in rows] == ["width", "compound"]
    for row in rows:
        assert int(row["macs"]) == solve(target, row["scale"], base).macs
        assert abs(int(row["macs"]) / target - 1) <= TOLERANCE


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--target-macs", "1K", "--scale", "width"], "below the smallest model"),
        (["--target-macs", "1e15", "--scale", "depth"], "beyond the memory guard"),
    ],
)
def test_cli_impossible_target_is_one_line_exit_2(capfd: pytest.CaptureFixture, args: list[str], words: str) -> None:
    done = effnet(capfd, "scale", *args)
    assert done.returncode == 2
    assert len(error_lines(done.stderr)) == 1 and words in done.stderr
    assert "Traceback" not in done.stderr
