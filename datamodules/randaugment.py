"""RandAugment (Cubuk et al. 2019, arXiv 1909.13719) as an albumentations transform, in timm's flavour.

albumentations 2.0.8 has no RandAugment or AutoAugment; this builds one from its pixel operations
(`albumentations.augmentations.pixel.functional`) and OpenCV affine warps, with timm's op list and magnitude
mapping (`timm/data/auto_augment.py`): each image gets `n` ops drawn with replacement from 15, each applied
with probability `p`, at magnitude `m` on a 0-10 scale. All randomness comes from the transform's own
albumentations RNG (`self.py_random`), so `Compose.set_random_seed` (per loader worker, see base.py) covers it.

Config strings are timm's: "rand-m9-n2", "rand-m9-mstd0.5", "rand-m9-n2-mstd0.5-inc1" (sections in any order):
  m<float>    magnitude, 0..mmax (default 10)        n<int>     ops per image (default 2)
  mstd<float> std of a Gaussian jitter of m per op;  >100 means uniform in [0, m]   (default 0)
  p<float>    probability of applying each op (0.5)  inc<0|1>   ops whose strength grows with m (default 0)
  mmax<float> upper clip of the jittered magnitude (default 10)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from random import Random
from typing import Any

import albumentations as A
import cv2
import numpy as np
from albumentations.augmentations.pixel import functional as fpixel

__all__ = ["RandAugment", "RandAugmentConfig", "parse_randaugment"]

LEVEL_DENOM = 10.0  # timm _LEVEL_DENOM: "m9" means 9/10 of each op's maximum strength
MAX_ROTATE = 30.0  # degrees at magnitude 10 (timm _rotate_level_to_arg)
MAX_SHEAR = 0.3  # shear factor at magnitude 10 (timm _shear_level_to_arg)
MAX_TRANSLATE = 0.45  # fraction of the image side at magnitude 10 (timm translate_pct)
MAX_POSTERIZE_BITS = 4  # bits kept at magnitude 10 in timm's mapping (from TF EfficientNet): 0 at m0, 4 at m10
MAX_SOLARIZE_ADD = 110  # added to pixels below 128 at magnitude 10 (timm _solarize_add_level_to_arg)
SOLARIZE_ADD_THRESHOLD = 128  # pixel value; only darker pixels are brightened
UNIFORM_MSTD = 100.0  # timm: an mstd above this samples the magnitude uniformly in [0, m]
SHARPEN_KERNEL = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / 13  # PIL ImageFilter.SMOOTH
DEFAULT_FILL = (124, 116, 104)  # ImageNet mean in 0-255, what timm fills uncovered pixels with

OPS = (  # timm _RAND_TRANSFORMS, in its order
    "AutoContrast",
    "Equalize",
    "Invert",
    "Rotate",
    "Posterize",
    "Solarize",
    "SolarizeAdd",
    "Color",
    "Contrast",
    "Brightness",
    "Sharpness",
    "ShearX",
    "ShearY",
    "TranslateXRel",
    "TranslateYRel",
)
SECTIONS = {  # timm's RandAugment string: section prefix -> the RandAugmentConfig field it sets
    "m": "magnitude",
    "n": "num_ops",
    "mstd": "magnitude_std",
    "p": "prob",
    "inc": "increasing",
    "mmax": "magnitude_max",
}
INCREASING = {"Posterize", "Solarize", "Color", "Contrast", "Brightness", "Sharpness"}  # have an "inc" variant


@dataclass(frozen=True)
class RandAugmentConfig:
    magnitude: float = 10.0
    num_ops: int = 2
    magnitude_std: float = 0.0
    prob: float = 0.5
    increasing: bool = False
    magnitude_max: float = LEVEL_DENOM


def parse_randaugment(config: str) -> RandAugmentConfig:
    """timm's "rand-m9-n2-mstd0.5" syntax -> RandAugmentConfig; ValueError that shows the syntax otherwise."""
    usage = (
        f"randaugment {config!r} is not a RandAugment string like 'rand-m9-n2' or 'rand-m9-n2-mstd0.5' "
        "(sections after 'rand': m<magnitude 0-10>, n<ops per image>, mstd<magnitude std>, p<op probability>, "
        "inc<0|1>, mmax<max magnitude>)."
    )
    name, *sections = config.split("-")
    fields: dict[str, Any] = {}
    for section in sections:
        match = re.fullmatch(r"([a-z]+)(\d+(?:\.\d+)?)", section)
        if name != "rand" or match is None or match[1] not in SECTIONS or SECTIONS[match[1]] in fields:
            raise ValueError(usage)
        key, value = SECTIONS[match[1]], float(match[2])
        if (key == "num_ops" and not value.is_integer()) or (key == "increasing" and value not in (0, 1)):
            raise ValueError(usage)
        fields[key] = int(value) if key == "num_ops" else bool(value) if key == "increasing" else value
    if name != "rand":
        raise ValueError(usage)
    settings = RandAugmentConfig(**fields)
    if settings.num_ops < 1 or not 0 <= settings.prob <= 1 or settings.magnitude > settings.magnitude_max:
        raise ValueError(f"{usage[:-1]}; needs n >= 1, 0 <= p <= 1 and m <= mmax.")
    if settings.magnitude_std > UNIFORM_MSTD:
        settings = RandAugmentConfig(**{**fields, "magnitude_std": float("inf")})
    return settings


