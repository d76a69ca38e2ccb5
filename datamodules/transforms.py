"""Training and eval transforms in albumentations: one field-of-view rule for folders of images of any size, timm's
ImageNet pipelines for photos, and pad-and-crop for small images that all share one size (CIFAR-style).

The field of view of an image folder depends on the image's shorter side S against the model's resolution R
(`eval_crop`, `train_crop`; what `ImageFolderDataModule` uses unless `crop_pct`/`scale` are set):
- Eval: the shorter side is resized to clamp(S, R, R + 32), then the central R x R square is kept. A photo well
  above the resolution (S >= R + 32) therefore gets TF's eval crop, crop_pct = R / (R + 32) (tensorflow/tpu
  efficientnet preprocessing.py, CROP_PADDING = 32; timm `transforms_imagenet_eval`): 224 px reads a 256 px
  resize. An image at or below the resolution (S <= R) is resized to R and not cropped; one in between keeps its
  own pixels and loses at most 16 px per side.
- Train: a photo (S >= R + 32) gets timm's Inception crop (`random_resized_crop`: 8-100% of the area, aspect
  3/4-4/3) and a flip. A smaller image gets the same resize as eval, a shift of up to R/8 px (reflected border;
  CIFAR's 4 px at 32 px) and a flip: train and eval see the same field of view. The Inception crop keeps as little
  as 8% of an image, which on 8x8 digits cost 0.99 -> 0.38 top-1, and TF's eval crop at 32 px is 0.5: the
  central quarter of a 28 px digit (measured val top-1 0.27 against 0.62 without it).
Both deliver the model's resolution, so the per-batch resize in base.py has nothing to do. An explicit
`crop_pct` (timm's: shorter side to floor(R / crop_pct) for every image) or `scale` (the Inception crop for every
image) replaces the rule for that half.

`pad_random_crop` is the small-image training transform for images of one stored size kept at that size (the
model's resolution is then reached by the per-batch resize on the device).

Shrinking uses OpenCV's INTER_AREA (it averages, so it does not alias); enlarging uses the chosen
interpolation. That is what PIL's antialiased bicubic resize, which timm uses, amounts to.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import albumentations as A
import cv2

__all__ = [
    "ByShorterSide",
    "ShorterSideInRange",
    "eval_crop",
    "eval_crop_for",
    "eval_side_range",
    "inception_crop",
    "pad_random_crop",
    "random_resized_crop",
    "resize_center_crop",
    "tf_crop_pct",
    "train_crop",
]

Interpolation = Literal["bicubic", "bilinear", "nearest"]
CV2_INTERPOLATION = {"bicubic": cv2.INTER_CUBIC, "bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}
DEFAULT_SCALE = (0.08, 1.0)  # fraction of the image area a training crop covers (Inception; timm, torchvision)
DEFAULT_RATIO = (3 / 4, 4 / 3)  # width / height of a training crop
CROP_PADDING = 32  # px the eval resize adds to the resolution before the center crop (TF preprocessing.py)
SHIFT_FRACTION = 1 / 8  # of the resolution: the small-image training shift (CIFAR: 4 px at 32 px)


def tf_crop_pct(resolution: int) -> float:
    """TF's eval crop: the share of the resized shorter side the center crop keeps, resolution / (resolution + 32)."""
    return resolution / (resolution + CROP_PADDING)


def eval_side_range(resolution: int, crop_pct: float | None = None) -> tuple[int, int]:
    """(low, high) px: eval resizes an image's shorter side to clamp(side, low, high), then keeps the central
    resolution x resolution square. crop_pct None: the field-of-view rule, (resolution, resolution + 32); a number:
    timm's fixed rule, floor(resolution / crop_pct) for every image."""
    if crop_pct is None:
        return resolution, resolution + CROP_PADDING
    side = math.floor(resolution / crop_pct + 1e-9)  # 1e-9: 224 / (224 / 256) may be 255.99...
    return side, side


class ShorterSideInRange(A.SmallestMaxSize):
    """Resizes the shorter side to clamp(side, low, high), keeping the aspect ratio (albumentations' SmallestMaxSize
    with the target taken from the image: unchanged when already in range)."""

    def __init__(self, low: int, high: int, interpolation: Interpolation = "bicubic") -> None:
        shrink = "image" if interpolation != "nearest" else None  # INTER_AREA when shrinking
        super().__init__(max_size=high, interpolation=CV2_INTERPOLATION[interpolation], area_for_downscale=shrink)
        self.low, self.high = low, high

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        side = min(params["shape"][:2])
        return {"scale": min(max(side, self.low), self.high) / side}


