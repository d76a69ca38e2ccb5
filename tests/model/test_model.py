"""create_model against timm's efficientnet_b0..b7 and Paper Table 2."""

import pytest
import timm
import torch

from effnet_lightning import create_model
from effnet_lightning.model.flops import count_macs, count_params
from effnet_lightning.model.scaling import OFFICIAL_VARIANTS, ScalingSpec

# timm 1.0.31 efficientnet_bN parameter counts at 1000 classes (timm.create_model, counted).
TIMM_PARAMS = dict(
    zip(
        OFFICIAL_VARIANTS,
        [5_288_548, 7_794_184, 9_109_994, 12_233_232, 19_341_616, 30_389_784, 43_040_704, 66_347_960],
        strict=True,
    )
)
# Paper Table 2 "FLOPS", which are multiply-adds, in billions.
PAPER_GMACS = dict(zip(OFFICIAL_VARIANTS, [0.39, 0.70, 1.0, 1.8, 4.2, 9.9, 19, 37], strict=True))


@pytest.mark.parametrize("variant", OFFICIAL_VARIANTS)
def test_preset_is_exactly_timm(variant):
    torch.manual_seed(0)
    ours = create_model(variant, num_classes=10).eval()
    reference = timm.create_model(f"efficientnet_{variant}", num_classes=10).eval()
    ours_sd, ref_sd = ours.state_dict(), reference.state_dict()
    assert list(ours_sd) == list(ref_sd)
    assert all(ours_sd[k].shape == ref_sd[k].shape for k in ref_sd)
    ours.load_state_dict(ref_sd, strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)


@pytest.mark.parametrize("variant", OFFICIAL_VARIANTS)
def test_params_and_macs_match_timm_and_table2(variant):
    with torch.device("meta"):
        model = create_model(variant)
    assert count_params(model) == TIMM_PARAMS[variant]
    gmacs = count_macs(model, model.scaling.resolution) / 1e9
    assert gmacs == pytest.approx(PAPER_GMACS[variant], rel=0.05)


def test_meta_and_real_macs_agree():
    model = create_model(ScalingSpec(phi=-2), num_classes=10)
    with torch.device("meta"):
        meta = create_model(ScalingSpec(phi=-2), num_classes=10)
    assert count_macs(model, 64) == count_macs(meta, 64) > 0


def test_phi_zero_is_b0_and_phi_one_scales_depth_and_width():
    assert [p.shape for p in create_model(ScalingSpec(phi=0)).parameters()] == [
        p.shape for p in create_model("b0").parameters()
    ]
    m = create_model(ScalingSpec(phi=1))
    assert (m.scaling.depth, m.scaling.width) == (pytest.approx(1.2), pytest.approx(1.1))
    assert m.conv_stem.out_channels == 32  # round_channels(32 * 1.1) = 32 (35.2 + 4 -> 32, >= 90%)
    assert m.conv_head.out_channels == 1408  # round_channels(1280 * 1.1) = 1408
    assert sum(len(stage) for stage in m.blocks) == 23  # ceil(1.2 * [1,2,2,3,3,4,1]) = 2+3+3+4+4+5+2


@pytest.mark.parametrize(
    "kwargs, blocks, head, resolution",
    [
        (dict(depth=4.0), 64, 1280, 224),  # 4 * 16 repeats
        (dict(width=2.0), 16, 2560, 224),
        (dict(depth=1.4, width=1.2, resolution=291), 26, 1536, 291),  # ceil(1.4 * r): 2+3+3+5+5+6+2
    ],
)
def test_explicit_scaling(kwargs, blocks, head, resolution):
    m = create_model(ScalingSpec(**kwargs))
    assert sum(len(stage) for stage in m.blocks) == blocks
    assert m.conv_head.out_channels == head
    assert m.scaling.resolution == resolution


def test_options_reach_the_network():
    m = create_model(
        ScalingSpec(phi=-2), num_classes=7, dropout=0.3, drop_path_rate=0.1, bn_momentum=0.01, bn_eps=1e-3, in_chans=1
    )
    assert m.classifier.out_features == 7 and m.conv_stem.in_channels == 1
    assert m.drop_rate == 0.3
    assert (m.bn1.momentum, m.bn1.eps) == (0.01, 1e-3)
    blocks = [b for stage in m.blocks for b in stage]
    rates = [getattr(b.drop_path, "drop_prob", 0.0) for b in blocks]  # timm: block i gets rate * i / n
    assert rates == pytest.approx([0.1 * i / len(blocks) for i in range(len(blocks))])
    assert m(torch.randn(2, 1, 32, 32)).shape == (2, 7)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(scaling=ScalingSpec(variant="b9")), "choose one of b0"),
        (dict(scaling=ScalingSpec(variant="b1", phi=1.0)), "only one of variant, phi"),
        (dict(scaling=ScalingSpec(width=2.0, phi=1.0)), "only one of variant, phi or depth/width"),
        (dict(scaling="b0", num_classes=0), "num_classes"),
        (dict(scaling="b0", dropout=1.5), "dropout must be in"),
        (dict(scaling=ScalingSpec(phi=0, resolution=-3)), "positive number of pixels"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        create_model(**kwargs)
