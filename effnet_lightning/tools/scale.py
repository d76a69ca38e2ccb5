"""`effnet scale`: the table of scaled models (name, φ, depth, width, resolution, params, MACs, training memory).

Parameters and MACs are counted by arithmetic from the decoded architecture (flops.py, the one MAC counter); the
training memory by memory.py on the meta device (weights + gradients + optimizer state + EMA, and the activations
one image keeps for its backward pass, with and without gradient checkpointing). A size no device could train is
refused by arithmetic before any build.

torch and timm are imported by the functions that build and count, not here: `effnet scale --help` and a
mistyped argument answer at once, and nothing here imports Lightning (tests/train/test_startup.py).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

from effnet_lightning.errors import ConfigError, OneLineParser, outcome
from effnet_lightning.model import scaling as sc
from effnet_lightning.model.solve import DIMENSIONS, Solution, parse_count, solve
from effnet_lightning.tools.tables import csv_table, positive, real, text_table, variant

__all__ = ["Row", "build_parser", "format_csv", "format_solve", "format_text", "main", "measure", "solve_main"]

# px: the least `--resolution` read as pixels. Below it a value is a multiplier given the way the option once took
# one (Table 7's r=2, B7's 600 / 224 = 2.7); at 8 px the third stride-2 stage is already 1x1.
MIN_PIXELS = 8


@dataclass(frozen=True)
class Row:
    name: str
    phi: float | None
    depth: float
    width: float
    resolution: int
    params: int
    macs: int
    state_bytes: int  # fp32 weights, gradients, RMSpropTF state and EMA
    activation_bytes_per_image: int  # saved for backward, fp32
    checkpointed_activation_bytes_per_image: int  # the same with gradient checkpointing


def measure(scaling: sc.Scaling, num_classes: int = 1000) -> Row:
    """Params, MACs and training memory of the model `scaling` describes, at its own resolution."""
    from effnet_lightning.model.flops import cost
    from effnet_lightning.model.memory import estimate

    memory = estimate(scaling, num_classes)  # refuses an absurd size before building anything
    counted = cost(scaling.depth, scaling.width, scaling.resolution, num_classes)
    return Row(
        scaling.name,
        scaling.phi,
        scaling.depth,
        scaling.width,
        scaling.resolution,
        counted.params,
        counted.macs,
        memory.state_bytes,
        memory.activation_bytes_per_image,
        memory.checkpointed_activation_bytes_per_image,
    )


def _human(count: int) -> str:
    return f"{count / 1e9:.3g}G" if count >= 1e9 else f"{count / 1e6:.3g}M"


def _memory(count: int) -> str:
    from effnet_lightning.model.memory import human_bytes  # loaded already by measure()

    return human_bytes(count).replace(" ", "")


def format_text(rows: Sequence[Row], coefficients: sc.Coefficients) -> str:
    header = (
        f"{'name':<20} {'phi':>5} {'depth':>6} {'width':>6} {'res':>5} {'params':>8} {'MACs':>8} "
        f"{'state':>8} {'act/img':>8} {'ckpt/img':>8}"
    )
    c = coefficients
    notes = [
        f"alpha={c.alpha:g} beta={c.beta:g} gamma={c.gamma:g}: "
        f"FLOPs grow x{c.flops_growth:.3f} per unit of phi (alpha*beta^2*gamma^2)",
        "training memory, fp32: state = weights + gradients + RMSpropTF state + EMA; act/img = activations one "
        "image keeps for backward; ckpt/img = the same with gradient checkpointing",
    ]
    return text_table(header, map(_row_line, rows), notes)


def _row_line(r: Row) -> str:
    phi = "-" if r.phi is None else f"{r.phi:g}"
    return (
        f"{r.name:<20} {phi:>5} {r.depth:>6.3f} {r.width:>6.3f} {r.resolution:>5} "
        f"{_human(r.params):>8} {_human(r.macs):>8} {_memory(r.state_bytes):>8} "
        f"{_memory(r.activation_bytes_per_image):>8} {_memory(r.checkpointed_activation_bytes_per_image):>8}"
    )


def format_csv(rows: Sequence[Row]) -> str:
    return csv_table(Row, rows)


def format_solve(solutions: list[Solution]) -> str:
    """One line per solution: the multiplier found, the network it builds and how close it came."""
    header = (
        f"{'scale':<11} {'multiplier':>10} {'depth':>7} {'width':>7} {'res':>5} "
        f"{'MACs':>8} {'params':>8} {'target':>8} {'deviation':>9}"
    )
    note = (
        "multiplier: on the base's depth, width or resolution, or phi for compound; depth is discrete per stage "
        "and resolution per stride-32 step, so the nearest achievable model is shown with its deviation"
    )
    return text_table(header, map(_solution_line, solutions), [note])


def _solution_line(s: Solution) -> str:
    target = f"{s.target / 1e9:.4g}G" if s.metric == "macs" else f"{s.target / 1e6:.4g}M"
    return (
        f"{s.scale:<11} {s.multiplier:>10.4g} {s.depth:>7.4g} {s.width:>7.4g} {s.resolution:>5} "
        f"{s.macs / 1e9:>7.4g}G {s.params / 1e6:>7.4g}M {target:>8} {s.deviation:>+9.2%}"
    )


def build_parser(prog: str = "effnet scale") -> argparse.ArgumentParser:
    p = OneLineParser(
        prog=prog,
        description="Print depth, width, resolution, parameters and MACs of scaled "
        "EfficientNets. Default: the official B0-B7 table.",
    )
    p.add_argument("--variants", nargs="+", type=variant, metavar="bN", help="official variants, b0..b7")
    p.add_argument("--phi", nargs="+", type=real, metavar="PHI", help="compound coefficients, e.g. 0 0.5 -2")
    p.add_argument("--alpha", type=real, default=sc.ALPHA, help="depth base (default %(default)s)")
    p.add_argument("--beta", type=real, default=sc.BETA, help="width base (default %(default)s)")
    p.add_argument("--gamma", type=real, default=sc.GAMMA, help="resolution base (default %(default)s)")
    p.add_argument("--base-resolution", type=int, default=sc.BASE_RESOLUTION, help="px at phi=0")
    p.add_argument(
        "--depth", type=positive, help="explicit depth multiplier on B0 (with --width/--resolution-multiplier)"
    )
    p.add_argument("--width", type=positive, help="explicit width multiplier on B0")
    p.add_argument(
        "--resolution-multiplier", type=positive, help="explicit resolution multiplier on --base-resolution (224 px)"
    )
    p.add_argument("--resolution", type=real, help="input px for every model (default: each model's own)")
    p.add_argument("--table7", action="store_true", help="the paper's Table 7 single-dimension ablation rows")
    p.add_argument("--num-classes", type=int, default=1000, help="classifier size (default %(default)s)")
    p.add_argument("--format", choices=("text", "csv"), default="text")
    p.add_argument("--target-macs", type=_count, help="solve for this forward MACs per image, e.g. 1.8G")
    p.add_argument("--target-params", type=_count, help="solve for this parameter count, e.g. 7.8M")
    p.add_argument(
        "--scale",
        nargs="+",
        choices=DIMENSIONS,
        default=list(DIMENSIONS),
        help="with --target-*: the dimension(s) to scale the base along (default: all four); the base is the one "
        "model given by --variants, --phi or --depth/--width/--resolution-multiplier, else B0",
    )
    return p


def _count(text: str) -> float:
    try:
        return parse_count(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def pixels(value: float | None, base_resolution: int) -> int | None:
    """`--resolution` as a whole number of pixels; a value that cannot be one (1.3, 0.5: a multiplier, as the
    option once took) is a ConfigError that names --resolution-multiplier."""
    if value is None:
        return None
    if not (math.isfinite(value) and value == int(value) and value >= MIN_PIXELS):
        raise ConfigError(
            f"--resolution is the input side in whole pixels (at least {MIN_PIXELS}), got {value:g}; for a "
            f"multiplier on the base's {base_resolution} px use --resolution-multiplier {value:g}"
        )
    return int(value)


def requested(args: argparse.Namespace) -> list[sc.Scaling]:
    """The models the options name, in the order of the options (none: the caller's default)."""
    scalings = [sc.official(v) for v in args.variants or []]
    scalings += [sc.compound(phi, args.alpha, args.beta, args.gamma, args.base_resolution) for phi in args.phi or []]
    if args.depth or args.width or args.resolution_multiplier:
        multipliers = (args.depth or 1.0, args.width or 1.0, args.resolution_multiplier or 1.0)
        scalings.append(sc.explicit(*multipliers, args.base_resolution))
    if args.table7:
        scalings += list(sc.TABLE7.values())
    return scalings


def solve_main(args: argparse.Namespace, base: sc.Scaling) -> None:
    """`effnet scale --target-macs 1.8G --scale depth ...`: the multiplier meeting the target, per dimension."""
    coefficients = sc.Coefficients(args.alpha, args.beta, args.gamma)
    spec = base.as_spec()
    solutions = [
        solve(args.target_macs, s, spec, args.target_params, args.num_classes, coefficients) for s in args.scale
    ]
    print(csv_table(Solution, solutions) if args.format == "csv" else format_solve(solutions))


def main(argv: Sequence[str]) -> None:
    """`effnet scale`: raises a UserError for what the user can fix (errors.outcome reports it)."""
    args = build_parser().parse_args(argv)
    from effnet_lightning.model.memory import check_size  # arithmetic, but its module imports torch: after --help

    coefficients = sc.Coefficients(args.alpha, args.beta, args.gamma)
    px = pixels(args.resolution, args.base_resolution)

    def sized(scalings: list[sc.Scaling]) -> list[sc.Scaling]:
        return scalings if px is None else [replace(s, resolution=px) for s in scalings]

    if args.num_classes < 1:
        raise ConfigError(f"--num-classes must be >= 1, got {args.num_classes}")
    scalings = sized(requested(args))
    for scaling in scalings:
        check_size(scaling, args.num_classes)  # arithmetic only: --phi 100 is refused at once
    if args.target_macs is not None or args.target_params is not None:
        if len(scalings) > 1:
            raise ConfigError("with --target-macs/--target-params give at most one base model (default B0)")
        solve_main(args, scalings[0] if scalings else sized([sc.official("b0")])[0])
        return
    rows = [measure(s, args.num_classes) for s in scalings or sized([sc.official(v) for v in sc.OFFICIAL_VARIANTS])]
    print(format_csv(rows) if args.format == "csv" else format_text(rows, coefficients))


if __name__ == "__main__":
    sys.exit(outcome("scale", lambda: main(sys.argv[1:])))