class ByShorterSide(A.BaseCompose):
    """Runs `small` on images whose shorter side is below `threshold` px and `large` on the others; both draw
    from the pipeline's seeded generators (albumentations propagates them to the children)."""

    def __init__(self, threshold: int, small: A.BaseCompose, large: A.BaseCompose) -> None:
        super().__init__([small, large], p=1.0)
        self.threshold = threshold

    def __call__(self, *args: Any, force_apply: bool = False, **data: Any) -> dict[str, Any]:
        small, large = self.transforms
        chosen = small if min(data["image"].shape[:2]) < self.threshold else large
        return chosen(force_apply=True, **data)


def eval_crop(resolution: int, side_range: tuple[int, int], interpolation: Interpolation = "bicubic") -> A.Compose:
    """Evaluation: the shorter side to clamp(side, *side_range) (see eval_side_range), then the central square."""
    return A.Compose(
        [ShorterSideInRange(*side_range, interpolation), A.CenterCrop(height=resolution, width=resolution)]
    )


def eval_crop_for(data_config: dict[str, Any]) -> A.Compose:
    """The eval crop a checkpoint's `data_config` describes: its `eval_side_range` when it has one (folder
    datamodules), else timm's fixed rule from its `crop_pct`."""
    resolution = int(data_config["input_size"][-1])
    side_range = data_config.get("eval_side_range") or eval_side_range(resolution, float(data_config["crop_pct"]))
    return eval_crop(resolution, (int(side_range[0]), int(side_range[1])), data_config["interpolation"])


def train_crop(
    resolution: int,
    scale: tuple[float, float] | None = None,
    ratio: tuple[float, float] = DEFAULT_RATIO,
    hflip: float = 0.5,
    interpolation: Interpolation = "bicubic",
) -> A.Compose:
    """Training: scale None: the field-of-view rule (photos at least resolution + 32 px on the shorter side get the
    Inception crop, smaller images eval's resize plus a shift of up to resolution/8 px); a scale: the Inception
    crop with that area range for every image. Then a flip with probability hflip."""
    photo = inception_crop(resolution, scale or DEFAULT_SCALE, ratio, interpolation)
    if scale is not None:
        return A.Compose([photo, A.HorizontalFlip(p=hflip)])
    low, high = eval_side_range(resolution)
    shift = max(1, round(resolution * SHIFT_FRACTION))
    small = A.Sequential(
        [
            ShorterSideInRange(low, high, interpolation),
            A.CenterCrop(height=resolution, width=resolution),  # eval's view ...
            A.Pad(padding=shift, border_mode=cv2.BORDER_REFLECT_101),  # ... moved by up to `shift` px
            A.RandomCrop(height=resolution, width=resolution),
        ],
        p=1.0,
    )
    return A.Compose([ByShorterSide(high, small, A.Sequential([photo], p=1.0)), A.HorizontalFlip(p=hflip)])


def inception_crop(
    resolution: int,
    scale: tuple[float, float] = DEFAULT_SCALE,
    ratio: tuple[float, float] = DEFAULT_RATIO,
    interpolation: Interpolation = "bicubic",
) -> A.RandomResizedCrop:
    """A random area/aspect crop resized to resolution x resolution (timm's and torchvision's RandomResizedCrop)."""
    return A.RandomResizedCrop(
        size=(resolution, resolution),
        scale=scale,
        ratio=ratio,
        interpolation=CV2_INTERPOLATION[interpolation],
        area_for_downscale="image" if interpolation != "nearest" else None,  # INTER_AREA when the crop is larger
    )


def random_resized_crop(
    resolution: int,
    scale: tuple[float, float] = DEFAULT_SCALE,
    ratio: tuple[float, float] = DEFAULT_RATIO,
    hflip: float = 0.5,
    interpolation: Interpolation = "bicubic",
) -> A.Compose:
    """Training for photos: the Inception crop, then a flip with probability hflip (timm transforms_imagenet_train)."""
    return A.Compose([inception_crop(resolution, scale, ratio, interpolation), A.HorizontalFlip(p=hflip)])


def resize_center_crop(
    resolution: int, crop_pct: float | None = None, interpolation: Interpolation = "bicubic"
) -> A.Compose:
    """Evaluation with timm's fixed rule: shorter side to floor(resolution / crop_pct) (timm's scale_size), then
    the central square. crop_pct None: TF's, so the shorter side becomes resolution + 32 for every image."""
    crop_pct = tf_crop_pct(resolution) if crop_pct is None else crop_pct
    return eval_crop(resolution, eval_side_range(resolution, crop_pct), interpolation)


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
