"""Training throughput of EfficientNet-B0..B7 at native resolution: `effnet fit` against a bare PyTorch loop.

For each variant and memory format (channels_last, NCHW) it measures two paths on the same data shape:
- framework: `effnet fit --config configs/b0_cifar.yaml` (the paper recipe: RMSpropTF, EMA, LR schedule,
  non-finite guard, checkpointing, per-batch resize on the device, TensorBoard logging), run in process through
  `effnet_lightning.cli.main` on CIFAR-10 stand-ins in the real format (benchmarks/cifar_standin.py), with the
  variant, batch size and memory format given as command-line overrides;
- bare: timm's `efficientnet_bN` with the same dropout and drop-path, RMSpropTF, timm's `ModelEmaV3`, label
  smoothing and the same on-device resize and normalization, fed uint8 32 px batches already on the device
  (no loader): the ceiling the framework is compared with.

Step times come from the device's own timeline: a CUDA event at the start of every step (no synchronisation
inside the timed steps), `time.perf_counter` on the CPU. Per path: the median, fastest and slowest of `--steps`
timed steps after `--warmup` untimed ones, as img/s; peak memory (`torch.cuda.max_memory_allocated`, GiB);
parameter count (both paths should agree). `ratio` = framework median step time / bare median step time (the
goal in the speed issue is <= 1.03). CSV on stdout; the device, driver, versions and command on stderr.

    uv run python benchmarks/gpu_throughput.py                       # on a GPU: B0..B7, bf16, both formats
    uv run python benchmarks/gpu_throughput.py --compile             # also torch.compile'd rows
    uv run python benchmarks/gpu_throughput.py --device cpu --variants b0 --resolution 32 --steps 3   # smoke test

No GPU numbers were measured by the session that wrote this script (see docs/gpu.md and BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import timm
import torch
import torch.nn.functional as F
from cifar_standin import checksum_constants, write_cifar10  # benchmarks/cifar_standin.py, beside this script
from timm.optim import RMSpropTF
from timm.utils import ModelEmaV3
from torchvision.datasets import CIFAR10

from effnet_lightning.cli import main as effnet_main
from effnet_lightning.model.scaling import OFFICIAL_VARIANTS, official  # the official table: resolution, dropout

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "b0_cifar.yaml"  # the recipe; the variant is overridden per row
# Per-device batch per variant on one GPU: large enough to fill an H100/H200, small enough for 80 GB at B7.
# Not tuned: an out-of-memory step prints an "OOM" row instead of stopping the run.
GPU_BATCH = {"b0": 128, "b1": 128, "b2": 96, "b3": 64, "b4": 48, "b5": 32, "b6": 24, "b7": 16}
CPU_BATCH = 8  # the smoke test on a 2-core CPU
DROP_PATH = 0.2  # configs/b*_cifar.yaml: survival 0.8 at the last block
LABEL_SMOOTHING = 0.1  # paper recipe, as in the configs
LR = 0.016  # per 256 images (paper); speed does not depend on it
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # CIFAR-10 channel statistics, 0-1 scale
NUM_CLASSES = 10
VAL_SIZE = 100  # held-out stand-ins: the framework validates one batch after the timed steps
# CLI keys this script overrides, kept in one place.
VARIANT_KEYS = {
    "variant": "--model.scaling.variant",
    "dropout": "--model.dropout",
    "resolution": "--model.scaling.resolution",
}
CHANNELS_LAST_KEY = "--model.channels_last"
COLUMNS = [
    "variant",
    "resolution",
    "batch",
    "precision",
    "memory_format",
    "mode",
    "path",
    "img_s_median",
    "img_s_min",
    "img_s_max",
    "peak_mem_gib",
    "params",
    "ratio",
    "note",
]

STEP_STARTS: list = []  # what StepClock records in the framework run (events or perf_counter times)


class StepClock(pl.Callback):
    """Marks the start of every training step on the device's timeline; no synchronisation."""

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        STEP_STARTS.append(mark(pl_module.device))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        STEP_STARTS.append(sum(p.numel() for p in pl_module.parameters()))  # first entry: the parameter count


def mark(device: torch.device):
    if device.type == "cuda":
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event
    return time.perf_counter()


def step_seconds(marks: list, warmup: int) -> list[float]:
    """Seconds between consecutive step starts, after `warmup` steps; synchronises once, at the end."""
    marks = marks[warmup:]
    if marks and isinstance(marks[0], torch.cuda.Event):
        marks[-1].synchronize()
        return [a.elapsed_time(b) / 1000 for a, b in zip(marks[:-1], marks[1:], strict=True)]
    return [b - a for a, b in zip(marks[:-1], marks[1:], strict=True)]


