"""plan.py: every arm at its counted cost, before anything trains (arithmetic only: milliseconds)."""

from __future__ import annotations

import pytest

from effnet_lightning.model import scaling as sc
from effnet_lightning.model.flops import cost, stem_side
from effnet_lightning.model.network import architecture
from effnet_lightning.model.solve import compound_target
from effnet_lightning.study import plan as planning

DEBUG_BASE = sc.ScalingSpec(phi=-4.0, resolution=32).resolve()  # configs/cifar_debug.yaml's model.scaling
B0 = sc.official("b0")


def test_table7_arms_land_within_one_percent_of_one_budget() -> None:
    plan = planning.table7(DEBUG_BASE, num_classes=10)
    assert [a.name for a in plan.arms] == ["baseline", "depth", "width", "resolution", "compound"]
    (budget,) = plan.budgets
    asked = compound_target(sc.ScalingSpec(depth=DEBUG_BASE.depth, width=DEBUG_BASE.width, resolution=32), 1.0, 10)
    assert budget.asked == asked
    for arm in plan.arms[1:]:
        assert arm.target_macs == budget.matched and abs(arm.macs_deviation) <= planning.MATCH_TOLERANCE, arm
        assert arm.macs == cost(arm.depth, arm.width, arm.resolution, 10).macs
    single = {a.name: a for a in plan.arms}
    assert (single["depth"].width, single["depth"].resolution) == (DEBUG_BASE.width, 32)
    assert (single["width"].depth, single["width"].resolution) == (DEBUG_BASE.depth, 32)
    assert (single["resolution"].depth, single["resolution"].width) == (DEBUG_BASE.depth, DEBUG_BASE.width)
    assert plan.notes and "nearest budget at which" in plan.notes[0]  # the budget moved, and it says so


def test_table7_at_several_budgets_names_each_arm_by_its_budget() -> None:
    plan = planning.table7(B0, phis=[0.5, 1.0])
    assert [b.label for b in plan.budgets] == ["phi0.5", "phi1"]
    methods = ("depth", "width", "resolution", "compound")
    assert {a.name for a in plan.arms} == {"baseline"} | {f"{b}-{m}" for b in ("phi0.5", "phi1") for m in methods}
    assert all(abs(a.macs_deviation) <= planning.MATCH_TOLERANCE for a in plan.arms if a.target_macs)


def test_grid_points_cost_twice_the_base_and_build_different_networks() -> None:
    plan = planning.grid(DEBUG_BASE, num_classes=1000)
    target = 2 * cost(DEBUG_BASE.depth, DEBUG_BASE.width, 32).macs
    networks = set()
    for arm in plan.arms:
        assert arm.target_macs == target and abs(arm.macs_deviation) <= planning.MATCH_TOLERANCE, arm
        networks.add((architecture(arm.depth, arm.width), arm.resolution))
    assert len(networks) == len(plan.arms)  # points that build the same network run once
    merged = sum(len(a.same_as) for a in plan.arms)
    assert merged > 0 and any("run once" in note for note in plan.notes)


def test_phi_one_from_b0_is_the_same_network_as_everywhere_else() -> None:
    (arm,) = planning.family(B0, phis=[1.0]).arms
    rule = sc.ScalingSpec(phi=1.0).resolve()
    assert (
        (arm.depth, arm.width, arm.resolution)
        == (rule.depth, rule.width, rule.resolution)
        == (pytest.approx(1.2), pytest.approx(1.1), 256)
    )


def test_variants_scale_a_small_base_in_proportion() -> None:
    plan = planning.family(DEBUG_BASE, variants=["b0", "b2"])
    assert [(a.name, a.resolution) for a in plan.arms] == [("b0", 32), ("b2", 36)]  # 32 * 260 / 224 = 37.1 -> 36
    assert plan.arms[1].depth == pytest.approx(DEBUG_BASE.depth * 1.2)


def test_grid_points_on_the_same_feature_maps_run_once_and_a_collapsed_grid_says_so() -> None:
    """35 and 36 px give one stem output side (18), hence the same maps everywhere after: one network."""
    assert stem_side(35) == stem_side(36) == 18 != stem_side(37)
    plan = planning.grid(DEBUG_BASE, num_classes=1000)
    keys = [(architecture(a.depth, a.width), stem_side(a.resolution)) for a in plan.arms]
    assert len(set(keys)) == len(keys)
    assert any("px" in name for arm in plan.arms for name in arm.same_as)  # merged across resolutions
    (collapsed,) = [note for note in plan.notes if "cannot tell" in note]
    assert f"the 75 points build only {len(plan.arms)} distinct networks" in collapsed
    b0_grid = planning.grid(B0, num_classes=1000)  # at B0 the grid's steps change the network
    assert not any("cannot tell" in note for note in b0_grid.notes)
