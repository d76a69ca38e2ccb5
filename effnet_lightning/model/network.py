"""Build a scaled EfficientNet from timm's own blocks and builder.

Only the scaling is ours: the MBConv/SE/DropPath blocks, the arch-string decoder, the per-stage `ceil` depth
rounding and the channel rounding (`round_channels`, multiples of 8, never below 90%) are timm's. With the
official multipliers the result is exactly timm's `efficientnet_b0..b7` (same state_dict keys and shapes).
"""

from __future__ import annotations

from functools import partial

from timm.models.efficientnet import EfficientNet, decode_arch_def, round_channels
from torch import nn

from effnet_lightning.model import scaling as sc

# EfficientNet-B0 (paper Table 1), in timm's arch-string notation: block type, repeats r, kernel k, stride s,
# expansion e, output channels c, squeeze-excite ratio se. Same as timm's _gen_efficientnet.
B0_ARCH = [
    ["ds_r1_k3_s1_e1_c16_se0.25"],
    ["ir_r2_k3_s2_e6_c24_se0.25"],
    ["ir_r2_k5_s2_e6_c40_se0.25"],
    ["ir_r3_k3_s2_e6_c80_se0.25"],
    ["ir_r3_k5_s1_e6_c112_se0.25"],
    ["ir_r4_k5_s2_e6_c192_se0.25"],
    ["ir_r1_k3_s1_e6_c320_se0.25"],
]
STEM_CHANNELS = 32  # B0 stem, scaled by width like every layer
HEAD_CHANNELS = 1280  # B0 final 1x1 conv, scaled by width

# BatchNorm: PyTorch defaults, or TF's (momentum 0.99 in TF == 0.01 in PyTorch; eps 1e-3), as the paper trained.
TORCH_BN_MOMENTUM, TORCH_BN_EPS = 0.1, 1e-5
TF_BN_MOMENTUM, TF_BN_EPS = 0.01, 1e-3
# Stochastic depth (paper §5.2: "survival probability 0.8"): block i of N drops with rate * i / N (TF
# efficientnet_model.py, timm's builder), so block 0 never drops and the last block drops rate * (N-1) / N.
DROP_PATH_RATE = 0.2
# The classifier: timm and TF draw its weights from U(+-1/sqrt(num_classes)), a range set for ImageNet's 1000
# classes. With fewer classes it widens as sqrt(1000 / num_classes): at 2 classes the first logits of a phi -4
# network had std 8.6 and its loss was 4.0-5.6 against ln 2 = 0.69 (BENCHMARKS.md, "Small images"). Below 1000
# classes the 1000-class range is kept, so the first logits are as small as ImageNet's (std 0.3-0.4).
CLASSIFIER_INIT_CLASSES = 1000


def create_model(
    scaling: sc.ScalingSpec | sc.Scaling | str = sc.ScalingSpec(),
    *,
    num_classes: int = 1000,
    dropout: float | None = None,
    drop_path_rate: float = DROP_PATH_RATE,
    bn_momentum: float = TORCH_BN_MOMENTUM,
    bn_eps: float = TORCH_BN_EPS,
    in_chans: int = 3,
) -> EfficientNet:
    """A timm EfficientNet scaled as `scaling` says: a spec (variant, φ or multipliers), a resolved Scaling, or a
    variant name ('b0'..'b7').

    `dropout` defaults to the scaling's (0.2 → 0.5 over B0 → B7); `drop_path_rate` is the stochastic-depth rate
    that timm scales linearly over the blocks (block i of N drops rate·i/N). The model carries `.scaling` (depth,
    width, intended resolution).
    """
    if isinstance(scaling, str):
        scaling = sc.ScalingSpec(variant=scaling)
    if isinstance(scaling, sc.ScalingSpec):
        scaling = scaling.resolve()
    if num_classes < 1 or in_chans < 1:
        raise ValueError(f"num_classes and in_chans must be >= 1, got {num_classes} and {in_chans}")
    dropout = scaling.dropout if dropout is None else dropout
    for name, rate in (("dropout", dropout), ("drop_path_rate", drop_path_rate)):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {rate}")

    round_chs = partial(round_channels, multiplier=scaling.width, divisor=8)
    model = EfficientNet(
        block_args=decode_arch_def(B0_ARCH, scaling.depth),  # per-stage repeats: ceil(depth * r)
        num_classes=num_classes,
        num_features=round_chs(HEAD_CHANNELS),
        in_chans=in_chans,
        stem_size=STEM_CHANNELS,  # EfficientNet rounds it with round_chs_fn (fix_stem=False)
        round_chs_fn=round_chs,
        act_layer=nn.SiLU,  # "swish" in the paper
        norm_layer=partial(nn.BatchNorm2d, momentum=bn_momentum, eps=bn_eps),
        drop_rate=dropout,
        drop_path_rate=drop_path_rate,
    )
    if num_classes < CLASSIFIER_INIT_CLASSES:  # timm/TF's U(+-1/sqrt(num_classes)) is set for 1000 classes
        bound = CLASSIFIER_INIT_CLASSES**-0.5
        nn.init.uniform_(model.classifier.weight, -bound, bound)
    model.scaling = scaling
    return model
