"""Stochastic depth: linear per-block drop-path rates set in place on timm's DropPath modules."""

import pytest
import timm
import torch
from callbacks_testkit import TinyClassifier, image_loader, make_trainer
from effnet_lightning.callbacks import StochasticDepth, drop_path_rates, set_drop_path_rates
from effnet_lightning.callbacks.stochastic_depth import efficientnet_blocks
from lightning.pytorch import Callback
from timm.layers import DropPath


def block_rates(module: torch.nn.Module) -> list[float]:
    return [
        b.drop_path.drop_prob if isinstance(b.drop_path, DropPath) else 0.0
        for b in efficientnet_blocks(module)
    ]


@pytest.mark.parametrize(
    "name, num_blocks", [("test_efficientnet", 5), ("efficientnet_b0", 16), ("efficientnet_b3", 26)]
)
def test_rates_are_linear_in_block_index_and_match_timm_construction(name, num_blocks):
    model = timm.create_model(name, num_classes=4, drop_path_rate=0.2)
    built_by_timm = block_rates(model)
    set_drop_path_rates(model, 0.5)
    assert block_rates(model) == pytest.approx([0.5 * i / num_blocks for i in range(num_blocks)])
    set_drop_path_rates(model, 0.2)  # the paper's rate reproduces what timm's builder set
    assert block_rates(model) == pytest.approx(built_by_timm)
    assert drop_path_rates(num_blocks, 0.2)[-1] == pytest.approx(0.2 * (num_blocks - 1) / num_blocks)


class RateRecorder(Callback):
    def __init__(self):
        self.last_block_rate: dict[int, float] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.last_block_rate[trainer.global_step] = block_rates(pl_module)[-1]


def test_ramp_scales_rates_from_zero_over_ramp_epochs_per_update(tmp_path):
    # 4 batches per epoch with accumulation 2 -> 2 updates per epoch; ramp over 2 epochs == 4 updates.
    recorder = RateRecorder()
    callback = StochasticDepth(drop_path_rate=0.2, ramp_epochs=2)
    trainer = make_trainer(
        tmp_path, [callback, recorder], max_epochs=3, limit_train_batches=4, accumulate_grad_batches=2
    )
    trainer.fit(TinyClassifier(), image_loader(num_samples=32, batch_size=2))
    last = 0.2 * 4 / 5  # test_efficientnet has 5 blocks
    expected = {step: last * min(1.0, step / 4) for step in range(6)}
    assert recorder.last_block_rate == pytest.approx(expected)


def test_no_drop_in_eval_mode():
    # efficientnet_b0, not test_efficientnet: the latter's blocks all change shape, none has a residual.
    module = timm.create_model("efficientnet_b0", num_classes=4, drop_path_rate=0.2)
    set_drop_path_rates(module, 0.9)
    images = torch.randn(4, 3, 32, 32)
    module.eval()
    with torch.no_grad():
        first, second = module(images), module(images)
        set_drop_path_rates(module, 0.0)
        without = module(images)
    assert torch.equal(first, second) and torch.equal(first, without)
    module.train()
    set_drop_path_rates(module, 0.9)
    torch.manual_seed(0)
    with torch.no_grad():
        assert not torch.allclose(module(images), module(images))  # in training it does drop


def test_model_without_droppath_gets_a_clear_error(tmp_path):
    trainer = make_trainer(tmp_path, [StochasticDepth()], max_steps=1)
    with pytest.raises(ValueError, match="drop_path_rate > 0"):
        trainer.fit(TinyClassifier(drop_path_rate=0.0), image_loader(num_samples=4, batch_size=2))


def test_module_without_efficientnet_gets_a_clear_error():
    with pytest.raises(ValueError, match="no timm EfficientNet"):
        set_drop_path_rates(torch.nn.Linear(2, 2), 0.2)