def summary(seconds: list[float], batch: int) -> dict[str, float]:
    return {
        "img_s_median": batch / statistics.median(seconds),
        "img_s_min": batch / max(seconds),
        "img_s_max": batch / min(seconds),
    }


def peak_gib(device: torch.device) -> float | str:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else ""


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def bare_loop(args, variant: str, resolution: int, batch: int, channels_last: bool, compiled: bool) -> dict:
    """fwd + bwd + RMSpropTF + EMA on timm's model, inputs resized and normalized on the device."""
    device = torch.device(args.device)
    model = timm.create_model(
        f"efficientnet_{variant}",
        num_classes=NUM_CLASSES,
        drop_rate=official(variant).dropout,
        drop_path_rate=DROP_PATH,
    ).to(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    params = sum(p.numel() for p in model.parameters())
    optimizer = RMSpropTF(model.parameters(), lr=LR * batch / 256, alpha=0.9, momentum=0.9, eps=1e-3, weight_decay=1e-5)
    ema = ModelEmaV3(model, decay=0.9999, use_warmup=True)
    step = torch.compile(model) if compiled else model
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1) * 255
    images = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, device=device)
    targets = torch.randint(0, NUM_CLASSES, (batch,), device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16-mixed")
    marks = []
    for i in range(args.warmup + args.steps + 1):
        marks.append(mark(device))
        x = F.interpolate(images.float(), size=(resolution, resolution), mode="bilinear", antialias=True)
        x = ((x - mean) / std).contiguous(memory_format=memory_format)
        with autocast:
            loss = F.cross_entropy(step(x), targets, label_smoothing=LABEL_SMOOTHING)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.update(model, step=i)
    return {**summary(step_seconds(marks, args.warmup), batch), "params": params}


def framework(args, variant: str, resolution: int, batch: int, channels_last: bool, compiled: bool) -> dict:
    """`effnet fit` on the recipe config, timed by StepClock; returns {} fields plus a note on failure."""
    STEP_STARTS.clear()
    run = Path(tempfile.mkdtemp(prefix=f"fit_{variant}_", dir=args.workdir))
    overrides = [
        f"{VARIANT_KEYS['variant']}={variant}",
        f"{VARIANT_KEYS['dropout']}={official(variant).dropout}",
        f"{CHANNELS_LAST_KEY}={str(channels_last).lower()}",
        f"--data.init_args.data_dir={args.data}",
        "--data.init_args.download=false",
        f"--data.init_args.val_size={VAL_SIZE}",
        f"--data.init_args.batch_size={batch}",
        f"--data.init_args.num_workers={args.workers}",
        f"--trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}",
        f"--trainer.precision={args.precision}",
        "--trainer.max_epochs=1",
        f"--trainer.limit_train_batches={args.warmup + args.steps + 1}",
        "--trainer.limit_val_batches=1",
        "--trainer.num_sanity_val_steps=0",
        "--trainer.enable_model_summary=false",
        f"--trainer.enable_progress_bar={str(args.progress_bar).lower()}",
        f"--trainer.default_root_dir={run}",
        '--trainer.callbacks+={"class_path": "__main__.StepClock"}',
    ]
    if resolution != official(variant).resolution:
        overrides.append(f"{VARIANT_KEYS['resolution']}={resolution}")
    if compiled:
        overrides += shlex.split(args.framework_compile)
    argv, sys.argv = sys.argv, ["effnet"]  # main(args) as from the command line; this script's own argv is not its
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries the CSV only
            rc = effnet_main(["fit", "--config", str(CONFIG), *overrides])
    finally:
        sys.argv = argv
    if rc != 0 or len(STEP_STARTS) < args.warmup + 3:
        return {"note": f"effnet fit exited {rc} after {max(len(STEP_STARTS) - 1, 0)} steps"}
    params, marks = STEP_STARTS[0], STEP_STARTS[1:]
    return {**summary(step_seconds(marks, args.warmup), batch), "params": params}


def environment(args) -> list[str]:
    lines = [
        f"date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
        f"command: {shlex.join([sys.executable, *sys.argv])}",
        f"python {platform.python_version()}, torch {torch.__version__}, lightning {pl.__version__}, "
        f"timm {timm.__version__}, cuda {torch.version.cuda}, cudnn {torch.backends.cudnn.version()}",
    ]
    if args.device == "cuda":
        query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            lines.append("nvidia-smi: " + subprocess.check_output(query, text=True).strip())
        lines.append(f"device: {torch.cuda.get_device_name()}")
    else:
        lines.append(f"device: CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--variants", default=",".join(OFFICIAL_VARIANTS), help="comma-separated, e.g. b0,b3")
    parser.add_argument("--resolution", type=int, help="override every variant's native resolution (px)")
    parser.add_argument("--batch-size", type=int, help=f"default: {GPU_BATCH} on cuda, {CPU_BATCH} on cpu")
    parser.add_argument("--precision", help="Lightning precision; default bf16-mixed on cuda, 32-true on cpu")
    parser.add_argument("--memory-formats", default="channels_last,nchw")
    parser.add_argument("--paths", default="framework,bare")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per row")
    parser.add_argument("--warmup", type=int, help="untimed steps first; default 10 on cuda (20 compiled), 1 on cpu")
    parser.add_argument("--workers", type=int, help="framework loader workers; default 8 on cuda, 0 on cpu")
    parser.add_argument("--compile", action="store_true", help="add torch.compile'd rows after the eager ones")
    parser.add_argument(
        "--framework-compile",
        default="",
        help="effnet fit options that turn compilation on, once the speed issue adds them (e.g. '--model.compile "
        "true'); empty: compiled framework rows are skipped with a note",
    )
    parser.add_argument("--progress-bar", action="store_true", help="keep the progress bar on in the framework path")
    parser.add_argument("--workdir", type=Path, help="where the stand-ins and runs go (default: a temporary folder)")
    args = parser.parse_args(argv)
    on_gpu = args.device == "cuda"
    args.precision = args.precision or ("bf16-mixed" if on_gpu else "32-true")
    args.workers = args.workers if args.workers is not None else (8 if on_gpu else 0)
    if on_gpu and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no CUDA device; pass --device cpu for the smoke test")
    return args


def measure_pair(args, device: torch.device, variant: str, memory_format: str, compiled: bool) -> dict[str, dict]:
    """One CSV row per path for one (variant, memory format, eager/compiled) setting; `ratio` on the framework's."""
    batch, resolution = args.batches[variant], args.resolution or official(variant).resolution
    fn_args = (args, variant, resolution, batch, memory_format == "channels_last", compiled)
    rows = {}
    for path in args.paths.split(","):
        if path == "framework" and compiled and not args.framework_compile:
            rows[path] = {"note": "no --framework-compile options given"}
            continue
        reset_peak(device)
        try:
            row = (framework if path == "framework" else bare_loop)(*fn_args)
        except torch.cuda.OutOfMemoryError:
            row = {"note": "OOM"}
        rows[path] = {**row, "peak_mem_gib": peak_gib(device)} if "img_s_median" in row else row
    if "img_s_median" in rows.get("framework", {}) and "img_s_median" in rows.get("bare", {}):
        rows["framework"]["ratio"] = rows["bare"]["img_s_median"] / rows["framework"]["img_s_median"]
    fixed = {
        "variant": variant,
        "resolution": resolution,
        "batch": batch,
        "precision": args.precision,
        "memory_format": memory_format,
        "mode": "compiled" if compiled else "eager",
    }
    return {path: {**fixed, "path": path, **{k: round4(v) for k, v in row.items()}} for path, row in rows.items()}


def round4(value):
    return float(f"{value:.4g}") if isinstance(value, float) else value


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    print("\n".join(f"# {line}" for line in environment(args)), file=sys.stderr, flush=True)
    variants = [v.strip() for v in args.variants.split(",")]
    args.batches = {v: args.batch_size or (GPU_BATCH[v] if args.device == "cuda" else CPU_BATCH) for v in variants}
    with contextlib.ExitStack() as stack:
        if args.workdir is None:
            args.workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gpu_throughput_")))
        args.data = args.workdir / "cifar10"
        # enough stand-ins for the largest batch over (warm-up + timed + 1) steps, plus the held-out images
        steps = args.steps + (args.warmup if args.warmup is not None else 20) + 1
        needed = (max(args.batches.values()) * steps + VAL_SIZE) // NUM_CLASSES + 1
        for name, value in checksum_constants(write_cifar10(args.data, train_per_class=needed)).items():
            setattr(CIFAR10, name, value)  # torchvision accepts the stand-ins (their md5s)
        writer = csv.DictWriter(sys.stdout, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for compiled in [False, True] if args.compile else [False]:
            default_warmup = 1 if args.device == "cpu" else 20 if compiled else 10
            warmup = default_warmup if args.warmup is None else args.warmup
            run_args = argparse.Namespace(**{**vars(args), "warmup": warmup})
            for variant in variants:  # B0 first: a run cut off by a time limit still has the smaller models
                for memory_format in args.memory_formats.split(","):
                    writer.writerows(measure_pair(run_args, device, variant, memory_format, compiled).values())
                    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
