"""Grad-CAM's layer (gradcam.py): the deepest stage whose map is at least 7x7 at the input size, or a named module;
its maps localise (differ across the image) where the head's 1x1 map at 32 px cannot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from effnet_lightning.drawing.gradcam import MIN_MAP_SIDE, CamLayer, cam_layer, candidate_layers, grad_cam
from effnet_lightning.errors import UserError
from effnet_lightning.model.network import create_model
from effnet_lightning.model.scaling import ScalingSpec


@pytest.fixture(scope="module")
def network() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(ScalingSpec(phi=-4, resolution=32), num_classes=10).eval()


def output_sides(network: torch.nn.Module, names: list[str], resolution: int) -> dict[str, int]:
    """The side of each named module's output in a real forward pass at `resolution` px."""
    sides, modules = {}, dict(network.named_modules())
    hooks = [
        modules[name].register_forward_hook(lambda _m, _i, out, name=name: sides.__setitem__(name, out.shape[-1]))
        for name in names
    ]
    with torch.no_grad():
        network(torch.zeros(1, 3, resolution, resolution))
    for hook in hooks:
        hook.remove()
    return sides


@pytest.mark.parametrize("resolution", [32, 50, 224])
def test_candidate_sides_are_the_network_s_own(network, resolution) -> None:
    """The sides computed from timm's feature_info are what a forward pass gives (also at an odd size)."""
    candidates = candidate_layers(network, resolution)
    assert [c.name for c in candidates][-1] == "bn2"
    assert output_sides(network, [c.name for c in candidates], resolution) == {c.name: c.side for c in candidates}


@pytest.mark.parametrize(
    ("resolution", "expected"), [(32, CamLayer("blocks.1", 8)), (224, CamLayer("bn2", 7)), (8, CamLayer("blocks.0", 4))]
)
def test_default_layer_is_the_deepest_at_least_7x7(network, resolution, expected) -> None:
    """32 px: blocks.1 (8x8; bn2 is 1x1); 224 px: bn2 (7x7), the usual Grad-CAM layer; below 14 px no stage
    reaches 7x7 and the largest map is taken."""
    layer = cam_layer(network, resolution)
    assert layer == expected
    assert output_sides(network, [layer.name], resolution)[layer.name] == expected.side
    assert expected.side >= MIN_MAP_SIDE or resolution < 2 * MIN_MAP_SIDE


def test_named_layer_and_an_unknown_one(network) -> None:
    assert cam_layer(network, 32, "blocks.2") == CamLayer("blocks.2", 4)
    assert cam_layer(network, 32, "blocks.3.0.conv_pwl") == CamLayer("blocks.3.0.conv_pwl", None)  # any module
    with pytest.raises(UserError) as error:
        cam_layer(network, 32, "blocks.9")
    message = str(error.value)
    assert message.startswith("layer 'blocks.9' is not a module of this network; at 32 px its stages are blocks.0")
    assert "blocks.1 (8x8)" in message and "bn2 (1x1)" in message and "\n" not in message


def test_maps_differ_across_the_image_at_32_px(network) -> None:
    """At 32 px the default layer's maps vary over the image; the head's (bn2, 1x1) are one flat value."""
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    heat, probabilities = grad_cam(network, images, cam_layer(network, 32))
    assert heat.shape == (4, 32, 32) and probabilities.shape == (4, 10)
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(4))
    assert (heat.std(axis=(1, 2)) > 0.03).all()  # measured 0.18-0.22 here; 0.10-0.27 on a trained φ = -4 run
    flat, _ = grad_cam(network, images, cam_layer(network, 32, "bn2"))
    assert np.ptp(flat, axis=(1, 2)).max() == 0