class RandAugment(A.ImageOnlyTransform):
    """`num_ops` ops drawn with replacement from timm's 15, each applied with probability `prob` at magnitude m."""

    def __init__(self, config: str = "rand-m9-n2", fill: tuple[int, int, int] = DEFAULT_FILL, p: float = 1.0):
        """
        Args:
            config: timm-style string, e.g. "rand-m9-n2" or "rand-m9-n2-mstd0.5" (see the module docstring).
            fill: RGB value (0-255) for pixels that rotate/shear/translate uncover; timm uses the dataset mean.
            p: probability of running RandAugment at all (each op then has its own probability from `config`).
        """
        super().__init__(p=p)
        self.config = config
        self.fill = tuple(int(v) for v in fill)
        self.settings = parse_randaugment(config)

    def get_params(self) -> dict[str, Any]:
        """Draw the ops and their arguments from albumentations' seeded RNG; `self.params["ops"]` keeps them."""
        rng, s = self.py_random, self.settings
        ops = []
        for name in [rng.choice(OPS) for _ in range(s.num_ops)]:  # with replacement, as timm
            if rng.random() > s.prob:
                continue
            magnitude = s.magnitude
            if s.magnitude_std == float("inf"):
                magnitude = rng.uniform(0, magnitude)
            elif s.magnitude_std > 0:
                magnitude = rng.gauss(magnitude, s.magnitude_std)
            magnitude = min(max(magnitude, 0.0), s.magnitude_max)
            variant = f"{name}Increasing" if s.increasing and name in INCREASING else name
            ops.append((variant, LEVEL_TO_ARG[variant](magnitude / LEVEL_DENOM, rng)))
        return {"ops": ops}

    def apply(self, img: np.ndarray, ops: list[tuple[str, float | None]], **params: Any) -> np.ndarray:
        for name, arg in ops:
            img = APPLY[name.removesuffix("Increasing")](img, arg, self.fill)
        return img

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("config", "fill")


# ---- magnitude (level = m / 10, in [0, mmax / 10]) -> op argument, as timm's *_level_to_arg -----------------------
def _signed(value: float, rng: Random) -> float:
    return -value if rng.random() > 0.5 else value  # timm _randomly_negate


LEVEL_TO_ARG: dict[str, Callable[[float, Random], float | None]] = {
    "AutoContrast": lambda level, rng: None,
    "Equalize": lambda level, rng: None,
    "Invert": lambda level, rng: None,
    "Rotate": lambda level, rng: _signed(level * MAX_ROTATE, rng),  # degrees, counter-clockwise
    "Posterize": lambda level, rng: int(level * MAX_POSTERIZE_BITS),  # bits kept: 0..4, milder as m grows
    "PosterizeIncreasing": lambda level, rng: MAX_POSTERIZE_BITS - int(level * MAX_POSTERIZE_BITS),  # 4..0
    "Solarize": lambda level, rng: min(256, int(level * 256)),  # threshold: 0..256, milder as m grows
    "SolarizeIncreasing": lambda level, rng: 256 - min(256, int(level * 256)),
    "SolarizeAdd": lambda level, rng: min(128, int(level * MAX_SOLARIZE_ADD)),
    "ShearX": lambda level, rng: _signed(level * MAX_SHEAR, rng),
    "ShearY": lambda level, rng: _signed(level * MAX_SHEAR, rng),
    "TranslateXRel": lambda level, rng: _signed(level * MAX_TRANSLATE, rng),  # fraction of the width
    "TranslateYRel": lambda level, rng: _signed(level * MAX_TRANSLATE, rng),
    **{  # enhance factor: timm's 0.1..1.9 (1 = unchanged, so m=5 is the mildest), or "inc": 1 +- 0.9 * level
        name: lambda level, rng: level * 1.8 + 0.1 for name in ("Color", "Contrast", "Brightness", "Sharpness")
    },
    **{
        f"{name}Increasing": lambda level, rng: max(0.1, 1.0 + _signed(level * 0.9, rng))
        for name in ("Color", "Contrast", "Brightness", "Sharpness")
    },
}


