"""A study's numbers: each unit (arm x seed) evaluated on the test split, each arm's cost measured, all tabulated.

Per unit, once its fit finished: the checkpoint validation selected (the `checkpoint:` ModelCheckpoint's best,
read from the unit's last.ckpt) is evaluated on the datamodule's test split with the trained config
(`Trainer.test`, so `--trainer.limit_test_batches` applies) and written to `<arm>/seed<k>/result.json`.
Validation only selects. A datamodule without a test split is evaluated on its validation images, and every
table says so. Per arm, once: train and inference img/s and peak memory from `effnet benchmark`'s bare step at
the arm's own precision, memory format and batch size on this machine's device (`<arm>/cost.json`); a failure
there is recorded in the arm's row and the study goes on.

Files: results.csv (one row per arm: costs, test top-1 mean/sd over n seeds, wall time and device-hours),
runs.csv (one row per unit), comparisons.csv (verdict.py's paired differences) and results.md, which opens with
the verdict in words. Memory in decimal units (memory.human_bytes), as every other command prints it.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import sys
import traceback
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from effnet_lightning.study import trainability as tr
from effnet_lightning.study import verdict as vd
from effnet_lightning.study.plan import Arm, Plan
from effnet_lightning.train.run_layout import VERSION_GLOB, last_checkpoints

__all__ = [
    "COST",
    "RESULT",
    "WALL",
    "ArmRow",
    "Tables",
    "NeverValidated",
    "Trained",
    "UnitResult",
    "collect",
    "evaluate_unit",
    "measure_arm",
    "unit_root",
    "write_results",
]

RESULT = "result.json"  # in a unit's folder once its fit finished and it was evaluated
COST = "cost.json"  # in an arm's folder once its throughput and memory were measured (or failed to be)
WALL = "wall_s.txt"  # one line per fit invocation of a unit: seconds it ran (a resumed unit adds up)
ERROR_LOG = "error.log"  # a failed unit's traceback (or exit code)
FAILED = "failed"  # a failed unit's exit code
BENCH_WARMUP = 1  # untimed benchmark steps before the timed ones
SECONDS_PER_HOUR = 3600


def unit_root(folder: Path, arm: Arm, seed_index: int) -> Path:
    return folder / arm.name / f"seed{seed_index}"


@dataclass(frozen=True)
class Trained:
    """How the arms train, read from the base config and overrides by fit's own parser (launch.check_fit)."""

    precision: str  # Lightning's, resolved ("32-true" for `auto` on a CPU)
    channels_last: bool
    grad_checkpointing: bool
    batch_size: int  # per device
    device: str  # "cuda" or "cpu"
    devices: int  # per arm: trainer devices x nodes
    has_test: bool  # the datamodule has a test split of its own
    num_classes: int  # the datamodule's
    base_seed: int  # seed k trains with base_seed + k


@dataclass(frozen=True)
class UnitResult:
    """result.json of one arm x seed: the selected checkpoint's numbers."""

    seed: int  # the seed_everything value it trained with
    selected_by: str  # the monitored metric (e.g. val_ema/acc1); "last" where nothing was monitored
    val_score: float | None  # the monitored metric at the selected checkpoint
    acc1: float  # top-1 of the selected weights (EMA where selected on val_ema) on the evaluation split
    acc5: float | None
    split: str  # "test", or "validation" for a datamodule without a test split
    checkpoint: str
    epochs: int | None


# ------------------------------------------------------------------------------------------------------ per unit
def best_checkpoint(unit: Path) -> tuple[Path, str, float | None]:
    """(checkpoint, monitored metric, its score) that validation selected, from the newest last.ckpt's
    ModelCheckpoint state; last.ckpt itself where nothing was monitored."""
    import torch

    import effnet_lightning.train.module  # noqa: F401  (registers ScalingSpec for weights-only loading)

    lasts = last_checkpoints(unit, VERSION_GLOB)
    if not lasts:
        raise FileNotFoundError(f"{unit} has no version_*/checkpoints/last.ckpt")
    last = lasts[-1]
    checkpoint = torch.load(last, map_location="cpu", weights_only=True, mmap=True)
    for state in checkpoint.get("callbacks", {}).values():
        if isinstance(state, dict) and state.get("monitor") and state.get("best_model_path"):
            path = Path(state["best_model_path"])
            if not path.is_file():  # the study folder moved since: the same file beside last.ckpt
                path = last.parent / path.name
            score = state.get("best_model_score")
            return path, str(state["monitor"]), None if score is None else float(score)
    return last, "last", None


