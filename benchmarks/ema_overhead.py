"""Cost of one EMA update relative to one training step (fwd + bwd + optimizer), for EfficientNet-B0 and B3.

Compares this project's update (`effnet_lightning.callbacks.ema_update_`: one `_foreach_lerp_` + one
`_foreach_copy_`, decay a Python float) with what Lightning 2.6's stock `EMAWeightAveraging` runs
(`AveragedModel(avg_fn=get_ema_avg_fn(decay), use_buffers=True).update_parameters`, a Python loop per tensor),
and with torch's foreach variant (`multi_avg_fn=get_ema_multi_avg_fn`). Besides time it counts the aten ops
one update dispatches and the host-device syncs among them (`_local_scalar_dense`: `.item()`, `bool(tensor)`).

    uv run python benchmarks/ema_overhead.py                                  # CPU: B0, B3 at 128 px, batch 8
    uv run python benchmarks/ema_overhead.py --device cuda --resolution 224 --batch-size 64 --bf16

Each time is the median over `--steps` repetitions after `--warmup` untimed ones, synchronised on CUDA.
"""

import argparse
import copy
import datetime
import platform
import statistics
import time
from collections.abc import Callable

import timm
import torch
import torch.nn.functional as F
from effnet_lightning.callbacks import TensorPairs, ema_update_, tf_ema_decay
from timm.optim import RMSpropTF
from torch.optim.swa_utils import AveragedModel, get_ema_avg_fn, get_ema_multi_avg_fn
from torch.utils._python_dispatch import TorchDispatchMode

DECAY = 0.9999  # paper
LR_PER_256 = 0.016  # paper: lr 0.016 per 256 images


class OpCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def median_seconds(fn: Callable[[], None], device: torch.device, steps: int, warmup: int) -> float:
    times = []
    for index in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if index >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def count_ops(fn: Callable[[], None]) -> tuple[int, int]:
    with OpCounter() as counter:
        fn()
    return len(counter.ops), counter.ops.count("aten._local_scalar_dense.default")


def bench_variant(variant: str, args: argparse.Namespace) -> list[dict]:
    device = torch.device(args.device)
    model = timm.create_model(f"efficientnet_{variant}", num_classes=1000, drop_path_rate=0.2).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = RMSpropTF(  # paper: RMSProp decay 0.9, momentum 0.9, eps 1e-3, weight decay 1e-5
        model.parameters(),
        lr=LR_PER_256 * args.batch_size / 256,
        alpha=0.9,
        momentum=0.9,
        eps=1e-3,
        weight_decay=1e-5,
    )
    images = torch.randn(args.batch_size, 3, args.resolution, args.resolution, device=device)
    if args.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    targets = torch.randint(0, 1000, (args.batch_size,), device=device)

    def train_step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            loss = F.cross_entropy(model(images), targets, label_smoothing=0.1)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    ours = TensorPairs(copy.deepcopy(model), model)
    step = [0]

    def ours_update() -> None:
        step[0] += 1
        ema_update_(ours, tf_ema_decay(step[0], DECAY))

    stock = AveragedModel(model, avg_fn=get_ema_avg_fn(DECAY), use_buffers=True)  # = EMAWeightAveraging
    foreach = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(DECAY), use_buffers=True)
    stock.update_parameters(model)  # the first call only copies
    foreach.update_parameters(model)

    train = median_seconds(train_step, device, args.steps, args.warmup)
    rows = []
    for name, fn in (
        ("ours: foreach lerp+copy", ours_update),
        ("Lightning EMAWeightAveraging (avg_fn)", lambda: stock.update_parameters(model)),
        ("AveragedModel + get_ema_multi_avg_fn", lambda: foreach.update_parameters(model)),
    ):
        seconds = median_seconds(fn, device, max(args.steps, 20), args.warmup)
        ops, syncs = count_ops(fn)
        rows.append(
            dict(
                variant=variant,
                update=name,
                tensors=len(ours),
                ema_ms=seconds * 1e3,
                train_ms=train * 1e3,
                percent=100 * seconds / train,
                aten_ops=ops,
                host_syncs=syncs,
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--variants", nargs="+", default=["b0", "b3"])
    parser.add_argument("--resolution", type=int, default=128, help="px; training-step input size")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="timed repetitions (EMA: at least 20)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed repetitions first")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast in the training step")
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()

    device_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor()
    print(
        f"# {datetime.date.today()} | torch {torch.__version__} | timm {timm.__version__} | {args.device} "
        f"({device_name or platform.machine()}, {torch.get_num_threads()} threads) | "
        f"{args.resolution} px, batch {args.batch_size}, bf16={args.bf16}, channels_last={args.channels_last}"
    )
    print("| model | EMA update | tensors | EMA ms | train step ms | EMA / step | aten ops | host syncs |")
    print("|---|---|---|---|---|---|---|---|")
    for variant in args.variants:
        for row in bench_variant(variant, args):
            print(
                f"| {row['variant']} | {row['update']} | {row['tensors']} | {row['ema_ms']:.2f} | "
                f"{row['train_ms']:.1f} | {row['percent']:.2f}% | {row['aten_ops']} | {row['host_syncs']} |"
            )


if __name__ == "__main__":
    main()
