"""`effnet benchmark`: the command that measures train and inference img/s, peak memory, MACs and TFLOP/s of
scaled EfficientNets on this machine (measure.py says what each number is) and prints them as a table or CSV.

Every configuration is checked before anything runs: an impossible size, device or precision is a ConfigError
(one line, exit 2); a configuration whose memory estimate does not fit is skipped with the reason, and when none
fits, that is one line too.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable, Sequence

import torch

from effnet_lightning.errors import ConfigError, OneLineParser, outcome
from effnet_lightning.model import scaling as sc
from effnet_lightning.model.memory import available_memory_bytes, check_size, human_bytes
from effnet_lightning.tools.measure import AUTOCAST, Result, Setting, memory_shortfall, run, skipped_result
from effnet_lightning.tools.tables import csv_table, positive, real, text_table, variant
from effnet_lightning.train.precision import resolve_precision

__all__ = ["build_parser", "format_csv", "format_text", "main"]

log = logging.getLogger(__name__)


def format_text(results: Sequence[Result]) -> str:
    header = (
        f"{'name':<16} {'res':>4} {'batch':>5} {'precision':<10} {'train img/s (min-max)':>24} "
        f"{'infer img/s (min-max)':>24} {'peak mem':>9} {'GMACs':>6} {'train TF/s':>10}"
    )
    first = results[0]
    options = [f"device {first.device}", f"compile {first.compile or 'off'}"]
    options += [f"channels_last {'on' if first.channels_last else 'off'}"]
    options += [f"grad checkpointing {'on' if first.grad_checkpointing else 'off'}"]
    memory = "CUDA max_memory_allocated" if first.memory_source == "cuda_max_allocated" else "counted: weights, grads"
    if first.memory_source == "counted":
        memory += ", optimizer, EMA and saved activations"
    note = f"{', '.join(options)}; peak memory {memory}; img/s is the median of the timed steps"
    return text_table(header, map(_result_lines, results), [note])


def _result_lines(r: Result) -> str:
    """The result's row, and under it the framework-vs-bare line when that was measured."""
    if r.skipped:
        return f"{r.name:<16} {r.resolution:>4} {r.batch_size:>5} {r.precision:<10} skipped: {r.skipped}"
    line = (
        f"{r.name:<16} {r.resolution:>4} {r.batch_size:>5} {r.precision:<10} "
        f"{f'{r.train_img_s:.1f} ({r.train_min:.1f}-{r.train_max:.1f})':>24} "
        f"{f'{r.infer_img_s:.1f} ({r.infer_min:.1f}-{r.infer_max:.1f})':>24} "
        f"{human_bytes(r.peak_memory):>9} {r.macs / 1e9:>6.3f} {r.train_tflops:>10.4f}"
    )
    if r.overhead is None:
        return line
    return (
        f"{line}\n  vs bare: framework {r.framework_img_s:.1f} img/s, bare {r.bare_img_s:.1f} img/s, "
        f"framework step / bare step = {r.overhead:.3f}x"
    )


def format_csv(results: Sequence[Result]) -> str:
    return csv_table(Result, results)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number such as 8, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _device(text: str) -> str:
    if re.fullmatch(r"auto|cpu|cuda(:\d+)?", text) is None:
        raise argparse.ArgumentTypeError(f"choose auto, cpu, cuda or cuda:N, got {text!r}")
    return text


def build_parser(prog: str = "effnet benchmark") -> argparse.ArgumentParser:
    p = OneLineParser(
        prog=prog,
        description="Measure train and inference img/s, peak memory, MACs and TFLOP/s of scaled EfficientNets "
        "on this machine. Default: b0.",
    )
    p.add_argument("--variants", nargs="+", type=variant, metavar="bN", help="official variants at native sizes")
    p.add_argument("--phi", nargs="+", type=real, metavar="PHI", help="compound coefficients, e.g. -2 0 1.5")
    p.add_argument("--depth", type=positive, help="explicit depth multiplier on B0 (with --width)")
    p.add_argument("--width", type=positive, help="explicit width multiplier on B0")
    p.add_argument("--resolution", type=_count, help="input px for every model (default: each model's own)")
    p.add_argument(
        "--source-size",
        type=_count,
        help="px of the uint8 images before the on-device resize (default: the resolution; 32 for CIFAR)",
    )
    p.add_argument("--batch-size", type=_count, default=32, help="images per step (default %(default)s)")
    p.add_argument("--precision", default="auto", help="auto, 32-true, bf16-mixed or 16-mixed (default auto)")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory layout (fastest on CUDA)")
    p.add_argument(
        "--compile",
        nargs="?",
        const="default",
        default="",
        metavar="MODE",
        help="torch.compile the model (mode: default, reduce-overhead, max-autotune)",
    )
    p.add_argument("--grad-checkpointing", action="store_true", help="timm's set_grad_checkpointing(True)")
    p.add_argument("--device", type=_device, default="auto", help="auto (cuda if available), cpu, cuda or cuda:N")
    p.add_argument("--steps", type=_count, default=10, help="timed steps (default %(default)s)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default %(default)s)")
    p.add_argument("--num-classes", type=_count, default=1000, help="classifier size (default %(default)s)")
    p.add_argument("--vs-bare", action="store_true", help="also time the framework's step against the bare loop")
    p.add_argument("--format", choices=("text", "csv"), default="text")
    return p


