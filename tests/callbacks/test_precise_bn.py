"""PreciseBN: the statistics evaluation uses are those of the weights evaluated, over fixed training images.

CPU, a φ=-4 EfficientNet at 32 px on an in-memory 4-class datamodule of 24 px images (48 training, 16 validation),
batch 8. The expected statistics are computed independently: hooks capture each BatchNorm's input over the
calibration batches, and the mean over batches of per-batch means (and unbiased variances) is what a BatchNorm
with momentum None keeps.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from callbacks_testkit import make_trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from effnet_lightning.callbacks import EMA, PreciseBN
from effnet_lightning.datamodules.base import ImageDataModule
from effnet_lightning.errors import ConfigError
from effnet_lightning.model.grad_checkpointing import BATCH_NORMS
from effnet_lightning.model.scaling import ScalingSpec
from effnet_lightning.train.module import EfficientNetModule

NUM_CLASSES = 4
TRAIN, VAL, BATCH = 48, 16, 8


class Squares(ImageDataModule):
    """24 px RGB images: class k is a bright square in quadrant k on noise; fixed by the index."""

    num_classes = NUM_CLASSES

    @staticmethod
    def _images(count: int, offset: int) -> list[tuple[np.ndarray, int]]:
        samples = []
        for index in range(offset, offset + count):
            rng = np.random.default_rng(index)
            image = rng.integers(0, 96, size=(24, 24, 3), dtype=np.uint8)
            label = index % NUM_CLASSES
            row, col = divmod(label, 2)
            image[row * 12 : row * 12 + 12, col * 12 : col * 12 + 12] = 224
            samples.append((image, label))
        return samples

    def train_dataset(self):
        return self._images(TRAIN, 0)

    def val_dataset(self):
        return self._images(VAL, 10_000)

    test_dataset = val_dataset


def datamodule(seed: int = 0) -> Squares:
    return Squares("unused", resolution=32, batch_size=BATCH, num_workers=0, seed=seed)


def module(**kwargs) -> EfficientNetModule:
    return EfficientNetModule(
        ScalingSpec(phi=-4, resolution=32), num_classes=NUM_CLASSES, lr=0.5, warmup_epochs=0, bn_momentum=0.1, **kwargs
    )


def expected_statistics(network: torch.nn.Module, batches: list[torch.Tensor]) -> dict[str, tuple]:
    """Each BatchNorm's (mean over batches of the batch mean, of the unbiased batch variance), from its inputs
    captured in a copy that runs in evaluation mode, BatchNorm in training mode (the copy's own buffers unused)."""
    network = copy.deepcopy(network).eval()
    inputs: dict[str, list[torch.Tensor]] = {}
    for name, layer in network.named_modules():
        if isinstance(layer, BATCH_NORMS):
            layer.train()
            layer.register_forward_hook(lambda m, args, out, name=name: inputs.setdefault(name, []).append(args[0]))
    with torch.no_grad():
        for images in batches:
            network(images)
    return {
        name: (
            torch.stack([x.mean(dim=(0, 2, 3)) for x in xs]).mean(0),
            torch.stack([x.var(dim=(0, 2, 3), unbiased=True) for x in xs]).mean(0),
        )
        for name, xs in inputs.items()
    }


def calibration_inputs(dm: Squares, num_images: int) -> list[torch.Tensor]:
    return [dm.to_model_input(images) for images, _ in dm.calibration_dataloader(num_images)]


def assert_statistics_equal(network: torch.nn.Module, expected: dict[str, tuple]) -> None:
    layers = dict(network.named_modules())
    assert expected, "no BatchNorm layer found"
    for name, (mean, var) in expected.items():
        torch.testing.assert_close(layers[name].running_mean, mean, rtol=1e-4, atol=1e-5, msg=name)
        torch.testing.assert_close(layers[name].running_var, var, rtol=1e-4, atol=1e-5, msg=name)


def fit(tmp_path, callbacks, epochs: int = 1, **kwargs):
    torch.manual_seed(0)
    dm, net = datamodule(), module()
    trainer = make_trainer(tmp_path, callbacks, max_epochs=epochs, **kwargs)
    trainer.fit(net, datamodule=dm)
    return trainer, net, dm


def test_evaluation_statistics_are_those_recomputed_over_the_chosen_images(tmp_path):
    trainer, net, dm = fit(tmp_path, [PreciseBN(num_images=24)])
    batches = calibration_inputs(dm, 24)
    assert [len(b) for b in batches] == [8, 8, 8]
    assert_statistics_equal(net.model, expected_statistics(net.model, batches))
    assert all(m.momentum == 0.1 for m in net.model.modules() if isinstance(m, BATCH_NORMS))  # restored


def test_the_ema_copy_gets_its_own_statistics(tmp_path):
    ema = EMA(decay=0.9)
    trainer, net, dm = fit(tmp_path, [ema, PreciseBN(num_images=16)])
    batches = calibration_inputs(dm, 16)
    assert_statistics_equal(ema.averaged.model, expected_statistics(ema.averaged.model, batches))
    raw_mean = next(m.running_mean for m in net.model.modules() if isinstance(m, BATCH_NORMS))
    ema_mean = next(m.running_mean for m in ema.averaged.model.modules() if isinstance(m, BATCH_NORMS))
    assert not torch.equal(raw_mean, ema_mean)  # each set of weights its own statistics


def test_the_calibration_images_are_fixed_and_recomputing_draws_no_random_numbers(tmp_path):
    dm = datamodule(seed=3)
    dm.setup("fit")
    first, again = list(dm.calibration_dataloader(20)), list(dm.calibration_dataloader(20))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again, strict=True))
    assert sum(len(b[1]) for b in first) == 20
    other = list(datamodule(seed=4).calibration_dataloader(20))  # a resume may be given another seed: same images
    assert torch.equal(torch.cat([b[0] for b in first]), torch.cat([b[0] for b in other]))

    net = module()  # dropout 0.2 and drop path: recomputing must not run them
    callback, trainer = PreciseBN(num_images=20), make_trainer(tmp_path, [])
    trainer.datamodule = dm  # what a Trainer sets when given datamodule=
    rng, modes = torch.get_rng_state(), [m.training for m in net.modules()]
    callback.recompute(trainer, net)
    state = copy.deepcopy(net.state_dict())
    assert torch.equal(torch.get_rng_state(), rng)
    callback.recompute(trainer, net)
    assert all(torch.equal(t, net.state_dict()[k]) for k, t in state.items())
    assert [m.training for m in net.modules()] == modes


