"""RandAugment: timm's config strings, N ops at magnitude M, timm's op semantics, seeding, base-class wiring."""

from __future__ import annotations

import re
from collections import Counter

import albumentations as A
import numpy as np
import pytest
from PIL import Image
from test_image_datamodule import Gradient
from timm.data import auto_augment as timm_aa

from effnet_lightning.datamodules.randaugment import (
    APPLY,
    OPS,
    RandAugment,
    RandAugmentConfig,
    parse_randaugment,
)

FILL = (124, 116, 104)


def image(height: int = 48, width: int = 64) -> np.ndarray:
    """Smooth random colours: every op visibly changes it."""
    import cv2

    coarse = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)


def draws(config: str, n: int = 400, seed: int = 0) -> list[list[tuple[str, float | None]]]:
    """The ops (name, argument) RandAugment applied to each of n images."""
    transform = RandAugment(config)
    transform.set_random_seed(seed)
    applied = []
    for _ in range(n):
        transform(image=image(16, 16))
        applied.append(transform.params["ops"])
    return applied


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("rand-m9-n2", RandAugmentConfig(magnitude=9, num_ops=2)),
        ("rand-n3-m5", RandAugmentConfig(magnitude=5, num_ops=3)),
        ("rand-m9-mstd0.5", RandAugmentConfig(magnitude=9, magnitude_std=0.5)),
        ("rand-m9-mstd101", RandAugmentConfig(magnitude=9, magnitude_std=float("inf"))),
        ("rand-m7-n1-p1-inc1", RandAugmentConfig(magnitude=7, num_ops=1, prob=1.0, increasing=True)),
        ("rand", RandAugmentConfig()),
    ],
)
def test_parses_timm_strings(config: str, expected: RandAugmentConfig) -> None:
    assert parse_randaugment(config) == expected


@pytest.mark.parametrize(
    "config",
    [
        "",
        "rand-",
        "randaugment",
        "auto-m9",
        "rand-m9-n2-x1",
        "rand-m9-m5",
        "rand-n2.5",
        "rand-m11",
        "rand-p2",
        "rand-n0",
        "rand-inc2",
        "rand m9",
    ],
)
def test_malformed_strings_raise_a_sentence(config: str) -> None:
    with pytest.raises(ValueError, match=rf"randaugment '{config}' is not a RandAugment string like 'rand-m9-n2'"):
        parse_randaugment(config)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_n_ops_per_image(n: int) -> None:
    assert all(len(ops) == n for ops in draws(f"rand-m9-n{n}-p1"))  # p1: every drawn op is applied
    counts = Counter(len(ops) for ops in draws(f"rand-m9-n{n}"))  # p0.5: Binomial(n, 0.5) ops
    assert sorted(counts) == list(range(n + 1))
    assert abs(sum(k * c for k, c in counts.items()) / 400 - n / 2) < 0.15 * n
    names = Counter(name for ops in draws(f"rand-m9-n{n}-p1") for name, _ in ops)
    assert set(names) == set(OPS)  # all 15 ops are drawn


@pytest.mark.parametrize("m", [3, 9])
def test_magnitude_sets_each_op_argument(m: int) -> None:
    """timm's level mapping at magnitude m (of 10): rotate 3m degrees, shear 0.03m, translate 4.5m % ..."""
    args: dict[str, set] = {}
    for ops in draws(f"rand-m{m}-n2-p1"):
        for name, arg in ops:
            args.setdefault(name, set()).add(None if arg is None else round(abs(arg), 6))
    level = m / 10
    assert args["Rotate"] == {round(30 * level, 6)}
    assert args["ShearX"] == args["ShearY"] == {round(0.3 * level, 6)}
    assert args["TranslateXRel"] == {round(0.45 * level, 6)}
    assert args["Posterize"] == {int(4 * level)} and args["Solarize"] == {int(256 * level)}
    assert args["Brightness"] == {round(1.8 * level + 0.1, 6)} and args["Invert"] == {None}


def test_magnitude_std_jitters_and_increasing_variants() -> None:
    rotations = [abs(arg) for ops in draws("rand-m5-n1-p1-mstd1", 2000) for name, arg in ops if name == "Rotate"]
    assert 2 < np.std(rotations) < 4 and abs(np.mean(rotations) - 15) < 1  # 3 degrees per magnitude unit
    names = {name for ops in draws("rand-m9-n2-p1-inc1") for name, _ in ops}
    assert "BrightnessIncreasing" in names and "Brightness" not in names and "Rotate" in names


@pytest.mark.parametrize("name", OPS)
def test_each_op_matches_timm_pil_op(name: str) -> None:
    """Same argument, same result as timm's PIL implementation, to within JPEG-noise level differences."""
    pixels = image(96, 128)
    args = {
        "Rotate": 20.0,
        "Posterize": 3,
        "Solarize": 200,
        "SolarizeAdd": 99,
        "Color": 1.7,
        "Contrast": 0.4,
        "Brightness": 1.5,
        "Sharpness": 1.8,
        "ShearX": 0.2,
        "ShearY": -0.2,
        "TranslateXRel": 0.3,
        "TranslateYRel": -0.3,
    }
    timm_fn = re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()  # ShearX -> shear_x, TranslateXRel -> translate_x_rel
    arg = args.get(name)
    reference = getattr(timm_aa, timm_fn)(
        Image.fromarray(pixels), *([] if arg is None else [arg]), fillcolor=FILL, resample=Image.BICUBIC
    )
    ours = APPLY[name](pixels, arg, FILL)
    assert ours.shape == pixels.shape and ours.dtype == np.uint8
    difference = np.abs(ours.astype(int) - np.asarray(reference).astype(int))
    assert difference.mean() < 1.5 and (difference > 8).mean() < 0.03  # larger only along the fill edge
    assert arg is None or not np.array_equal(ours, pixels)  # it did something


def test_keeps_shape_and_dtype_and_follows_the_compose_seed() -> None:
    pixels = image(37, 53)  # odd, non-square

    def run(seed: int) -> list[np.ndarray]:
        pipeline = A.Compose([RandAugment("rand-m9-n3-mstd0.5")])
        pipeline.set_random_seed(seed)  # what base.py's worker seeding calls
        return [pipeline(image=pixels)["image"] for _ in range(10)]

    first, again, other = run(1), run(1), run(2)
    assert all(out.shape == pixels.shape and out.dtype == np.uint8 for out in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_any_image_datamodule_appends_it_to_its_training_pipeline() -> None:
    dm = Gradient("unused", randaugment="rand-m9-n2", mean=(0.5, 0.25, 0.0))
    pipeline = dm.train_pipeline()
    assert isinstance(pipeline.transforms[-1], RandAugment) and pipeline.transforms[-1].fill == (128, 64, 0)
    assert isinstance(pipeline.transforms[0], A.Compose)  # the subclass's own augmentation runs first
    assert Gradient("unused").train_pipeline() is not None and dm.eval_transform() is None
    with pytest.raises(ValueError, match="randaugment 'rand-q9' is not a RandAugment string"):
        Gradient("unused", randaugment="rand-q9")
