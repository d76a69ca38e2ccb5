"""Grad-CAM on a timm EfficientNet: which layer to explain, the maps of the predicted class, and the overlay; the
one implementation behind `effnet cam` and the CAM callback.

The layer. A Grad-CAM map has the spatial size of its layer's output, enlarged to the input. The last stage (`bn2`,
the activated head that the classifier pools) has stride 32: 7x7 at 224 px, but 1x1 at 32 px, where the map is one
flat value. So the default layer is the deepest one whose output is at least `MIN_MAP_SIDE` cells square at the
model's input size, read from timm's `feature_info` (each stage's module name and stride): `bn2` at 224 px and
above, `blocks.1` (8x8) at 32 px. A caller may name any module instead (`--layer`, `cam_images.layer`).

The maps are pytorch-grad-cam's `GradCAM` for the predicted class, each scaled to 0-1 (its own minimum and maximum).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from effnet_lightning.errors import UserError

__all__ = ["HEAD", "MIN_MAP_SIDE", "CamLayer", "cam_layer", "candidate_layers", "grad_cam", "map_side", "overlay"]

MIN_MAP_SIDE = 7  # cells: what the last stage gives at B0's 224 px (224 / 32), the size Grad-CAM is usually read at
HEAD = "bn2"  # timm EfficientNet: BatchNorm + SiLU after the 1x1 head convolution, at the last stage's stride
IMAGE_WEIGHT = 0.5  # share of the picture in an overlay; the rest is the JET-coloured map (pytorch-grad-cam's default)


@dataclass(frozen=True)
class CamLayer:
    """The module Grad-CAM explains: its name in `network.named_modules()` and its output's side in cells at the
    input size (None for a module named by the user that `feature_info` does not list)."""

    name: str
    side: int | None

    def describe(self) -> str:
        return self.name if self.side is None else f"{self.name} ({self.side}x{self.side})"


def map_side(resolution: int, reduction: int) -> int:
    """Cells of a stage's output at `resolution` px: each stride-2 conv (padding k // 2) gives ceil(side / 2)."""
    side = resolution
    while reduction > 1:
        side, reduction = -(-side // 2), reduction // 2
    return side


def candidate_layers(network: nn.Module, resolution: int) -> list[CamLayer]:
    """timm's stage outputs (`feature_info`), shallow to deep, then the head `bn2`, each with its side in cells."""
    stages = [CamLayer(info["module"], map_side(resolution, info["reduction"])) for info in network.feature_info]
    return [*stages, CamLayer(HEAD, stages[-1].side)]


def cam_layer(network: nn.Module, resolution: int, name: str | None = None) -> CamLayer:
    """The named module (a `UserError` naming the choices when it has none), or the deepest candidate whose output
    is at least MIN_MAP_SIDE cells square (the shallowest, largest one when none is)."""
    candidates = candidate_layers(network, resolution)
    if name is None:
        large = [layer for layer in candidates if layer.side >= MIN_MAP_SIDE]
        return large[-1] if large else candidates[0]
    if name not in dict(network.named_modules()):
        choices = ", ".join(layer.describe() for layer in candidates)
        raise UserError(
            f"layer {name!r} is not a module of this network; at {resolution} px its stages are {choices} "
            "(or any name in network.named_modules())"
        )
    return next((layer for layer in candidates if layer.name == name), CamLayer(name, None))


def grad_cam(network: nn.Module, images: torch.Tensor, layer: CamLayer) -> tuple[np.ndarray, torch.Tensor]:
    """Maps (N, H, W) float32 in 0-1 of each image's predicted class over the input (N, 3, H, W), and the class
    probabilities (N, classes) of that same forward pass. Puts the network in eval mode and fills its parameters'
    gradients: pass a copy of a network that is training."""
    from pytorch_grad_cam import GradCAM

    module = dict(network.named_modules())[layer.name]
    with torch.inference_mode(False), torch.enable_grad():
        x = images.detach().float().clone()  # a normal tensor, also when the batch was made under inference mode
        with GradCAM(model=network, target_layers=[module]) as cam:
            heat = cam(input_tensor=x, targets=None).astype(np.float32)
            probabilities = cam.outputs.detach().float().softmax(dim=1)  # the forward the maps were taken from
    return heat, probabilities


def overlay(picture: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """The map in JET colours over the picture, both (H, W[, 3]); picture uint8 RGB, heat 0-1; uint8 RGB out."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    return show_cam_on_image(picture.astype(np.float32) / 255, heat, use_rgb=True, image_weight=IMAGE_WEIGHT)
