"""Stochastic depth has one owner, `model.drop_path_rate`: block i of N drops with rate * i / N (TF, timm)."""

import pytest
from timm.layers import DropPath

import effnet_lightning.callbacks as callbacks
from effnet_lightning.train.module import EfficientNetModule


@pytest.mark.parametrize(("variant", "num_blocks"), [("b0", 16), ("b3", 26)])
def test_block_rates_are_linear_in_the_block_index(variant: str, num_blocks: int) -> None:
    """The last block drops rate * (N-1) / N, not rate: 'survival 0.8' is the rate the ramp approaches."""
    module = EfficientNetModule(variant, num_classes=10, drop_path_rate=0.2)
    blocks = [block for stage in module.model.blocks for block in stage]
    rates = [b.drop_path.drop_prob if isinstance(b.drop_path, DropPath) else 0.0 for b in blocks]
    assert len(rates) == num_blocks
    assert rates == pytest.approx([0.2 * i / num_blocks for i in range(num_blocks)])
    assert rates[-1] == pytest.approx(0.2 * (num_blocks - 1) / num_blocks)


def test_no_callback_overrides_the_model_rate() -> None:
    assert not hasattr(callbacks, "StochasticDepth")