def specs_of(args: argparse.Namespace) -> list[sc.ScalingSpec]:
    """The models the options name (default B0), each at `--resolution` px when given; every size is checked by
    arithmetic first, so an absurd one is refused at once."""
    px = args.resolution
    specs = [sc.ScalingSpec(variant=v, resolution=px) for v in args.variants or []]
    specs += [sc.ScalingSpec(phi=phi, resolution=px) for phi in args.phi or []]
    if args.depth or args.width:
        specs.append(sc.ScalingSpec(depth=args.depth, width=args.width, resolution=px))
    specs = specs or [sc.ScalingSpec(variant="b0", resolution=px)]
    for spec in specs:
        check_size(spec.resolve(), args.num_classes)
    return specs


def setting_of(args: argparse.Namespace) -> Setting:
    """The device and precision `auto` stands for here, checked against what this machine has."""
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    kind = torch.device(device).type
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: no CUDA device is visible here; use --device cpu")
    resolved = resolve_precision(args.precision, kind)
    if resolved.precision not in ("32-true", *AUTOCAST):
        raise ConfigError(f"--precision {args.precision}: choose auto, 32-true, bf16-mixed or 16-mixed")
    if resolved.precision == "16-mixed" and kind == "cpu":
        raise ConfigError("--precision 16-mixed needs a CUDA device (loss scaling); on a CPU use 32-true")
    if args.warmup < 0:
        raise ConfigError(f"--warmup must be 0 or more, got {args.warmup}")
    if resolved.warning:
        log.warning(f"effnet benchmark: warning: {resolved.warning}")
    return Setting(
        batch_size=args.batch_size,
        device=device,
        precision=resolved.precision,
        channels_last=args.channels_last,
        compile=args.compile,
        grad_checkpointing=args.grad_checkpointing,
        steps=args.steps,
        warmup=args.warmup,
        source_size=args.source_size,
        num_classes=args.num_classes,
    )


def main(argv: Sequence[str], available_memory: Callable[[torch.device], int] = available_memory_bytes) -> None:
    """`effnet benchmark`; `available_memory(device)` says how many bytes a configuration may use now. Raises a
    UserError for what the user can fix (errors.outcome reports it)."""
    args = build_parser().parse_args(argv)
    specs = specs_of(args)
    setting = setting_of(args)
    results = []
    for spec in specs:  # checked right before each run: the previous one's memory is free again
        reason = memory_shortfall(spec, setting, args.vs_bare, available_memory)
        try:
            results.append(skipped_result(spec, setting, reason) if reason else run(spec, setting, args.vs_bare))
        except torch.OutOfMemoryError as err:  # the estimate let it start, the device disagreed
            raise ConfigError(
                f"out of device memory at batch {setting.batch_size}; lower --batch-size or add "
                "--grad-checkpointing (effnet scale shows the memory per image)"
            ) from err
    if all(r.skipped for r in results):
        reasons = "; ".join(f"{r.name} at {r.resolution} px, batch {r.batch_size} {r.skipped}" for r in results)
        raise ConfigError(
            f"{reasons} (memory estimate, model/memory.py): lower --batch-size, add --grad-checkpointing or choose "
            "a smaller model"
        )
    print(format_csv(results) if args.format == "csv" else format_text(results))


if __name__ == "__main__":
    sys.exit(outcome("benchmark", lambda: main(sys.argv[1:])))
