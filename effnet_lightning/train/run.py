"""`effnet fit|validate|test|predict`: LightningCLI with user errors as one line and exit 2, signals as exit codes."""

from __future__ import annotations

import os
import pickle
import sys
import warnings

from effnet_lightning.errors import (
    EXIT_INTERRUPTED,
    EXIT_NONFINITE,
    EXIT_PREEMPTED,
    EXIT_USER_ERROR,
    one_line,
)

__all__ = ["main", "parse_error", "run_lightning"]

PARSER_MODULES = ("jsonargparse", "argparse", "typing")  # where a parse error's own wording comes from
PYTREE_MODULE = r"lightning\.pytorch\.utilities\._pytree"  # emits torch's LeafSpec FutureWarning (see run_lightning)
USER_ERRORS = (ValueError, OSError)  # raised with a sentence that says what to do (missing data, corrupt file, ...)


def main(argv: list[str], in_process: bool = True) -> int:
    """Runs one training command (argv[0] is fit/validate/test/predict) and returns its exit code."""
    from effnet_lightning.train import signals

    command = argv[0]
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


def run_lightning(argv: list[str]) -> int:
    """LightningCLI, with user errors (missing data, impossible numbers) as one line and exit code 2."""
    from jsonargparse import ArgumentError
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from effnet_lightning.callbacks.nonfinite import NonFiniteLossError
    from effnet_lightning.train.config_checks import DataModuleInitError
    from effnet_lightning.train.finite import NonFiniteStateError
    from effnet_lightning.train.lightning_cli import EffnetCLI
    from effnet_lightning.train.plugins import load_and_report

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
        print(f"effnet {argv[0]}: error: {parse_error(err)} (see 'effnet {argv[0]} --help')", file=sys.stderr)
        return EXIT_USER_ERROR
    except (*USER_ERRORS, DataModuleInitError) as err:
        if os.environ.get("EFFNET_TRACEBACK"):
            raise
        print(f"effnet {argv[0]}: error: {one_line(str(err))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except pickle.UnpicklingError as err:  # a checkpoint with objects, loaded weights-only by Lightning itself
        print(
            f"effnet {argv[0]}: error: the checkpoint holds Python objects that weights-only loading refuses "
            f"({type(err).__name__}); if you trust it, load it in Python and re-save its tensors",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    except (NonFiniteLossError, NonFiniteStateError) as err:
        print(f"effnet {argv[0]}: error: {err}", file=sys.stderr)
        return EXIT_NONFINITE
    except SIGTERMException:  # Lightning's own SIGTERM path; LastCheckpoint saved in on_exception
        return EXIT_PREEMPTED
    return 0


def parse_error(err: BaseException) -> str:
    """A parse error as one line. When its root cause was raised by our code (a link's compute function, a
    constructor's check), that sentence already says what to do; otherwise jsonargparse's whole message."""
    root = err
    while root.__cause__ is not None:
        root = root.__cause__
    if _raised_in(root).split(".")[0] not in PARSER_MODULES:
        return one_line(str(root))
    return one_line(str(err))


def _raised_in(err: BaseException) -> str:
    """The module of the frame that raised `err` (the last frame of its traceback)."""
    frame = err.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    return frame.tb_frame.f_globals.get("__name__", "") if frame is not None else ""
