"""The `effnet` command: `effnet scale` (the scaling table) and LightningCLI's fit/validate/test/predict.

The training subcommands are LightningCLI with three additions: the input resolution is computed from the
`model:` section and linked into the datamodule (a user never types it twice), `num_classes` flows from the
datamodule into the model, and every output of a run (resolved config, checkpoints, TensorBoard events) lands
in one folder per run under `trainer.default_root_dir` (default `runs/`).
"""

from __future__ import annotations

import os
import pickle
import sys
import warnings

USAGE = """usage: effnet <command> [options]

commands:
  fit          train (LightningCLI): effnet fit --config configs/b1_cifar.yaml
  validate     evaluate a checkpoint on the validation set (--ckpt_path)
  test         evaluate a checkpoint on the test set (--ckpt_path)
  predict      class probabilities from a checkpoint (--ckpt_path)
  cam          Grad-CAM grid: rows = images, columns = checkpoints (--ckpt_path X [--ckpt_path Y] --images ...
               or --config ... --split val --count 16)
  export       a checkpoint's network as safetensors + timm config.json (--ckpt_path X [--weights ema|raw] OUT)
  scale        print depth, width, resolution, params and MACs of scaled EfficientNets
  study        train one arm per scaling on one recipe: table7 (equal MACs), family, grid (alpha, beta, gamma)
  benchmark    measure train/inference img/s, peak memory and TFLOP/s (--vs-bare: framework vs plain loop)
  datamodules  list the datamodules a config can name by short class name, and where they come from
run 'effnet <command> --help' for a command's options"""

TRAINING_COMMANDS = ("fit", "validate", "test", "predict")
PARSER_MODULES = ("jsonargparse", "argparse", "typing")  # where a parse error's own wording comes from
MAX_MESSAGE = 500  # characters: a Union error quotes the whole given value, e.g. a datamodule's every argument
PYTREE_MODULE = r"lightning\.pytorch\.utilities\._pytree"  # emits torch's LeafSpec FutureWarning (see run_lightning)
USER_ERRORS = (ValueError, OSError)  # raised with a sentence that says what to do (missing data, corrupt file, ...)
# Exit codes (docs/production.md): 0 done, 1 crash (traceback), 2 user error (one line), and stops a scheduler
# should tell apart:
EXIT_NONFINITE = 3  # the loss or weights became NaN/inf; last.ckpt is the last finite state
EXIT_PREEMPTED = 75  # SIGTERM: last.ckpt saved at the step reached; rerun with --ckpt_path (sysexits EX_TEMPFAIL)
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C): last.ckpt saved at the step reached; 128 + 2, as shells report it


def main(argv: list[str] | None = None) -> int:
    in_process = argv is not None  # called from Python (tests, notebooks) rather than as the `effnet` command
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else "--help"
    if command in ("-h", "--help"):
        print(USAGE)
        return 0
    if command == "scale":
        from effnet_lightning.scale_table import main as scale_main

        return scale_main(argv[1:])
    if command == "study":
        from effnet_lightning.study import main as study_main

        return study_main(argv[1:])
    if command == "benchmark":
        from effnet_lightning.benchmark import main as benchmark_main

        return benchmark_main(argv[1:])
    if command == "cam":
        from effnet_lightning.cam import main as cam_main

        return cam_main(argv[1:])
    if command == "export":
        from effnet_lightning.export import main as export_main

        return export_main(argv[1:])
    if command == "datamodules":
        from effnet_lightning.plugins import main as datamodules_main

        return datamodules_main()
    if command in TRAINING_COMMANDS:
        from effnet_lightning import signals

        previous = signals.install()  # before the slow imports: a signal during start-up is a defined stop
        try:
            return run_lightning(argv)
        except signals.Stopped as stop:  # during start-up, or LastCheckpoint saved and said how to resume
            if not stop.reported:
                print(f"effnet {command}: {stop}", file=sys.stderr)
            return signals.EXIT_CODES[stop.signum]
        except KeyboardInterrupt:  # SIGINT before our handler was installed
            print(f"effnet {command}: stopped by SIGINT during start-up; nothing was saved", file=sys.stderr)
            return EXIT_INTERRUPTED
        finally:
            if in_process:
                signals.restore(previous)
            else:  # the console script: a late signal during interpreter exit must not change the exit code
                signals.ignore()
    print(
        f"effnet: error: unknown command {command!r}; "
        "choose one of fit, validate, test, predict, cam, export, scale, study, benchmark, datamodules",
        file=sys.stderr,
    )
    return 2


def run_lightning(argv: list[str]) -> int:
    """LightningCLI, with user errors (missing data, impossible numbers) as one line and exit code 2."""
    from jsonargparse import ArgumentError
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from effnet_lightning.callbacks.nonfinite import NonFiniteLossError
    from effnet_lightning.finite import NonFiniteStateError
    from effnet_lightning.plugins import load_and_report
    from effnet_lightning.training_cli import EffnetCLI
    from effnet_lightning.user_errors import DataModuleInitError

    load_and_report()  # makes drop-in and entry-point datamodules known by their short class names
    try:
        with warnings.catch_warnings():
            # Lightning 2.6's own helper (CombinedLoader, every run) builds torch's deprecated LeafSpec; neither the
            # user nor we can act on the FutureWarning. Ignored by category and emitting module only, for this one
            # call; pyproject pins lightning<2.7 and tests/test_quiet.py fails once Lightning stops raising it.
            # private: Lightning's `_pytree` module names the source; no public setting avoids the warning.
            warnings.filterwarnings("ignore", category=FutureWarning, module=PYTREE_MODULE)
            EffnetCLI(args=None if argv == sys.argv[1:] else argv)
    except ArgumentError as err:  # a malformed config or option
        print(f"effnet {argv[0]}: error: {_parse_error(err)} (see 'effnet {argv[0]} --help')", file=sys.stderr)
        return 2
    except (*USER_ERRORS, DataModuleInitError) as err:
        if os.environ.get("EFFNET_TRACEBACK"):
            raise
        print(f"effnet {argv[0]}: error: {_one_line(str(err))}", file=sys.stderr)
        return 2
    except pickle.UnpicklingError as err:  # a checkpoint with objects, loaded weights-only by Lightning itself
        print(
            f"effnet {argv[0]}: error: the checkpoint holds Python objects that weights-only loading refuses "
            f"({type(err).__name__}); if you trust it, load it in Python and re-save its tensors",
            file=sys.stderr,
        )
        return 2
    except (NonFiniteLossError, NonFiniteStateError) as err:
        print(f"effnet {argv[0]}: error: {err}", file=sys.stderr)
        return EXIT_NONFINITE
    except SIGTERMException:  # Lightning's own SIGTERM path; LastCheckpoint saved in on_exception
        return EXIT_PREEMPTED
    return 0


def _parse_error(err: BaseException) -> str:
    """A parse error as one line. When its root cause was raised by our code (a link's compute function, a
    constructor's check), that sentence already says what to do; otherwise jsonargparse's whole message."""
    root = err
    while root.__cause__ is not None:
        root = root.__cause__
    if _raised_in(root).split(".")[0] not in PARSER_MODULES:
        return _one_line(str(root))
    return _one_line(str(err))


def _raised_in(err: BaseException) -> str:
    """The module of the frame that raised `err` (the last frame of its traceback)."""
    frame = err.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    return frame.tb_frame.f_globals.get("__name__", "") if frame is not None else ""


def _one_line(message: str, limit: int = MAX_MESSAGE) -> str:
    line = " ".join(message.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


if __name__ == "__main__":
    sys.exit(main())
