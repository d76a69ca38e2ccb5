"""Training and eval transforms in albumentations: timm's ImageNet pipelines for photos of any size (ImageFolder,
ImageNet), and pad-and-crop for small images that all share one size (CIFAR-style).

Train: a random crop covering 8-100% of the image area with aspect ratio 3/4-4/3, resized to the model's
resolution, then a horizontal flip (timm `transforms_imagenet_train`, Inception-style). Eval: the shorter side
resized to floor(resolution / crop_pct), then the central resolution x resolution square (timm
`transforms_imagenet_eval`). crop_pct defaults to TF's eval crop, resolution / (resolution + 32)
(tensorflow/tpu efficientnet preprocessing.py, CROP_PADDING = 32): 224 px reads a 256 px resize, 600 px a
632 px one. Both deliver the model's resolution, so the per-batch resize in base.py has nothing to do.

Small images (e.g. 8-64 px digits, icons, CIFAR): the Inception crop keeps as little as 8% of the image and
flips it, which on 8x8 digits cost 0.99 -> 0.38 top-1. `pad_random_crop` shifts the image by up to `pad` px
instead (reflected border) at its stored size; the model's resolution is then reached by the per-batch resize.

Shrinking uses OpenCV's INTER_AREA (it averages, so it does not alias); enlarging uses the chosen
interpolation. That is what PIL's antialiased bicubic resize, which timm uses, amounts to.
"""

from __future__ import annotations

import math
from typing import Literal

import albumentations as A
import cv2

Interpolation = Literal["bicubic", "bilinear", "nearest"]
CV2_INTERPOLATION = {"bicubic": cv2.INTER_CUBIC, "bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}
DEFAULT_SCALE = (0.08, 1.0)  # fraction of the image area a training crop covers (Inception; timm, torchvision)
DEFAULT_RATIO = (3 / 4, 4 / 3)  # width / height of a training crop
CROP_PADDING = 32  # px the eval resize adds to the resolution before the center crop (TF preprocessing.py)


def tf_crop_pct(resolution: int) -> float:
    """TF's eval crop: the share of the resized shorter side the center crop keeps, resolution / (resolution + 32)."""
    return resolution / (resolution + CROP_PADDING)


def random_resized_crop(
    resolution: int,
    scale: tuple[float, float] = DEFAULT_SCALE,
    ratio: tuple[float, float] = DEFAULT_RATIO,
    hflip: float = 0.5,
    interpolation: Interpolation = "bicubic",
) -> A.Compose:
    """Training: random area/aspect crop resized to resolution x resolution, then a flip with probability hflip."""
    shrink = "image" if interpolation != "nearest" else None  # INTER_AREA when the crop is larger than the output
    return A.Compose(
        [
            A.RandomResizedCrop(
                size=(resolution, resolution),
                scale=scale,
                ratio=ratio,
                interpolation=CV2_INTERPOLATION[interpolation],
                area_for_downscale=shrink,
            ),
            A.HorizontalFlip(p=hflip),
        ]
    )


def resize_center_crop(
    resolution: int, crop_pct: float | None = None, interpolation: Interpolation = "bicubic"
) -> A.Compose:
    """Evaluation: shorter side to floor(resolution / crop_pct) (timm's scale_size), then the central square.
    crop_pct None: TF's, so the shorter side becomes resolution + 32."""
    crop_pct = tf_crop_pct(resolution) if crop_pct is None else crop_pct
    shrink = "image" if interpolation != "nearest" else None
    return A.Compose(
        [
            A.SmallestMaxSize(
                max_size=math.floor(resolution / crop_pct + 1e-9),  # 1e-9: 224 / (224 / 256) may be 255.99...
                interpolation=CV2_INTERPOLATION[interpolation],
                area_for_downscale=shrink,
            ),
            A.CenterCrop(height=resolution, width=resolution),
        ]
    )


def pad_random_crop(size: int, pad: int = 4, hflip: float = 0.5) -> A.Compose:
    """Training for small images of one size: pad `pad` px per side (reflected), a random size x size crop, a flip
    with probability hflip (0 where left and right matter: digits, text). The CIFAR recipe (pad 4 at 32 px)."""
    return A.Compose(
        [
            A.Pad(padding=pad, border_mode=cv2.BORDER_REFLECT_101),  # numpy/torchvision "reflect"
            A.RandomCrop(height=size, width=size),
            A.HorizontalFlip(p=hflip),
        ]
    )
