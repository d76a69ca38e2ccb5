"""Tiny LightningModules and data for the callback tests (independent of the project's module)."""

import lightning.pytorch as pl
import timm
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from effnet_lightning.train.module import CrossEntropy

NUM_CLASSES = 4
IMAGE_SIZE = 32  # px; timm's test_efficientnet trains at hundreds of img/s on 2 CPU cores here


def image_loader(num_samples: int, batch_size: int, seed: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(num_samples, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
    targets = torch.randint(0, NUM_CLASSES, (num_samples,), generator=generator)
    return DataLoader(TensorDataset(images, targets), batch_size=batch_size, shuffle=False)


def _accuracies(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    hits = logits.topk(min(5, logits.shape[1]), dim=1).indices == targets[:, None]
    return hits[:, :1].any(1).float().mean(), hits.any(1).float().mean()


class TinyClassifier(pl.LightningModule):
    """A timm EfficientNet in `self.model`, with the module contract the callbacks rely on."""

    def __init__(self, model_name: str = "test_efficientnet", drop_path_rate: float = 0.2, lr: float = 0.05):
        super().__init__()
        self.model = timm.create_model(model_name, num_classes=NUM_CLASSES, drop_path_rate=drop_path_rate)
        self.lr = lr

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def training_step(self, batch, batch_idx):
        images, targets = batch
        loss = F.cross_entropy(self(images), targets)
        self.log("train/loss", loss)
        return loss

    def _eval_step(self, batch, stage: str) -> None:
        images, targets = batch
        logits = self(images)
        acc1, acc5 = _accuracies(logits, targets)
        self.log(f"{stage}/loss", F.cross_entropy(logits, targets))
        self.log(f"{stage}/acc1", acc1)
        self.log(f"{stage}/acc5", acc5)

    def evaluation_metrics(self, prefix: str) -> MetricCollection:
        """The metric definitions the EMA callback evaluates the averaged weights with."""
        return MetricCollection(
            {
                "loss": CrossEntropy(),
                "acc1": MulticlassAccuracy(NUM_CLASSES, top_k=1, average="micro"),
                "acc5": MulticlassAccuracy(NUM_CLASSES, top_k=min(5, NUM_CLASSES), average="micro"),
            },
            prefix=prefix,
        )

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def predict_step(self, batch, batch_idx):
        return self(batch[0])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


class TinyLinear(pl.LightningModule):
    """A linear classifier with two param groups (different base LRs) for the LR schedule tests."""

    def __init__(self, lr: float = 0.1, with_scheduler: bool = False):
        super().__init__()
        self.body = torch.nn.Linear(8, 8)
        self.head = torch.nn.Linear(8, 2)
        self.lr = lr
        self.with_scheduler = with_scheduler

    def training_step(self, batch, batch_idx):
        inputs, targets = batch
        return F.cross_entropy(self.head(self.body(inputs)), targets)

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(
            [{"params": self.body.parameters()}, {"params": self.head.parameters(), "lr": self.lr / 10}],
            lr=self.lr,
        )
        if self.with_scheduler:
            return [optimizer], [torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)]
        return optimizer


def vector_loader(num_batches: int, batch_size: int = 2) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(num_batches * batch_size, 8, generator=generator)
    targets = torch.randint(0, 2, (num_batches * batch_size,), generator=generator)
    return DataLoader(TensorDataset(inputs, targets), batch_size=batch_size, shuffle=False)


class LRRecorder(pl.Callback):
    """Records {global_step: [lr of each param group]} right before each optimizer update."""

    def __init__(self):
        self.lrs: dict[int, list[float]] = {}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.lrs[trainer.global_step] = [group["lr"] for group in optimizer.param_groups]


SANITY_STEPS = 2  # Lightning's default num_sanity_val_steps, for the tests that keep its sanity check


def make_trainer(tmp_path, callbacks, **kwargs) -> pl.Trainer:
    """A quiet CPU Trainer (no logger, checkpoints, bar, summary or sanity check unless asked) in tmp_path."""
    defaults = dict(
        default_root_dir=tmp_path,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    return pl.Trainer(callbacks=callbacks, **(defaults | kwargs))