class NeverValidated(Exception):
    """A unit's fit finished, validation was on, and none ran: nothing selected a checkpoint, so it is not done."""


def evaluate_unit(unit: Path, cli_args: list[str], seed: int) -> UnitResult:
    """Evaluate the unit's selected checkpoint with the trained config (fit's options in `cli_args`, without
    the subcommand) on the test split; writes and returns its result.json."""
    from effnet_lightning.assembly.lightning_cli import EffnetCLI
    from effnet_lightning.assembly.run import PYTREE_MODULE

    checkpoint, monitor, score = best_checkpoint(unit)
    # the best-k folder as the fit recorded it: ModelCheckpoint then restores its state without a warning
    args = [*cli_args, f"--trainer.default_root_dir={unit / 'test'}", f"--checkpoint.dirpath={checkpoint.parent}"]
    typed = sys.argv
    sys.argv = [typed[0], *args]  # read by LightningCLI as its command line (given both, it warns)
    try:
        cli = EffnetCLI(args=None, run=False)
    finally:
        sys.argv = typed
    if cli.trainer.limit_val_batches and _validated_epochs(unit) is None:
        raise NeverValidated(
            f"its fit ended without a validation (no val/acc1 under {unit}), so no checkpoint was selected; not "
            "evaluated. Let the fit validate at least once (trainer.check_val_every_n_epoch at most max_epochs), "
            f"or, for a fit resumed past its validation by an older version, delete {unit} and run the study again."
        )
    with warnings.catch_warnings():  # the same FutureWarning of Lightning's own helper that `effnet fit` ignores
        warnings.filterwarnings("ignore", category=FutureWarning, module=PYTREE_MODULE)  # private: see train/run.py
        (metrics,) = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=str(checkpoint),
                                      verbose=False, weights_only=True)  # fmt: skip
    prefix = "test_ema/" if monitor.startswith("val_ema/") and "test_ema/acc1" in metrics else "test/"
    if monitor == "last" and "test_ema/acc1" in metrics:
        prefix = "test_ema/"  # no selection: the EMA weights, as `effnet predict` uses them
    result = UnitResult(
        seed=seed,
        selected_by=monitor,
        val_score=score,
        acc1=float(metrics[f"{prefix}acc1"]),
        acc5=float(metrics[f"{prefix}acc5"]) if f"{prefix}acc5" in metrics else None,
        split="validation" if _test_is_validation(cli.datamodule) else "test",
        checkpoint=str(checkpoint),
        epochs=_validated_epochs(unit),
    )
    (unit / RESULT).write_text(json.dumps(asdict(result), indent=1) + "\n")
    return result


def _test_is_validation(datamodule: Any) -> bool:
    from lightning.pytorch import LightningDataModule

    if hasattr(datamodule, "test_is_validation"):
        return bool(datamodule.test_is_validation())
    return type(datamodule).test_dataloader is LightningDataModule.test_dataloader


def has_test_split(datamodule: Any) -> bool:
    return not _test_is_validation(datamodule)


def _validated_epochs(unit: Path) -> int | None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    count = 0
    for run in sorted(unit.glob(VERSION_GLOB)):
        events = EventAccumulator(str(run))
        events.Reload()
        if "val/acc1" in events.Tags()["scalars"]:
            count += len(events.Scalars("val/acc1"))
    return count or None


def record_failure(unit: Path, code: int, error: BaseException | None = None, what: str = "fit") -> None:
    """`failed` holds the exit code; error.log the traceback (or the code, where the failure printed its own line)."""
    unit.mkdir(parents=True, exist_ok=True)
    (unit / FAILED).write_text(f"{code}\n")
    text = "".join(traceback.format_exception(error)) if error is not None else f"{what} exited with code {code}\n"
    (unit / ERROR_LOG).write_text(f"{what}: {text}")


def record_not_validated(unit: Path, error: NeverValidated) -> None:
    """The unit is flagged, not done: `failed` says why (its status: "failed (never validated)")."""
    (unit / FAILED).write_text("never validated\n")
    (unit / ERROR_LOG).write_text(f"test: {error}\n")


def clear_failure(unit: Path) -> None:
    (unit / FAILED).unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------------- per arm
