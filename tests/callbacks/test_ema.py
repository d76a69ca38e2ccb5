"""EMA of weights: TF warm-up, foreach update, both metric sets, exact resume, export to timm."""

import copy

import pytest
import timm
import torch
from callbacks_testkit import NUM_CLASSES, TinyClassifier, image_loader, make_trainer
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils._python_dispatch import TorchDispatchMode
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from effnet_lightning.callbacks import (
    EMA,
    TensorPairs,
    ema_update_,
    load_weights,
    tf_ema_decay,
)
from effnet_lightning.train.checkpoint_format import TrainedCheckpoint, load_checkpoint


class WeightRecorder(Callback):
    """Snapshots the module's state at the start and after every optimizer update."""

    def __init__(self):
        self.initial: dict[str, torch.Tensor] = {}
        self.after_update: list[dict[str, torch.Tensor]] = []
        self._last_step = 0

    def on_train_start(self, trainer, pl_module):
        self.initial = copy.deepcopy(pl_module.state_dict())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step > self._last_step:
            self.after_update.append(copy.deepcopy(pl_module.state_dict()))
            self._last_step = trainer.global_step


class OpCounter(TorchDispatchMode):
    """Every aten op dispatched inside the context, by name."""

    def __init__(self):
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def ema_accuracy(state: dict[str, torch.Tensor], loader) -> float:
    module = TinyClassifier()
    module.load_state_dict(state)
    module.eval()
    with torch.no_grad():
        hits = [(module(x).argmax(1) == y).float() for x, y in loader]
    return torch.cat(hits).mean().item()


def test_warmup_decay_matches_tf_formula():
    assert tf_ema_decay(0) == pytest.approx(1 / 10)
    assert tf_ema_decay(1) == pytest.approx(2 / 11)
    assert tf_ema_decay(8) == pytest.approx(9 / 18)
    assert tf_ema_decay(100) == pytest.approx(101 / 110)
    assert tf_ema_decay(10**6) == 0.9999  # (1 + n) / (10 + n) passes 0.9999 at n == 89991
    assert tf_ema_decay(5, warmup=False) == 0.9999
    assert tf_ema_decay(5, decay=0.3) == 0.3


def test_update_is_two_foreach_ops_without_host_sync():
    model = TinyClassifier()
    pairs = TensorPairs(copy.deepcopy(model), model)
    assert len(pairs) > 80 and len(pairs.copy_average) > 0  # params + BN buffers; num_batches_tracked copied
    with OpCounter() as counter:
        ema_update_(pairs, 0.99)
    assert counter.ops == ["aten._foreach_lerp_.Scalar", "aten._foreach_copy_.default"]
    # The counter does see a Python loop per tensor, and .item()/bool() syncs, when there are some:
    with OpCounter() as counter, torch.no_grad():
        for average, current in zip(pairs.lerp_average, pairs.lerp_current, strict=True):
            average.lerp_(current, 0.01)
        bool(pairs.copy_current[0] == 0)
    assert len(counter.ops) > len(pairs.lerp_average) and "aten._local_scalar_dense.default" in counter.ops


def test_integer_buffers_are_copied_not_averaged():
    model = TinyClassifier()
    average = copy.deepcopy(model)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.num_batches_tracked.fill_(7)
    ema_update_(TensorPairs(average, model), 0.9999)
    counts = {b.item() for n, b in average.named_buffers() if n.endswith("num_batches_tracked")}
    assert counts == {7}