def test_resume_from_an_epoch_checkpoint_continues_like_the_uninterrupted_fit(tmp_path):
    def run(ckpt_path=None):
        saver = ModelCheckpoint(dirpath=tmp_path, filename="{epoch}", save_top_k=-1)
        ema, precise = EMA(decay=0.9), PreciseBN(num_images=16)
        torch.manual_seed(0)
        # no dropout: Lightning alone does not restore the RNG (the CLI's RNGState does)
        dm, net = datamodule(), module(dropout=0.0, drop_path_rate=0.0)
        trainer = make_trainer(tmp_path, [ema, precise, saver], max_epochs=2, enable_checkpointing=True)
        trainer.fit(net, datamodule=dm, ckpt_path=ckpt_path)
        return net, ema, precise

    straight, straight_ema, precise = run()
    assert precise.step == 2 * TRAIN // BATCH
    resumed, resumed_ema, _ = run(tmp_path / "epoch=0.ckpt")
    for a, b in ((straight, resumed), (straight_ema.averaged, resumed_ema.averaged)):
        for name, tensor in a.state_dict().items():
            assert torch.equal(tensor, b.state_dict()[name]), name


def test_validate_from_a_checkpoint_recomputes_only_statistics_it_does_not_have(tmp_path):
    trainer, net, dm = fit(tmp_path, [PreciseBN(num_images=16)], enable_checkpointing=True)
    best = trainer.checkpoint_callback.best_model_path
    calls = []

    def counting() -> PreciseBN:
        callback = PreciseBN(num_images=16)
        recompute = callback.recompute
        callback.recompute = lambda trainer, pl_module: calls.append(trainer.state.fn) or recompute(trainer, pl_module)
        return callback

    make_trainer(tmp_path, [counting()]).validate(module(), datamodule=datamodule(), ckpt_path=best)
    assert calls == []  # written right after the validation that recomputed them
    make_trainer(tmp_path, [counting()]).validate(module(), datamodule=datamodule())
    assert calls == ["validate"]  # fresh weights, no checkpoint


def test_num_images_below_one_is_a_config_error():
    with pytest.raises(ConfigError, match="precise_bn.num_images must be 1 or more, got 0"):
        PreciseBN(num_images=0)


def test_calibration_batches_mix_the_classes_of_a_folder_sorted_by_class():
    """A folder lists its files class by class; batches of one class would hold the within-class variance only."""

    class ByClass(Squares):
        def train_dataset(self):
            return sorted(self._images(TRAIN, 0), key=lambda sample: sample[1])

    dm = ByClass("unused", resolution=32, batch_size=BATCH, num_workers=0, seed=0)
    labels = [batch[1] for batch in dm.calibration_dataloader(TRAIN)]
    assert sorted(torch.cat(labels).tolist()) == sorted(s[1] for s in dm.train_dataset())  # every image once
    assert all(len(set(batch.tolist())) > 1 for batch in labels)