def measure_arm(folder: Path, arm: Arm, trained: Trained, bench_steps: int) -> dict[str, Any]:
    """Train/inference img/s and peak memory of the arm at its training setting, once per arm (cost.json)."""
    path = folder / arm.name / COST
    if path.is_file():
        return json.loads(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"precision": trained.precision, "channels_last": trained.channels_last,
                              "batch_size": trained.batch_size, "device": trained.device}  # fmt: skip
    if bench_steps > 0:
        from effnet_lightning.model import scaling as sc
        from effnet_lightning.tools.benchmark import Setting, run

        setting = Setting(batch_size=trained.batch_size, device=trained.device, precision=trained.precision,
                          channels_last=trained.channels_last, grad_checkpointing=trained.grad_checkpointing,
                          steps=bench_steps, warmup=BENCH_WARMUP, num_classes=trained.num_classes)  # fmt: skip
        try:
            bench = run(sc.ScalingSpec.of(arm), setting)
            record |= {"train_img_s": bench.train_img_s, "infer_img_s": bench.infer_img_s,
                       "peak_memory": bench.peak_memory, "memory_source": bench.memory_source}  # fmt: skip
        except Exception as err:  # a fault while measuring is the arm's row, not the study's end
            record["error"] = f"{type(err).__name__}: {err}"
            (folder / arm.name / ERROR_LOG).write_text("measure: " + "".join(traceback.format_exception(err)))
    path.write_text(json.dumps(record, indent=1) + "\n")
    return record


@dataclass(frozen=True)
class ArmRow:
    """One line of results.csv. Accuracies in [0, 1] on `split`; None where nothing finished."""

    arm: str
    method: str
    budget: str
    status: str  # done, pending k/n, or failed (seed k: exit N)
    depth: float
    width: float
    resolution: int
    params: int
    macs: int
    target_macs: int | None
    macs_deviation: float | None  # macs / target_macs - 1
    activations: int
    precision: str
    channels_last: bool
    batch_size: int
    train_img_s: float | None
    infer_img_s: float | None
    peak_memory: int | None  # bytes
    n: int  # seeds evaluated
    test_acc1_mean: float | None
    test_acc1_sd: float | None  # sample standard deviation over the n seeds
    test_acc5_mean: float | None
    val_score_mean: float | None  # the selection metric at the selected checkpoints
    split: str  # "test", or "validation" (no test split: validation numbers, labelled as such)
    epochs: int | None  # validated epochs of the first seed
    wall_s: float | None  # fit seconds summed over seeds and resumes
    device_hours: float | None  # wall time x devices per arm
    phi: float | None
    alpha: float | None
    beta: float | None
    gamma: float | None
    error: str  # a measurement that failed
    trained: str  # "yes", "no" (a seed did not train or settle: trainability.py), "" before any seed finished
    untrained_why: str  # the flagged seeds' reasons, with their logged numbers


def _unit_status(unit: Path) -> str:
    if (unit / RESULT).is_file():
        return "done"
    if (unit / FAILED).is_file():
        reason = (unit / FAILED).read_text().strip()  # an exit code, or why the unit is not done
        return f"failed (exit {reason})" if reason.lstrip("-").isdigit() else f"failed ({reason})"
    return "pending"


