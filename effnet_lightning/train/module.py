"""EfficientNetModule: the LightningModule that trains a scaled EfficientNet.

Its constructor arguments are the `model:` section of a config. The network is `create_model(...)`, the optimizer
timm's (RMSpropTF by default, the paper's), the metrics torchmetrics'. The learning rate is given per 256 images
and multiplied by the global batch (batch × devices × nodes × gradient accumulation) when training starts; timm's
scheduler then sets it before every optimizer update (the paper's warm-up and decay, see lr_schedule.py).
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Any, Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from jsonargparse import Namespace
from lightning.pytorch.utilities import rank_zero_only
from timm.loss import SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from effnet_lightning.errors import ConfigError
from effnet_lightning.model import scaling as sc
from effnet_lightning.model.flops import cost
from effnet_lightning.model.grad_checkpointing import batchnorm_statistics_frozen
from effnet_lightning.model.network import DROP_PATH_RATE, TF_BN_EPS, TF_BN_MOMENTUM, create_model
from effnet_lightning.train import freezing
from effnet_lightning.train.checkpoint_format import (
    CHECKPOINT_GLOBALS,
    CLASS_NAMES_KEY,
    DATA_CONFIG_KEY,
    Weights,
    allow_globals,
    checkpoint_globals,
    data_config,
    default_class_names,
    remove_globals,
    spec_of,
)
from effnet_lightning.train.initial_weights import load_into, read_initial_weights
from effnet_lightning.train.lr_schedule import Schedule, create_lr_scheduler, epochs_done, updates_per_epoch
from effnet_lightning.train.mixing import mixing

__all__ = ["CompileMode", "CrossEntropy", "EfficientNetModule", "eval_data_config", "resolution_of"]

log = logging.getLogger(__name__)

ON_DEVICE_INTERPOLATION = "bilinear"  # datamodules/base.py: the per-batch resize to the model's resolution
WHOLE_IMAGE = 1.0  # crop_pct of a datamodule that only resizes (CIFAR's, on the device): nothing is cropped
TRAIN_PASSES = 3  # a training step costs about 3 forward passes (Kaplan et al. 2020, arXiv 2001.08361, sec. 2.1)
CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]  # torch.compile
LR_REFERENCE_BATCH = 256  # images; the paper's LR 0.016 is quoted per 256 images (Goyal et al. linear scaling)


class EfficientNetModule(pl.LightningModule):
    """Classification training of a scaled EfficientNet: cross-entropy with label smoothing, top-1/top-5."""

    def __init__(
        self,
        scaling: sc.ScalingSpec = sc.ScalingSpec(),
        num_classes: int = 1000,
        dropout: float | None = None,
        drop_path_rate: float = DROP_PATH_RATE,
        bn_momentum: float = TF_BN_MOMENTUM,
        bn_eps: float = TF_BN_EPS,
        label_smoothing: float = 0.1,
        optimizer: Literal["rmsproptf", "sgd", "adamw"] = "rmsproptf",
        lr: float = 0.016,
        weight_decay: float = 1e-5,
        momentum: float = 0.9,
        rmsprop_decay: float = 0.9,
        opt_eps: float = 1e-3,
        lr_schedule: Schedule = "step",
        warmup_epochs: float = 5.0,
        warmup_lr_factor: float = 0.0,
        decay_rate: float = 0.97,
        decay_epochs: float = 2.4,
        cosine_epochs: float | None = None,
        min_lr: float = 0.0,
        channels_last: bool | None = None,
        grad_checkpointing: bool = False,
        compile: bool | CompileMode = False,
        compile_backend: str = "inductor",
        init: str | None = None,
        init_weights: Weights = "ema",
        reset_classifier: bool = False,
        frozen_epochs: freezing.FrozenEpochs = 0,
        layer_decay: float | None = None,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        mixup_prob: float = 1.0,
        mixup_switch_prob: float = 0.5,
    ) -> None:
        """The defaults are the paper's ImageNet recipe (§5.2 and TF's main.py), cited once here.

        Args:
            scaling: network size: variant (b0..b7), phi, or depth/width multipliers; resolution overrides the
                input size (the datamodule's resolution is linked from it).
            num_classes: classifier outputs; linked from the datamodule's num_classes.
            dropout: classifier dropout; None: the scaling's (0.2 for B0 to 0.5 for B7).
            drop_path_rate: stochastic depth, ramped over the blocks: block i of N drops rate * i / N, so block 0
                never drops and the last block drops rate * (N-1) / N; paper 0.2 (survival 0.8).
            bn_momentum: BatchNorm momentum, PyTorch convention (TF's 0.99 is 0.01 here); 0.1 for short runs.
            bn_eps: BatchNorm epsilon; paper/TF 1e-3.
            label_smoothing: cross-entropy label smoothing; paper 0.1.
            optimizer: rmsproptf (timm's TF-style RMSProp, the paper's), sgd (Nesterov) or adamw.
            lr: learning rate per 256 images, scaled by the global batch when training starts; paper 0.016
                (RMSProp 0.256 at batch 4096).
            weight_decay: L2 on weights, never on BatchNorm parameters or biases; paper 1e-5.
            momentum: momentum of rmsproptf and sgd; paper 0.9.
            rmsprop_decay: RMSProp's moving-average decay (PyTorch's alpha); paper 0.9.
            opt_eps: epsilon of rmsproptf and adamw; paper 1e-3.
            lr_schedule: step (warm-up, then x decay_rate every decay_epochs; the paper's), cosine or constant.
            warmup_epochs: epochs of linear warm-up (fractions allowed); paper 5.
            warmup_lr_factor: warm-up starts at lr x this; TF 0.
            decay_rate: step schedule: factor per decay_epochs; paper 0.97.
            decay_epochs: step schedule: epochs between decays, staircase, counted from update 0 (TF); paper 2.4.
            cosine_epochs: cosine schedule: epochs to reach min_lr; None: trainer.max_epochs.
            min_lr: cosine schedule: final LR per 256 images (scaled by the global batch like lr).
            channels_last: NHWC memory format; None: on when training on CUDA.
            grad_checkpointing: recompute each block's activations in backward (timm's set_grad_checkpointing):
                about 10x fewer saved activation bytes for about a third more compute.
            compile: torch.compile the network in place when fit starts (checkpoint keys stay plain); a string
                is the compile mode.
            compile_backend: torch.compile backend; inductor for speed, aot_eager or eager (compile fast) to debug.
            init: where the weights start; None: random. A timm model name or tag (efficientnet_b0.ra_in1k,
                loaded by timm: its cache and hub settings apply), a timm .safetensors/.pth file, an `effnet export`
                folder or an `effnet fit` checkpoint (.ckpt). Every tensor must fit; a classifier for another
                number of classes is re-initialised. The datamodule then normalises with the weights' mean/std
                unless its config sets its own (initial_weights.py).
            init_weights: of a .ckpt init: its EMA weights (default) or the raw ones.
            reset_classifier: re-initialise the classifier also when the class counts match (other classes).
            frozen_epochs: epochs the backbone stays frozen (the classifier trains alone; frozen BatchNorm keeps
                its loaded statistics), then everything trains; "all": frozen for the whole run (a linear probe).
            layer_decay: layer-wise LR decay over timm's parameter groups (stem, each block, head conv; the
                classifier gets the full LR, each group below it x layer_decay more); None: off.
            mixup_alpha: timm Mixup's Beta(alpha, alpha) mixing of image pairs; 0: off.
            cutmix_alpha: timm CutMix's Beta(alpha, alpha) box size; 0: off. Either needs an even batch size;
                train/acc1 is not logged under mixed targets.
            mixup_prob: share of batches that are mixed when mixup or cutmix is on.
            mixup_switch_prob: with both on, the share of mixed batches that use CutMix.
        """
        for name, rate in (("dropout", dropout), ("drop_path_rate", drop_path_rate)):
            if rate is not None and not 0.0 <= rate < 1.0:
                raise ConfigError(f"model.{name} must be in [0, 1), got {rate}")
        super().__init__()
        self.save_hyperparameters()
        self.model = create_model(
            scaling,
            num_classes=num_classes,
            dropout=dropout,
            drop_path_rate=drop_path_rate,
            bn_momentum=bn_momentum,
            bn_eps=bn_eps,
        )
        if frozen_epochs != "all" and frozen_epochs < 0:
            raise ConfigError(f"model.frozen_epochs must be >= 0 or 'all', got {frozen_epochs}")
        if layer_decay is not None and not 0 < layer_decay <= 1:
            raise ConfigError(f"model.layer_decay must be in (0, 1] (or null: off), got {layer_decay}")
        self.mixup = mixing(num_classes, label_smoothing, mixup_alpha, cutmix_alpha, mixup_prob, mixup_switch_prob)
        # The source's preprocessing (mean, std, interpolation, crop_pct) the datamodule adopts; None: not recorded
        self.pretrained_preprocessing: dict[str, Any] | None = None
        if init is not None:
            pretrained = read_initial_weights(init, init_weights)
            if pretrained.bn_eps is not None and pretrained.bn_eps != bn_eps:
                _note(
                    f"effnet: note: {init} was trained with BatchNorm eps {pretrained.bn_eps:g}, this network has "
                    f"{bn_eps:g} (model.bn_eps)"
                )
            load_into(self.model, pretrained, reset_classifier)
            self.pretrained_preprocessing = pretrained.preprocessing
        self.model.set_grad_checkpointing(grad_checkpointing)  # ~10x fewer saved activation bytes (memory.py)
        self._macs_per_image: int | None = None  # counted on first use (flops_per_batch)
        self._batch_images = 0  # images in the last batch forward() saw (flops_per_batch; a short last batch)
        # Lightning's model summary counts the FLOPs of one forward pass on this (else "Total FLOPs: 0")
        self.example_input_array = torch.zeros(1, 3, self.resolution, self.resolution)
        if lr <= 0 or not 0 <= label_smoothing < 1:
            raise ConfigError(f"lr must be > 0 and label_smoothing in [0, 1), got lr={lr}, {label_smoothing=}")
        if warmup_epochs < 0 or decay_epochs <= 0 or not 0 < decay_rate <= 1 or not 0 <= warmup_lr_factor <= 1:
            raise ConfigError(
                "model.warmup_epochs must be >= 0, decay_epochs > 0, decay_rate in (0, 1] and warmup_lr_factor in "
                f"[0, 1]; got {warmup_epochs}, {decay_epochs}, {decay_rate}, {warmup_lr_factor}."
            )
        self.train_acc1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        # The name of each output index: from the datamodule at setup, from the checkpoint when one is loaded
        # (the names the weights were trained with win); saved in every checkpoint as `class_names`.
        self.class_names: list[str] = default_class_names(num_classes)
        # The evaluation preprocessing of the data it was trained on (timm's data-config keys), for exports.
        self.data_config: dict | None = None
        self.val_metrics = self.evaluation_metrics("val/")
        self._allowed_globals: list[Any] = []  # what setup put on torch's weights-only allow-list until the restore
        self.test_metrics = self.evaluation_metrics("test/")

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> EfficientNetModule:
        """Lightning's, with the objects an effnet checkpoint names (its ScalingSpec) allowed for a weights-only
        load."""
        with checkpoint_globals():
            return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)

    def evaluation_metrics(self, prefix: str) -> MetricCollection:
        """Fresh metrics of one evaluation pass, updated with (logits, targets): the one definition of val/*,
        test/* and, for the averaged weights, the EMA callback's val_ema/* and test_ema/*."""
        num_classes = self.hparams.num_classes
        top5 = min(5, num_classes)  # top-5 of fewer than five classes is always 100%; report top-k instead
        return MetricCollection(
            {
                "loss": CrossEntropy(),
                "acc1": MulticlassAccuracy(num_classes, top_k=1, average="micro"),
                "acc5": MulticlassAccuracy(num_classes, top_k=top5, average="micro"),
            },
            prefix=prefix,
        )

    @property
    def scaling(self) -> sc.Scaling:
        return self.model.scaling

    @property
    def resolution(self) -> int:
        """Input side in px the datamodule should deliver (linked into `data.resolution` by the CLI)."""
        return self.model.scaling.resolution

    @property
    def macs_per_image(self) -> int:
        """MACs of one forward pass of one image, counted once by arithmetic from the architecture (flops.py)."""
        if self._macs_per_image is None:
            scaling = self.scaling
            self._macs_per_image = cost(scaling.depth, scaling.width, self.resolution, self.hparams.num_classes).macs
        return self._macs_per_image

    @property
    def flops_per_batch(self) -> int:
        """FLOPs of the last per-device batch, read by Lightning's ThroughputMonitor after every batch: 2 FLOPs per
        MAC of the forward pass; a training batch counts 3 forward passes (forward and the two halves of backward),
        an evaluation batch one."""
        passes = TRAIN_PASSES if self.training else 1
        return 2 * passes * self.macs_per_image * self._batch_images

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self._batch_images = images.shape[0]  # a host int: no device sync
        if self._channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if self.training and self.backbone_frozen:
            return freezing.head_only_logits(self.model, images)  # backward stops at the features
        return self.model(images)  # (B, num_classes) logits

    @property
    def _channels_last(self) -> bool:
        wanted = self.hparams.channels_last
        return self.device.type == "cuda" if wanted is None else wanted

    def setup(self, stage: str) -> None:
        datamodule = self.trainer.datamodule  # setup runs under a trainer
        if self.pretrained_preprocessing is not None and hasattr(datamodule, "use_pretrained_preprocessing"):
            datamodule.use_pretrained_preprocessing(self.pretrained_preprocessing)
        if stage == "fit" and self.mixup is not None and getattr(datamodule, "batch_size", 0) % 2:
            raise ConfigError(
                f"mixup/cutmix mixes each batch with itself reversed and needs an even data.batch_size, got "
                f"{datamodule.batch_size}"
            )
        names = getattr(datamodule, "class_names", None)
        if names is not None and len(names) == self.hparams.num_classes:
            self.class_names = [str(name) for name in names]
        if datamodule is not None and hasattr(datamodule, "mean") and hasattr(datamodule, "std"):
            self.data_config = eval_data_config(datamodule, self.resolution)

        # The Trainer restores `ckpt_path` right after setup, weights-only (Lightning 2.6's default): its ScalingSpec
        # is allowed from the end of setup until the stage starts, whatever Trainer and checkpoint_io run this
        # module. Not until teardown: Lightning skips teardown when the run raises, and the list would stay wide.
        if not self._allowed_globals:
            self._allowed_globals = allow_globals(CHECKPOINT_GLOBALS)

    def _restored(self) -> None:
        """The checkpoint, if any, is loaded: torch's allow-list goes back to what it was."""
        remove_globals(self._allowed_globals)
        self._allowed_globals = []

    def on_validation_start(self) -> None:
        self._restored()

    def on_test_start(self) -> None:
        self._restored()

    def on_predict_start(self) -> None:
        self._restored()

    def teardown(self, stage: str) -> None:
        self._restored()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[CLASS_NAMES_KEY] = list(self.class_names)  # plain strings: loads with weights_only=True
        if self.data_config is not None:
            checkpoint[DATA_CONFIG_KEY] = dict(self.data_config)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        names = checkpoint.get(CLASS_NAMES_KEY)
        if names is not None and len(names) == self.hparams.num_classes:
            self.class_names = list(names)
        self.data_config = checkpoint.get(DATA_CONFIG_KEY, self.data_config)

    def on_fit_start(self) -> None:
        self._restored()
        if self._channels_last:
            self.model.to(memory_format=torch.channels_last)
        if self.hparams.compile is not False:
            self.compile_network()

    def compile_network(self) -> None:
        """`nn.Module.compile` compiles the network in place: parameter names stay `model.<timm name>` (no
        `_orig_mod.`), so checkpoints load strictly into an uncompiled module and into plain timm.

        Runs in on_fit_start, which Lightning calls after the callbacks' on_fit_start: the EMA callback's copy,
        made there and used for evaluation only, stays eager and costs no second compilation."""
        mode = None if self.hparams.compile is True else self.hparams.compile
        self.model.compile(mode=mode, backend=self.hparams.compile_backend)

    @property
    def backbone_frozen(self) -> bool:
        """Whether this epoch trains the classifier alone (freezing.py): a function of the epoch only, so a
        resumed run is in the phase an uninterrupted one would be."""
        return freezing.frozen_at(self.current_epoch, self.hparams.frozen_epochs)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Frozen backbone modules in eval mode (loaded BatchNorm statistics kept, no drop-path). Set before every
        batch: Lightning puts the whole module back in train mode after each validation."""
        if self.hparams.frozen_epochs:
            freezing.set_backbone_training(self.model, not self.backbone_frozen)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, targets = batch
        mixed = self.mixup(images, targets) if self.mixup is not None else None
        if mixed is not None:
            images = mixed[0]
        logits = self(images)
        if mixed is not None:  # soft targets, label smoothing included (timm's Mixup applies it)
            loss = SoftTargetCrossEntropy()(logits, mixed[1])
        else:
            loss = F.cross_entropy(logits, targets, label_smoothing=self.hparams.label_smoothing)
            self.train_acc1(logits, targets)  # under mixed targets no accuracy is honest: not logged
            self.log("train/acc1", self.train_acc1, on_step=True, on_epoch=False, prog_bar=True)
        self.log("train/loss", loss, prog_bar=True)
        # the LR of this update, a host float: no sync; the classifier's (the largest) under layer_decay
        lr = max(group["lr"] for group in self.trainer.optimizers[0].param_groups)
        self.log("train/lr", lr, on_step=True, on_epoch=False, batch_size=1)
        if self.backbone_frozen:
            loss = loss + freezing.anchor(self.model)  # + 0: DDP sees every parameter take part
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.backbone_frozen:
            freezing.drop_backbone_grads(self.model)  # the frozen backbone is not updated (no decay, no momentum)

    def on_train_epoch_start(self) -> None:
        """One line when the phase changes (and at the start): what trains now."""
        frozen_epochs = self.hparams.frozen_epochs
        if frozen_epochs and (self.current_epoch == 0 or self.current_epoch == frozen_epochs):
            what = "classifier only (backbone frozen)" if self.backbone_frozen else "all layers (backbone unfrozen)"
            _note(f"effnet: epoch {self.current_epoch}: training {what}")

    def backward(self, loss: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        """With gradient checkpointing, backward re-runs each block's forward: BatchNorm's running statistics must
        not count the batch a second time (grad_checkpointing.py)."""
        with batchnorm_statistics_frozen(self.model) if self.model.grad_checkpointing else nullcontext():
            super().backward(loss, *args, **kwargs)

    def _evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], metrics: MetricCollection) -> torch.Tensor:
        images, targets = batch
        logits = self(images)
        metrics.update(logits, targets)
        # Metric objects: Lightning computes (all ranks together) and resets them at the end of the epoch.
        self.log_dict(metrics, prog_bar=metrics is self.val_metrics)
        return logits

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """(B, num_classes) logits: callbacks (confusion matrix, sample grid) read them as `outputs`."""
        return self._evaluate(batch, self.val_metrics)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._evaluate(batch, self.test_metrics)

    def predict_step(self, batch: torch.Tensor | tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        """Class probabilities, (B, num_classes)."""
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(images).softmax(dim=-1)

    def global_batch_size(self) -> int:
        """Images per optimizer update across all processes: batch × devices × nodes × accumulation."""
        per_device = getattr(self.trainer.datamodule, "batch_size", None)
        if per_device is None:
            raise ConfigError(
                "the datamodule must have a `batch_size` attribute so the LR can be scaled per 256 images"
            )
        return per_device * self.trainer.world_size * self.trainer.accumulate_grad_batches

    def configure_optimizers(self) -> dict:
        """timm's optimizer, and timm's scheduler stepped after every optimizer update (`interval: step`)."""
        hp = self.hparams
        global_batch = self.global_batch_size()
        scale = global_batch / LR_REFERENCE_BATCH
        lr = hp.lr * scale
        _note(f"lr {hp.lr:g} per {LR_REFERENCE_BATCH} images × global batch {global_batch} → {lr:g}")
        extra = {"rmsproptf": {"alpha": hp.rmsprop_decay, "eps": hp.opt_eps}, "adamw": {"eps": hp.opt_eps}}
        optimizer = create_optimizer_v2(
            self.model,
            opt=hp.optimizer,  # timm: "sgd" is SGD with Nesterov momentum
            lr=lr,
            weight_decay=hp.weight_decay,
            momentum=hp.momentum,
            filter_bias_and_bn=True,  # no weight decay on 1-d parameters: BN weights/biases and conv/fc biases
            layer_decay=hp.layer_decay,  # groups with `lr_scale`, which timm's schedulers multiply in
            **extra.get(hp.optimizer, {}),
        )
        cosine_epochs = hp.cosine_epochs if hp.cosine_epochs is not None else self.trainer.max_epochs
        if hp.lr_schedule == "cosine" and (cosine_epochs is None or cosine_epochs <= 0):
            raise ConfigError("model.lr_schedule cosine needs an end: set model.cosine_epochs or trainer.max_epochs.")
        scheduler = create_lr_scheduler(
            optimizer,
            hp.lr_schedule,
            warmup_epochs=hp.warmup_epochs,
            warmup_lr=lr * hp.warmup_lr_factor,
            decay_rate=hp.decay_rate,
            decay_epochs=hp.decay_epochs,
            cosine_epochs=cosine_epochs,
            min_lr=hp.min_lr * scale,
        )
        if hp.layer_decay is not None:
            # timm's schedulers apply each group's lr_scale when they set an LR, but create_optimizer_v2 gives every
            # group the full LR: set the LR of update 0 now (constant schedule: once, for good)
            if scheduler is not None:
                scheduler.step_update(num_updates=0)
            else:
                for group in optimizer.param_groups:
                    group["lr"] = lr * group.get("lr_scale", 1.0)
        if scheduler is None:
            return {"optimizer": optimizer}
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def lr_scheduler_step(self, scheduler, metric) -> None:
        """Lightning calls this after each optimizer update; timm's schedulers take the time as `num_updates`.
        global_step updates are done, so this sets the LR of update number global_step."""
        scheduler.step_update(num_updates=epochs_done(self.global_step, updates_per_epoch(self.trainer)))


class CrossEntropy(MeanMetric):
    """Mean plain cross-entropy per sample, updated with (logits, targets): comparable across label smoothing."""

    def __init__(self) -> None:
        super().__init__(nan_strategy="disable")  # "disable": no NaN check, which would sync the device

    def update(self, logits: torch.Tensor, targets: torch.Tensor) -> None:  # type: ignore[override]
        super().update(F.cross_entropy(logits.float(), targets, reduction="none"))  # (N,)


def eval_data_config(datamodule: object, resolution: int) -> dict:
    """How the datamodule's validation images reach the network, as the checkpoint records it (`data_config`):
    its mean and std; its interpolation and crop_pct, or the on-device resize alone (CIFAR's: crop_pct 1.0); a
    folder datamodule's `eval_side_range` (datamodules/transforms.py)."""
    return data_config(
        resolution,
        datamodule.mean,
        datamodule.std,
        getattr(datamodule, "interpolation", ON_DEVICE_INTERPOLATION),
        getattr(datamodule, "crop_pct", WHOLE_IMAGE),
        getattr(datamodule, "eval_side_range", None),
    )


def resolution_of(scaling: sc.ScalingSpec | Namespace) -> int:
    """The input size (px) the `model.scaling` section implies; the CLI links it into `data.init_args.resolution`.

    The link runs at parse time, when jsonargparse hands over the section as a Namespace of the spec's fields."""
    return spec_of(scaling).resolve().resolution


@rank_zero_only
def _note(message: str) -> None:
    """One line on stderr under `effnet`, once per run (rank 0), not per process."""
    log.info(message)
