"""memory.py: the arithmetic size guard and the meta-device training-memory estimate."""

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from effnet_lightning.model import memory
from effnet_lightning.model import scaling as sc
from effnet_lightning.model.flops import count_params
from effnet_lightning.model.network import create_model

SCALINGS = [sc.official(v) for v in sc.OFFICIAL_VARIANTS] + [
    sc.compound(-2),
    sc.compound(0.5),
    sc.compound(10),
    *sc.TABLE7.values(),
]


@pytest.mark.parametrize("scaling", SCALINGS, ids=lambda s: s.name)
def test_arithmetic_matches_timm_parameter_and_block_count(scaling):
    with torch.device("meta"):
        model = create_model(scaling, num_classes=10)
    size = memory.size_estimate(scaling, num_classes=10)
    assert size.params == count_params(model)
    assert size.blocks == sum(len(stage) for stage in model.blocks)
    assert size.state_bytes == size.params * 20  # fp32 weight, grad, two RMSpropTF buffers, EMA


@pytest.fixture
def no_network_built(monkeypatch):
    """Any attempt to build a network fails the test: the guard must answer from arithmetic alone."""

    def refuse(*args, **kwargs):
        raise AssertionError("a network was built")

    monkeypatch.setattr("effnet_lightning.model.network.EfficientNet", refuse)


@pytest.mark.parametrize(
    "scaling, expected",
    [
        (sc.compound(100), "1.33e+09 blocks; the limit is 1,000"),
        (sc.explicit(depth=1e6), "1.6e+07 blocks; the limit is 1,000"),
        (sc.explicit(depth=1e300), "blocks; the limit is 1,000"),
        (sc.explicit(width=1e308), "1e+602 parameters"),
        (sc.explicit(width=60), "the limit is 256 GB per device"),
        (sc.explicit(resolution=1e5), "of activations per image (the stem's output alone)"),
    ],
    ids=["phi100", "depth1e6", "depth1e300", "width1e308", "width60", "res22M"],
)
def test_guard_refuses_absurd_sizes_without_building(no_network_built, scaling, expected):
    with pytest.raises(ValueError, match="the limit is") as err:
        memory.check_size(scaling)
    assert expected in str(err.value)
    with pytest.raises(ValueError, match="the limit is") as err:  # estimate() guards first too, as check_size
        memory.estimate(scaling)
    assert expected in str(err.value)


def test_guard_passes_the_family_and_l2_sized_models(no_network_built):
    for variant in sc.OFFICIAL_VARIANTS:
        memory.check_size(sc.official(variant))
    l2 = memory.check_size(sc.explicit(depth=5.3, width=4.3, resolution=800 / 224))  # Noisy Student's L2
    assert l2.blocks == 88 and 4e8 < l2.params < 6e8  # paper: 480M parameters


def test_phi_beyond_float_range_is_a_value_error():
    with pytest.raises(ValueError, match="beyond any number a float holds"):
        sc.compound(1e308)


def test_hook_count_agrees_with_real_cpu_allocations():
    """On a real CPU batch, the saved-tensor count is within 10% of what the profiler sees stay allocated."""
    torch.manual_seed(0)
    model = create_model(sc.ScalingSpec(phi=-2), num_classes=10, drop_path_rate=0.0).train()
    images = torch.randn(8, 3, 64, 64)
    for checkpointing in (False, True):
        model.set_grad_checkpointing(checkpointing)
        counted, _ = memory.saved_activation_bytes(model, images)
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            logits = model(images)
        held = sum(event.self_cpu_memory_usage for event in prof.events()) - logits.numel() * 4
        assert counted == pytest.approx(held, rel=0.10), checkpointing
        del logits


@pytest.mark.parametrize("variant", ["b0", "b7"])
def test_checkpointing_saves_at_least_4x_activation_memory(variant):
    estimate = memory.estimate(sc.official(variant))
    ratio = estimate.activation_bytes_per_image / estimate.checkpointed_activation_bytes_per_image
    assert ratio >= 4, ratio
    assert estimate.params == memory.size_estimate(sc.official(variant)).params
    assert estimate.training_bytes(16, True) < estimate.training_bytes(16)
    # backward rebuilds one block at a time: the largest block is counted on top of the checkpointed bytes
    assert 0 < estimate.recompute_bytes_per_image < estimate.activation_bytes_per_image / 4
    assert estimate.training_bytes(1, True) == (
        estimate.state_bytes + estimate.checkpointed_activation_bytes_per_image + estimate.recompute_bytes_per_image
    )


def test_checkpointing_leaves_gradients_equal():
    torch.manual_seed(0)
    model = create_model(sc.ScalingSpec(phi=-2), num_classes=10, dropout=0.0, drop_path_rate=0.0).train()
    images, targets = torch.randn(4, 3, 32, 32), torch.tensor([1, 2, 3, 4])
    grads = []
    for checkpointing in (False, True):
        model.set_grad_checkpointing(checkpointing)
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(images), targets).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for plain, checkpointed in zip(*grads, strict=True):
        torch.testing.assert_close(checkpointed, plain, rtol=1e-4, atol=1e-6)


def test_check_fits_refuses_a_batch_over_the_budget_with_advice():
    spec = sc.ScalingSpec(variant="b0")
    fits = memory.check_fits(spec, batch_size=32, limit_bytes=16 * 10**9)
    assert fits.training_bytes(32) < 16 * 10**9
    with pytest.raises(ValueError, match="limit is 2 GB: lower data.batch_size or turn on gradient checkpointing"):
        memory.check_fits(spec, batch_size=64, limit_bytes=2 * 10**9)
    with pytest.raises(ValueError, match="choose a smaller model or resolution"):
        memory.check_fits(spec, batch_size=1, limit_bytes=110 * 10**6)  # state 106 MB fits


def test_estimate_is_computed_once_per_scaling(monkeypatch):
    """Every `fit` estimates before building; the same scaling again (a study's arms, a resume) reuses it."""
    scaling = sc.ScalingSpec(phi=-4, resolution=32).resolve()
    first = memory.estimate(scaling, 10)
    monkeypatch.setattr(memory, "activation_bytes_per_image", None)  # a second count would raise TypeError
    assert memory.estimate(scaling, 10) is first
    assert memory.estimate(scaling, 10, limit_bytes=10**12) is first  # the size check's limit: the same count
    with pytest.raises(TypeError):
        memory.estimate(sc.ScalingSpec(phi=-4, resolution=40).resolve(), 10)