def collect(folder: Path, plan: Plan, seeds: int, trained: Trained) -> tuple[list[ArmRow], list[dict[str, Any]]]:
    """Every arm's row and every unit's, from the files the study wrote so far."""
    rows, units = [], []
    for arm in plan.arms:
        results, walls, statuses, healths = [], [], [], {}
        for k in range(seeds):
            unit = unit_root(folder, arm, k)
            status = _unit_status(unit)
            statuses.append((k, status))
            wall = sum(float(w) for w in (unit / WALL).read_text().split()) if (unit / WALL).is_file() else None
            walls += [wall] if wall is not None else []
            result = json.loads((unit / RESULT).read_text()) if status == "done" else None
            if result is not None:
                results.append(result)
                prefix = str(result.get("selected_by", "")).split("/")[0] + "/"
                healths[k] = tr.unit_health(unit, prefix if prefix.startswith("val") else "val/", trained.num_classes)
            fields_ = ("selected_by", "val_score", "acc1", "acc5", "split", "epochs")
            units.append({"arm": arm.name, "seed_index": k, "seed": trained.base_seed + k, "status": status,
                          "wall_s": wall, **{f: (result or {}).get(f) for f in fields_}})  # fmt: skip
        cost = json.loads((folder / arm.name / COST).read_text()) if (folder / arm.name / COST).is_file() else {}
        failed = [f"seed {k}: {s.removeprefix('failed (').removesuffix(')')}" for k, s in statuses if s != "done"
                  and s.startswith("failed")]  # fmt: skip
        done = sum(s == "done" for _, s in statuses)
        status = "done" if done == seeds else (f"failed ({'; '.join(failed)})" if failed else f"pending {done}/{seeds}")
        acc1 = [r["acc1"] for r in results]
        acc5 = [r["acc5"] for r in results if r.get("acc5") is not None]
        scores = [r["val_score"] for r in results if r.get("val_score") is not None]
        wall = sum(walls) if walls else None
        trained_flag, why = tr.arm_health(healths)
        rows.append(
            ArmRow(
                arm=arm.name, method=arm.method, budget=arm.budget, status=status, depth=arm.depth,
                width=arm.width, resolution=arm.resolution, params=arm.params, macs=arm.macs,
                target_macs=arm.target_macs, macs_deviation=arm.macs_deviation, activations=arm.activations,
                precision=cost.get("precision", trained.precision),
                channels_last=cost.get("channels_last", trained.channels_last),
                batch_size=cost.get("batch_size", trained.batch_size), train_img_s=cost.get("train_img_s"),
                infer_img_s=cost.get("infer_img_s"), peak_memory=cost.get("peak_memory"), n=len(acc1),
                test_acc1_mean=statistics.fmean(acc1) if acc1 else None,
                test_acc1_sd=statistics.stdev(acc1) if len(acc1) > 1 else None,
                test_acc5_mean=statistics.fmean(acc5) if acc5 else None,
                val_score_mean=statistics.fmean(scores) if scores else None,
                split=results[0]["split"] if results else ("test" if trained.has_test else "validation"),
                epochs=results[0].get("epochs") if results else None, wall_s=wall,
                device_hours=None if wall is None else wall * trained.devices / SECONDS_PER_HOUR,
                phi=arm.phi, alpha=arm.alpha, beta=arm.beta, gamma=arm.gamma, error=cost.get("error", ""),
                trained=trained_flag, untrained_why=why,
            )
        )  # fmt: skip
    return rows, units


def scores_by_arm(units: Sequence[dict[str, Any]]) -> dict[str, dict[int, float]]:
    """arm -> {seed index: top-1} of the finished units: what verdict.py pairs."""
    scores: dict[str, dict[int, float]] = {}
    for u in units:
        if u["status"] == "done":
            scores.setdefault(u["arm"], {})[u["seed_index"]] = u["acc1"]
    return scores