# ---- the ops on RGB uint8 HWC images, matching PIL's ImageOps/ImageEnhance as timm calls them -----------------
def _lut(img: np.ndarray, table: np.ndarray) -> np.ndarray:
    return cv2.LUT(img, np.clip(table, 0, 255).astype(np.uint8))


def _affine(img: np.ndarray, inverse: np.ndarray, fill: tuple[int, ...]) -> np.ndarray:
    """Warp with a 2x3 output->input map (PIL's Image.transform convention), bicubic, uncovered pixels = fill."""
    h, w = img.shape[:2]
    flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(img, inverse, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=fill)


def _rotate(img: np.ndarray, degrees: float, fill: tuple[int, ...]) -> np.ndarray:
    h, w = img.shape[:2]
    inverse = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), -degrees, 1.0)  # output->input rotates back
    return _affine(img, inverse, fill)


def _sharpness(img: np.ndarray, factor: float, fill: tuple[int, ...]) -> np.ndarray:
    smooth = cv2.filter2D(img, -1, SHARPEN_KERNEL)
    smooth[[0, -1]], smooth[:, [0, -1]] = img[[0, -1]], img[:, [0, -1]]  # PIL leaves the border unfiltered
    return cv2.addWeighted(img, factor, smooth, 1 - factor, 0)  # factor > 1 extrapolates: sharper


def _translate(img: np.ndarray, fraction: float, axis: int, fill: tuple[int, ...]) -> np.ndarray:
    inverse = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
    inverse[axis, 2] = fraction * img.shape[1 - axis]  # x uses the width, y the height
    return _affine(img, inverse, fill)


def _shear(img: np.ndarray, factor: float, axis: int, fill: tuple[int, ...]) -> np.ndarray:
    inverse = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
    inverse[axis, 1 - axis] = factor  # x' = x + factor * y (ShearX), y' = y + factor * x (ShearY)
    return _affine(img, inverse, fill)


_LEVELS = np.arange(256)
APPLY: dict[str, Callable[[np.ndarray, Any, tuple[int, ...]], np.ndarray]] = {
    "AutoContrast": lambda img, _, fill: fpixel.auto_contrast(img, cutoff=0, ignore=None, method="pil"),
    "Equalize": lambda img, _, fill: fpixel.equalize(img, mode="pil", by_channels=True),
    "Invert": lambda img, _, fill: fpixel.invert(img),
    "Rotate": _rotate,
    "Posterize": lambda img, bits, fill: img if bits >= 8 else _lut(img, _LEVELS & (0xFF << (8 - bits))),
    "Solarize": lambda img, threshold, fill: _lut(img, np.where(_LEVELS >= threshold, 255 - _LEVELS, _LEVELS)),
    "SolarizeAdd": lambda img, add, fill: _lut(img, np.where(_LEVELS < SOLARIZE_ADD_THRESHOLD, _LEVELS + add, _LEVELS)),
    "Color": lambda img, factor, fill: fpixel.adjust_saturation_torchvision(img, factor),  # blend with gray
    "Contrast": lambda img, factor, fill: fpixel.adjust_contrast_torchvision(img, factor),  # blend with mean
    "Brightness": lambda img, factor, fill: fpixel.adjust_brightness_torchvision(img, factor),  # blend with 0
    "Sharpness": _sharpness,
    "ShearX": lambda img, factor, fill: _shear(img, factor, 0, fill),
    "ShearY": lambda img, factor, fill: _shear(img, factor, 1, fill),
    "TranslateXRel": lambda img, fraction, fill: _translate(img, fraction, 0, fill),
    "TranslateYRel": lambda img, fraction, fill: _translate(img, fraction, 1, fill),
}
