"""Captioned picture grids that a person can read: the prediction grid, the CAM callback and `effnet cam` draw with
these, so every picture of the project enlarges, captions and tiles its images one way.

Model inputs are often 32 px (CIFAR, small-image folders); shown at that size a TensorBoard grid is a strip of
stamps with no room for a word. Each image is therefore enlarged by a whole factor with nearest-neighbour (its
pixels stay sharp squares, nothing is invented) until its side is at least `MIN_CELL_PX`, and captioned underneath.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "BLACK",
    "CAPTION_PX",
    "CORRECT",
    "Caption",
    "FONT_PX",
    "LINE_PX",
    "MIN_CELL_PX",
    "PAD_PX",
    "WRONG",
    "caption_strip",
    "cell_side",
    "enlarge",
    "labelled",
    "prediction_caption",
    "tile",
    "to_uint8_hwc",
    "unnormalize",
]

MIN_CELL_PX = 128  # px: the least side an image is shown at (32 px images are enlarged 4x)
FONT_PX = 12  # px: caption font size (PIL's bundled scalable font)
LINE_PX = FONT_PX + 4  # px: height of one caption line
CAPTION_PX = 2 * LINE_PX  # px: a prediction caption (predicted class, true class) and `effnet cam`'s header
PAD_PX = 2  # px of white between grid cells
BLACK, CORRECT, WRONG = (0, 0, 0), (0, 140, 0), (200, 0, 0)  # RGB 0-255: caption text, right and wrong predictions


@dataclass(frozen=True)
class Caption:
    """Lines of text under one picture, each with its colour (RGB 0-255)."""

    lines: tuple[tuple[str, tuple[int, int, int]], ...]


def prediction_caption(predicted: str, confidence: float, true: str | None) -> Caption:
    """`pred <class> <probability>` (green when right, red when wrong, black when the truth is unknown) and
    `true <class>` (blank when unknown)."""
    colour = BLACK if true is None else CORRECT if predicted == true else WRONG
    truth = f"true {true}" if true is not None else ""
    return Caption(((f"pred {predicted} {confidence:.2f}", colour), (truth, BLACK)))


def unnormalize(images: torch.Tensor, mean: Sequence[float] | None, std: Sequence[float] | None) -> torch.Tensor:
    """Normalized (N, 3, H, W) back to 0-1 with per-channel mean/std on the 0-1 scale, clamped; when either is
    unknown, each image is stretched to 0-1 (its colours are then only relative)."""
    images = images.detach().float()
    if mean is None or std is None:
        low = images.amin(dim=(1, 2, 3), keepdim=True)
        high = images.amax(dim=(1, 2, 3), keepdim=True)
        return (images - low) / (high - low).clamp(min=1e-6)
    mean_t = torch.tensor(mean, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
    return (images * std_t + mean_t).clamp(0, 1)


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in 0-1 -> (N, H, W, 3) uint8 on the CPU."""
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def cell_side(side: int, min_px: int = MIN_CELL_PX) -> int:
    """The displayed side of a `side` px image: enlarged by the least whole factor that reaches `min_px`."""
    return side * max(1, -(-min_px // side))


def enlarge(picture: np.ndarray, side: int) -> np.ndarray:
    """(H, W, 3) uint8 resized to (side, side) with nearest-neighbour (sharp pixels, no invented detail)."""
    from PIL import Image

    if picture.shape[:2] == (side, side):
        return picture
    return np.asarray(Image.fromarray(picture).resize((side, side), Image.Resampling.NEAREST))


def caption_strip(caption: Caption, width: int) -> np.ndarray:
    """(len(lines) * LINE_PX, width, 3) uint8: the lines in their colours on white, each cut with "…" to fit."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=FONT_PX)
    strip = Image.new("RGB", (width, len(caption.lines) * LINE_PX), "white")
    draw = ImageDraw.Draw(strip)
    for row, (text, colour) in enumerate(caption.lines):
        draw.text((2, row * LINE_PX + 1), fitted(text, font, width - 4), fill=colour, font=font)
    return np.asarray(strip)


def fitted(text: str, font: object, width: int) -> str:
    """`text`, or its longest prefix + "…" that is at most `width` px wide in `font`."""
    if font.getlength(text) <= width:  # type: ignore[attr-defined]
        return text
    while text and font.getlength(text + "…") > width:  # type: ignore[attr-defined]
        text = text[:-1]
    return text + "…"


def labelled(picture: np.ndarray, caption: Caption, side: int) -> np.ndarray:
    """One grid cell: the picture enlarged to (side, side) over its caption strip; uint8 (H, side, 3)."""
    return np.concatenate([enlarge(picture, side), caption_strip(caption, side)], axis=0)


def tile(cells: Sequence[np.ndarray], per_row: int, pad: int = PAD_PX) -> np.ndarray:
    """Equal-sized (H, W, 3) uint8 cells in rows of `per_row`, `pad` px of white between and around them
    (torchvision's make_grid; a single cell comes back as it is)."""
    from torchvision.utils import make_grid

    batch = torch.from_numpy(np.stack(cells)).permute(0, 3, 1, 2)
    return np.ascontiguousarray(make_grid(batch, nrow=per_row, padding=pad, pad_value=255).permute(1, 2, 0).numpy())
