"""Scaling arithmetic against hand-worked values (paper §3.3, the official table)."""

import math

import pytest

from effnet_lightning.errors import UserError
from effnet_lightning.model import scaling as sc


def test_phi_zero_is_b0_multipliers():
    s = sc.compound(0)
    assert (s.depth, s.width, s.resolution, s.dropout) == (1.0, 1.0, 224, 0.2)


def test_phi_one_uses_alpha_beta_gamma():
    s = sc.compound(1)
    assert s.depth == pytest.approx(1.2) and s.width == pytest.approx(1.1)
    assert s.resolution == 256  # 224 * 1.15 = 257.6 -> nearest multiple of 4


@pytest.mark.parametrize(
    "phi, depth, width, resolution",
    [
        (-2, 1.2**-2, 1.1**-2, 168),  # 224 / 1.3225 = 169.4 -> 168
        (0.5, 1.2**0.5, 1.1**0.5, 240),  # 224 * 1.0724 = 240.2 -> 240
        (2.5, 1.2**2.5, 1.1**2.5, 316),  # 224 * 1.4183 = 317.7 -> 316
        (7, 3.5832, 1.9487, 596),  # 224 * 2.6600 = 595.8 -> 596; B7 is 3.1 / 2.0 / 600 (hand-set)
    ],
)
def test_compound_rule_hand_values(phi, depth, width, resolution):
    s = sc.compound(phi)
    assert s.depth == pytest.approx(depth, rel=1e-4)
    assert s.width == pytest.approx(width, rel=1e-4)
    assert s.resolution == resolution
    assert s.phi == phi


@pytest.mark.parametrize(
    "pixels, expected", [(257.6, 256), (258.0, 260), (169.4, 168), (2.0, 4), (1.0, 4), (0.4, 4), (600, 600)]
)
def test_resolution_rounds_to_nearest_multiple_of_four(pixels, expected):
    assert sc.round_resolution(pixels) == expected


def test_official_resolutions_are_on_the_rounding_grid():
    for v in sc.OFFICIAL_VARIANTS:
        r = sc.official(v).resolution
        assert sc.round_resolution(r) == r


def test_custom_coefficients_and_base():
    s = sc.compound(2, alpha=1.5, beta=1.0, gamma=1.0, base_resolution=32)
    assert (s.depth, s.width, s.resolution) == (pytest.approx(2.25), 1.0, 32)


def test_flops_growth_is_about_two():
    assert sc.Coefficients().flops_growth == pytest.approx(1.2 * 1.1**2 * 1.15**2)
    assert sc.Coefficients().flops_growth == pytest.approx(1.92, abs=0.01)


def test_official_table_is_not_the_rule():
    b7 = sc.official("b7")
    assert (b7.width, b7.depth, b7.resolution, b7.dropout) == (2.0, 3.1, 600, 0.5)
    assert sc.compound(7).depth == pytest.approx(3.583, abs=1e-3)


@pytest.mark.parametrize("name", ["b3", "B3", "efficientnet_b3", "efficientnet-b3"])
def test_official_accepts_common_spellings(name):
    assert sc.official(name) == sc.Scaling("b3", depth=1.4, width=1.2, resolution=300, dropout=0.3, phi=3.0)


def test_official_variant_is_found_by_depth_and_width_at_any_resolution():
    """What `effnet export` names `efficientnet_bN`: a network with that variant's multipliers."""
    assert [sc.official_variant(sc.official(v)) for v in sc.OFFICIAL_VARIANTS] == list(sc.OFFICIAL_VARIANTS)
    assert sc.official_variant(sc.ScalingSpec(variant="b3", resolution=32).resolve()) == "b3"
    assert sc.official_variant(sc.ScalingSpec(depth=1.4 + 1e-9, width=1.2).resolve()) == "b3"  # a YAML round trip
    assert sc.official_variant(sc.compound(1)) == "b2"  # depth 1.2, width 1.1: B2 is the rule at phi 1
    assert sc.official_variant(sc.compound(2)) is None  # depth 1.44, width 1.21: no released model


def test_single_dimension_and_table7():
    assert sc.explicit(depth=4.0) == sc.Scaling("d4-w1-r1", 4.0, 1.0, 224, 0.2)
    assert sc.explicit(width=2.0).width == 2.0
    assert sc.explicit(resolution=2.0).resolution == 448
    assert sc.TABLE7["compound"].resolution == 292  # 224 * 1.3 = 291.2 -> 292


def test_dropout_interpolates_and_clamps():
    assert sc.compound(3.5).dropout == pytest.approx(0.35)
    assert sc.compound(-3).dropout == 0.2 and sc.compound(9).dropout == 0.5


def test_results_are_frozen():
    with pytest.raises(AttributeError):
        sc.compound(1).depth = 2.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: sc.official("b9"), "choose one of b0, b1"),
        (lambda: sc.compound(math.nan), "finite"),
        (lambda: sc.compound(1, alpha=0.9), "alpha must be"),
        (lambda: sc.explicit(width=-1), "width multiplier must be a positive"),
        (lambda: sc.round_resolution(0), "positive"),
    ],
)
def test_impossible_numbers_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("spec", [sc.ScalingSpec(depth=0), sc.ScalingSpec(width=0), sc.ScalingSpec(depth=0, width=2)])
def test_a_zero_multiplier_is_a_user_error_not_one(spec):
    """`depth: 0` used to read as "left out" (1.0): it builds nothing, so it is refused in one line."""
    with pytest.raises(UserError, match="multiplier must be a positive number, got 0"):
        spec.resolve()


def test_compound_from_a_base_scales_its_multipliers():
    s = sc.compound(1, base_resolution=32, base_depth=0.5, base_width=0.7)
    assert (s.depth, s.width, s.resolution) == (pytest.approx(0.6), pytest.approx(0.77), 36)  # 36.8 -> 36
    assert sc.compound(1) == sc.ScalingSpec(phi=1).resolve()