def test_average_equals_reference_loop_after_real_updates(tmp_path):
    recorder, ema = WeightRecorder(), EMA(decay=0.9999)
    trainer = make_trainer(tmp_path, [recorder, ema], max_steps=5, accumulate_grad_batches=2)
    trainer.fit(TinyClassifier(), image_loader(num_samples=40, batch_size=4))
    assert len(recorder.after_update) == 5  # one EMA update per optimizer update, not per micro-batch

    # Reference: TF semantics in a plain loop. The shadow starts at the initial weights; update n: decay_n.
    reference = {name: tensor.clone() for name, tensor in recorder.initial.items()}
    for n, state in enumerate(recorder.after_update, start=1):
        decay = min(0.9999, (1 + n) / (10 + n))
        for name, tensor in state.items():
            if tensor.is_floating_point():
                reference[name] = decay * reference[name] + (1 - decay) * tensor
            else:
                reference[name] = tensor.clone()
    averaged = ema.averaged.state_dict()
    assert averaged.keys() == reference.keys()
    for name, tensor in reference.items():
        torch.testing.assert_close(averaged[name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    # The module keeps its raw weights after fit; the averaged copy lives on the module's device.
    for name, tensor in trainer.lightning_module.state_dict().items():
        assert torch.equal(tensor, recorder.after_update[-1][name])
    assert all(t.device == trainer.lightning_module.device for t in ema.averaged.state_dict().values())


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One short fit with validation, checkpointed: shared by the metric, checkpoint and export tests."""
    tmp_path = tmp_path_factory.mktemp("ema_fit")
    torch.manual_seed(0)
    ema = EMA()
    trainer = make_trainer(tmp_path, [ema], max_epochs=2, limit_train_batches=3)
    val_loader = image_loader(num_samples=24, batch_size=8, seed=1)
    trainer.fit(TinyClassifier(), image_loader(num_samples=24, batch_size=4), val_loader)
    ckpt = tmp_path / "last.ckpt"
    trainer.save_checkpoint(ckpt)
    return dict(trainer=trainer, ema=ema, ckpt=ckpt, val_loader=val_loader, tmp_path=tmp_path)


def test_raw_and_ema_metrics_are_both_logged(fitted):
    metrics = fitted["trainer"].callback_metrics
    for name in ("val/acc1", "val/acc5", "val_ema/loss", "val_ema/acc1", "val_ema/acc5"):
        assert name in metrics, name
    # val_ema/* is the accuracy of the averaged weights (the last validation ran after the last update).
    expected = ema_accuracy(fitted["ema"].averaged.state_dict(), fitted["val_loader"])
    assert metrics["val_ema/acc1"].item() == pytest.approx(expected)
    assert metrics["val_ema/loss"].item() != pytest.approx(metrics["val/loss"].item())  # two different models


def test_checkpoint_layout(fitted):
    checkpoint = load_checkpoint(fitted["ckpt"])
    module, ema = fitted["trainer"].lightning_module, fitted["ema"]
    for name, tensor in ema.averaged.state_dict().items():
        assert torch.equal(checkpoint["state_dict"][name], tensor)
    for name, tensor in module.state_dict().items():
        assert torch.equal(checkpoint["current_model_state"][name], tensor)
    assert checkpoint["averaging_state"]["n_averaged"].item() == 6


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    def fit(ckpt_path=None, seed=0):
        torch.manual_seed(seed)
        ema = EMA()
        saver = ModelCheckpoint(dirpath=tmp_path, filename="{epoch}", save_top_k=-1)  # at every epoch end
        trainer = make_trainer(tmp_path, [ema, saver], max_epochs=2, enable_checkpointing=True)
        # drop_path_rate=0: Lightning does not restore the RNG, and dropped paths would make the runs differ.
        module = TinyClassifier(drop_path_rate=0.0)
        trainer.fit(module, image_loader(num_samples=12, batch_size=4), ckpt_path=ckpt_path)
        return trainer, ema

    continuous_trainer, continuous = fit()
    resumed_trainer, resumed = fit(ckpt_path=tmp_path / "epoch=0.ckpt", seed=1)  # different initial weights
    assert resumed_trainer.global_step == continuous_trainer.global_step == 6
    continuous_state, resumed_state = (
        continuous.averaged.state_dict(),
        resumed.averaged.state_dict(),
    )
    assert continuous_state.keys() == resumed_state.keys()
    for name, tensor in continuous_state.items():
        assert torch.equal(tensor, resumed_state[name]), name
    raw = resumed_trainer.lightning_module.state_dict()
    assert all(torch.equal(t, raw[n]) for n, t in continuous_trainer.lightning_module.state_dict().items())


def test_validate_from_checkpoint_reports_raw_and_ema(fitted, tmp_path):
    ema = EMA()
    trainer = make_trainer(tmp_path, [ema])
    module = TinyClassifier()
    results = trainer.validate(module, fitted["val_loader"], ckpt_path=fitted["ckpt"], verbose=False)[0]
    fit_metrics = fitted["trainer"].callback_metrics
    assert results["val/acc1"] == pytest.approx(fit_metrics["val/acc1"].item())
    assert results["val_ema/acc1"] == pytest.approx(fit_metrics["val_ema/acc1"].item())
    assert results["val_ema/loss"] == pytest.approx(fit_metrics["val_ema/loss"].item(), rel=1e-5)
    raw = load_weights(fitted["ckpt"], "raw")
    assert all(torch.equal(module.state_dict()[name], tensor) for name, tensor in raw.items())


def test_test_from_checkpoint_logs_test_ema(fitted, tmp_path):
    trainer = make_trainer(tmp_path, [EMA()])
    results = trainer.test(TinyClassifier(), fitted["val_loader"], ckpt_path=fitted["ckpt"], verbose=False)[0]
    assert results["test_ema/acc1"] == pytest.approx(fitted["trainer"].callback_metrics["val_ema/acc1"].item())
    assert "test/acc1" in results


@pytest.mark.parametrize("which", ["ema", "raw"])
def test_predict_from_checkpoint_uses_the_chosen_weights(fitted, tmp_path, which):
    trainer = make_trainer(tmp_path, [EMA(predict_weights=which)])
    module = TinyClassifier()
    trainer.predict(module, fitted["val_loader"], ckpt_path=fitted["ckpt"])
    chosen = load_weights(fitted["ckpt"], which)
    assert all(torch.equal(module.state_dict()[name], tensor) for name, tensor in chosen.items())


def test_network_state_loads_strictly_into_timm(fitted):
    """The one checkpoint reader (export, cam and load_weights use it): the EMA network under timm's keys."""
    exported = TrainedCheckpoint.read(fitted["ckpt"]).network_state("ema")
    network = timm.create_model("test_efficientnet", num_classes=NUM_CLASSES)
    network.load_state_dict(exported, strict=True)
    averaged = fitted["ema"].averaged.model.state_dict()
    assert exported.keys() == averaged.keys()
    assert all(torch.equal(network.state_dict()[name], tensor) for name, tensor in averaged.items())


def test_load_weights_errors_are_clear(fitted, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_weights(tmp_path / "missing.ckpt")
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {"model.w": torch.zeros(1)}}, plain)
    with pytest.raises(ValueError, match="which='raw'"):
        load_weights(plain, "ema")
    assert load_weights(plain, "raw").keys() == {"model.w"}


def test_bf16_mixed_on_cpu(tmp_path):
    ema = EMA()
    trainer = make_trainer(
        tmp_path, [ema], max_epochs=1, limit_train_batches=2, limit_val_batches=1, precision="bf16-mixed"
    )
    trainer.fit(TinyClassifier(), image_loader(8, 4), image_loader(8, 4, seed=1))
    assert "val_ema/acc1" in trainer.callback_metrics
    assert all(p.dtype == torch.float32 for p in ema.averaged.parameters())
    assert torch.isfinite(trainer.callback_metrics["val_ema/loss"])


def test_without_buffer_averaging_buffers_are_copied():
    model = TinyClassifier()
    average = copy.deepcopy(model)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.add_(1.0)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    ema_update_(TensorPairs(average, model, use_buffers=False), 0.5)
    for name, buffer in model.named_buffers():
        assert torch.equal(dict(average.named_buffers())[name], buffer), name
    assert not torch.equal(next(average.parameters()), next(model.parameters()))  # parameters still averaged


class Top1Only(TinyClassifier):
    """A module that defines its own evaluation metrics: the EMA callback must use those, not its own."""

    def evaluation_metrics(self, prefix: str) -> MetricCollection:
        return MetricCollection({"acc1": MulticlassAccuracy(NUM_CLASSES, top_k=1, average="micro")}, prefix=prefix)


def test_ema_evaluates_with_the_module_metric_definitions(tmp_path):
    trainer = make_trainer(tmp_path, [EMA()], max_epochs=1, limit_train_batches=2, limit_val_batches=1)
    trainer.fit(Top1Only(), image_loader(8, 4), image_loader(8, 4, seed=1))
    logged = {name for name in trainer.callback_metrics if name.startswith("val_ema/")}
    assert logged == {"val_ema/acc1"}