# ------------------------------------------------------------------------------------------------------ the files
def _csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    with open(path, "w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([["" if v is None else v for v in row] for row in rows])


@dataclass(frozen=True)
class Tables:
    rows: list[ArmRow]
    scores: dict[str, dict[int, float]]  # arm -> {seed index: top-1}
    comparisons: list[vd.Comparison]
    verdict: list[str]  # sentences


def write_results(folder: Path, plan: Plan, seeds: int, trained: Trained, command: str = "") -> Tables:
    """results.csv, runs.csv, comparisons.csv and results.md from what has finished (rewritten after every unit,
    so an interrupted study has its tables)."""
    rows, units = collect(folder, plan, seeds, trained)
    if plan.kind == "grid":
        rows = sorted(rows, key=lambda r: -(r.test_acc1_mean if r.test_acc1_mean is not None else -1.0))
    _csv(folder / "results.csv", [f.name for f in fields(ArmRow)], [list(asdict(r).values()) for r in rows])
    unit_columns = list(units[0]) if units else []
    _csv(folder / "runs.csv", unit_columns, [list(u.values()) for u in units])
    scores = scores_by_arm(units)
    comparisons, lines = judge(plan, rows, scores, trained)
    _csv(folder / "comparisons.csv", vd.COMPARISON_COLUMNS,
         [[c.arm, c.versus, _num(c.delta), _num(c.ci_low), _num(c.ci_high), c.n, str(c.significant).lower(),
           "" if c.doublings is None else round(c.doublings, 6)] for c in comparisons])  # fmt: skip
    (folder / "results.md").write_text(markdown(plan, rows, comparisons, lines, seeds, trained, command))
    return Tables(rows, scores, comparisons, lines)


def _num(value: float) -> float | str:
    return "" if math.isnan(value) else round(value, 6)


def judge(
    plan: Plan, rows: Sequence[ArmRow], scores: dict[str, dict[int, float]], trained: Trained
) -> tuple[list[vd.Comparison], list[str]]:
    """The comparisons this kind of study makes, and the verdict in sentences (verdict.py)."""
    split = "test" if trained.has_test else "validation"
    untrained = {r.arm: r.untrained_why for r in rows if r.trained == "no"}
    methods = {a.name: a.method for a in plan.arms}
    comparisons, lines = [], []
    if plan.kind == "table7":
        for budget in plan.budgets:
            arms = {a.method: a.name for a in plan.arms if a.budget == budget.label}
            where = f"at {_human(budget.matched)} MACs" if len(plan.budgets) > 1 else "at this budget"
            for method in ("depth", "width", "resolution"):
                if arms.get("compound") in scores and arms.get(method) in scores:
                    c = vd.paired(arms["compound"], arms[method], scores[arms["compound"]], scores[arms[method]])
                    comparisons.append(c)
                    lines.append(vd.sentence(c, "compound", f"{method}-only scaling", where, untrained, methods))
            for method in ("depth", "width", "resolution", "compound"):  # context: every arm against the base
                if arms.get(method) in scores and "baseline" in scores:
                    comparisons.append(vd.paired(arms[method], "baseline", scores[arms[method]], scores["baseline"]))
    elif plan.kind == "family":
        order = sorted(((a.name, a.macs) for a in plan.arms if a.name in scores), key=lambda p: p[1])
        gains = vd.family_gains(order, scores)
        comparisons += gains
        for g in gains:
            pd = g.per_doubling()
            if g.arm in untrained or g.versus in untrained:
                lines.append(vd.trainability_sentence(g, untrained, methods))
                continue
            lines.append(
                f"{g.arm} over {g.versus}: {vd.points(pd.delta)} top-1 points per doubling of MACs "
                f"({vd.CONFIDENCE:.0%} CI {vd.points(pd.ci_low)} … {vd.points(pd.ci_high)}, {g.n} seeds, "
                f"{g.doublings:.2f} doublings)" + ("" if g.significant else ": not distinguishable from no gain")
            )
        changes = vd.diminishing_returns(gains, scores)
        falling = [c for c in changes if c.significant and c.delta < 0]
        for c in falling:
            lines.append(f"Returns diminish from {c.versus.split('→')[1]}: the gain per doubling falls by "
                         f"{vd.points(-c.delta)} points ({vd.CONFIDENCE:.0%} CI {vd.points(-c.ci_high)} … "
                         f"{vd.points(-c.ci_low)}) from {c.versus} to {c.arm}.")  # fmt: skip
        if changes and not falling:
            lines.append("The intervals do not show diminishing returns at these sizes and seeds.")
        if order:
            pick = vd.knee(order[0][0], gains)
            lines.append(
                f"Most cost-effective: {pick}. Criterion: walking up from the cheapest arm ({order[0][0]}), the last "
                "arm reached by steps that each gain top-1 significantly (interval above 0); the first step whose "
                "interval includes 0 ends the walk."
            )
    elif plan.kind == "grid" and rows and rows[0].test_acc1_mean is not None:
        best = rows[0]
        lines.append(f"Best point: {best.arm} (alpha {best.alpha:g}, beta {best.beta:g}, gamma {best.gamma:g}), "
                     f"{split} top-1 {100 * best.test_acc1_mean:.1f}% over {best.n} seed(s).")  # fmt: skip
        if len(rows) > 1 and rows[1].arm in scores and best.arm in scores:
            c = vd.paired(best.arm, rows[1].arm, scores[best.arm], scores[rows[1].arm])
            comparisons.append(c)
            lines.append(vd.sentence(c, best.arm, f"the runner-up {rows[1].arm}", "at 2x the base's MACs", untrained,
                                     methods))  # fmt: skip
    return comparisons, lines


def _human(macs: float) -> str:
    return f"{macs / 1e9:.3g}G" if macs >= 1e9 else f"{macs / 1e6:.3g}M"


def markdown(
    plan: Plan,
    rows: Sequence[ArmRow],
    comparisons: Sequence[vd.Comparison],
    lines: Sequence[str],
    seeds: int,
    trained: Trained,
    command: str,
) -> str:
    """results.md: the verdict in words first, then the arms, the comparisons and what the numbers mean."""
    from effnet_lightning.model.memory import human_bytes

    split = "test" if trained.has_test else "validation"
    out = [f"# effnet study {plan.kind}", ""]
    if command:
        out += [f"`{command}`", ""]
    out += ["## Verdict", ""]
    if not trained.has_test:
        out += ["**No test split: these are validation numbers (the split that also selected the checkpoints).**",
                ""]  # fmt: skip
    out += [*(f"- {line}" for line in lines)] or ["- Not enough finished seeds for a verdict yet."]
    out += ["", "## Arms", ""]
    out += [
        f"| arm | status | trained | depth | width | res | params | MACs | target | deviation | act/img | "
        f"train img/s | peak mem | {split} top-1 % (mean ± sd) | n | device-h |",
        "|" + "---|" * 16,
    ]
    for r in rows:
        acc = "" if r.test_acc1_mean is None else f"{100 * r.test_acc1_mean:.1f}"
        if r.test_acc1_sd is not None:
            acc += f" ± {100 * r.test_acc1_sd:.1f}"
        out.append(
            f"| {r.arm} | {r.status} | {r.trained} | {r.depth:.3g} | {r.width:.3g} | {r.resolution} | "
            f"{r.params / 1e6:.3g}M | "
            f"{_human(r.macs)} | {'' if r.target_macs is None else _human(r.target_macs)} | "
            f"{'' if r.macs_deviation is None else f'{r.macs_deviation:+.2%}'} | {r.activations / 1e6:.3g}M | "
            f"{'' if r.train_img_s is None else f'{r.train_img_s:.0f}'} | "
            f"{'' if r.peak_memory is None else human_bytes(r.peak_memory)} | {acc} | {r.n} | "
            f"{'' if r.device_hours is None else f'{r.device_hours:.3g}'} |"
        )
    flagged = [r for r in rows if r.trained == "no"]
    if flagged:
        out += ["", "## Arms that did not train or settle", ""]
        out += [f"- **{r.arm}** (trained: no): {r.untrained_why}. Its comparisons measure trainability under this "
                f"recipe, not scaling: {tr.remedy(r.method)}." for r in flagged]  # fmt: skip
    if comparisons:
        out += ["", "## Comparisons (top-1 points, paired over seeds)", ""]
        out += [f"| arm | versus | delta | {vd.CONFIDENCE:.0%} CI | n | significant |", "|---|---|---|---|---|---|"]
        for c in comparisons:
            caveat = " (trainability)" if {c.arm, c.versus} & {r.arm for r in flagged} else ""
            out.append(f"| {c.arm} | {c.versus} | {vd.points(c.delta)} | {vd.points(c.ci_low)} … "
                       f"{vd.points(c.ci_high)} | {c.n} | {'yes' if c.significant else 'no'}{caveat} |")  # fmt: skip
    out += [
        "",
        "## How to read this",
        "",
        f"- Top-1 is on the {split} split, of the checkpoint validation selected (the config's `checkpoint:` "
        "monitor), with the EMA weights where that monitor is val_ema/*.",
        f"- Seeds: {seeds} per arm (seed_everything {trained.base_seed} + k: the same initialisation seed and data "
        "order for every arm). Intervals: paired t over seeds (scipy.stats); a difference whose interval includes "
        "0 is not called a win.",
        f"- MACs and params: counted by arithmetic with a {plan.num_classes}-class head (--num-classes; flops.py, "
        "as `effnet scale` counts); deviation = MACs / target − 1. act/img: conv and linear output elements per "
        "image (pycls).",
        f"- train img/s and peak memory: `effnet benchmark`'s bare step at {trained.precision}, channels_last "
        f"{'on' if trained.channels_last else 'off'}, batch {trained.batch_size}, on {trained.device}. "
        "device-h: fit wall time x devices, summed over seeds.",
        f"- trained: no where a seed's logged curves show it did not train (last epoch's train loss less than "
        f"{tr.LEARNT_FRACTION:.0%} of the way from chance ln C to the label-smoothing floor), was unstable (train "
        f"loss above {tr.ABOVE_CHANCE:.2f} x chance after warm-up) or had not settled (validation loss up more than "
        f"{tr.VAL_RISE:g}x in the last epoch). Comparisons with such an arm get no better/worse.",
    ]
    out += [f"- {note}" for note in plan.notes]
    return "\n".join(out) + "\n"
