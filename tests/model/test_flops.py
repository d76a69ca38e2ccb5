"""flops.py's arithmetic MAC/param counter against torch's FlopCounterMode (halved) and timm's decoder."""

from __future__ import annotations

import random

import pytest
import torch
from timm.models.efficientnet import decode_arch_def

from effnet_lightning.model import scaling as sc
from effnet_lightning.model.flops import cost, count_macs, count_params
from effnet_lightning.model.network import B0_ARCH, architecture, create_model

# B0-B7 and six random scalings (depth 0.1-3, width 0.1-3, 8-400 px, odd sides too); benchmarks/mac_counter.py
# compares 100 more (BENCHMARKS.md). FlopCounterMode on the meta device costs 0.1-0.4 s per model here.
RNG = random.Random(0)
SCALINGS = [sc.official(v) for v in sc.OFFICIAL_VARIANTS] + [
    sc.Scaling(f"random{i}", RNG.uniform(0.1, 3.0), RNG.uniform(0.1, 3.0), RNG.randint(8, 400), 0.2) for i in range(6)
]


@pytest.mark.parametrize("scaling", SCALINGS, ids=lambda s: f"{s.name}-{s.resolution}px")
def test_arithmetic_equals_flop_counter_mode(scaling: sc.Scaling) -> None:
    with torch.device("meta"):
        model = create_model(scaling, num_classes=10)
    counted = cost(scaling.depth, scaling.width, scaling.resolution, num_classes=10)
    assert counted.macs == count_macs(model, scaling.resolution)
    assert counted.params == count_params(model)


@pytest.mark.parametrize("depth", [0.001, 0.35, 1.0, 1.05, 1.2, 2.0, 2.0001, 3.1, 7.3])
def test_stage_repeats_are_timms(depth: float) -> None:
    assert [s.repeats for s in architecture(depth, 1.0).stages] == [len(s) for s in decode_arch_def(B0_ARCH, depth)]


def test_activations_count_every_conv_output() -> None:
    """pycls's activations: the output elements of every conv and linear layer, counted here with hooks."""
    model = create_model(sc.ScalingSpec(phi=-2), num_classes=10).eval()
    outputs: list[int] = []
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            module.register_forward_hook(lambda m, i, o: outputs.append(o.numel()))
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 64))
    s = model.scaling
    assert cost(s.depth, s.width, 64, num_classes=10).activations == sum(outputs)


def test_equal_architectures_compare_equal() -> None:
    """Depth 1.05 to 1.25 builds B0 plus one block per stage of 2-4 repeats: one network, one key."""
    assert architecture(1.05, 1.0) == architecture(1.25, 1.0) != architecture(1.0, 1.0)
    assert architecture(1.0, 1.0).blocks == 16


@pytest.mark.parametrize("depth, width", [(0.0, 1.0), (1.0, 0.0), (-1.0, 1.0), (float("nan"), 1.0)])
def test_non_positive_multipliers_are_user_errors(depth: float, width: float) -> None:
    with pytest.raises(sc.ScalingError, match="positive finite"):
        cost(depth, width, 224)
