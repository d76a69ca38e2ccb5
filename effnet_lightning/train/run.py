"""`effnet fit|validate|test|predict`: LightningCLI, with each way a command can end mapped to its exit code.

- a `UserError` (missing data, an impossible number, a corrupt checkpoint) or a parse error of the config: one
  line, exit 2 (`EFFNET_TRACEBACK=1` adds the traceback);
- NaN/inf in the loss or the weights: one line, exit 3 (last.ckpt is the last finite state);
- SIGTERM / SIGINT: last.ckpt saved at the step reached, exit 75 / 130 (signals.py);
- anything else is a crash: its traceback, then one line saying where the run's log and last.ckpt are, exit 1.
`main` returns the code; it never raises SystemExit (`--help` and `--print_config` return 0).
"""

from __future__ import annotations

import os
import sys
import traceback
import warnings
from pathlib import Path

from effnet_lightning.errors import (
    EXIT_CRASH,
    EXIT_INTERRUPTED,
    EXIT_NONFINITE,
    EXIT_OK,
    EXIT_PREEMPTED,
    EXIT_USER_ERROR,
    UserError,
    exit_code,
    one_line,
    parse_error_line,
)
from effnet_lightning.train.run_layout import last_checkpoint

__all__ = ["crash_line", "main", "run_lightning"]

PYTREE_MODULE = r"lightning\.pytorch\.utilities\._pytree"  # emits torch's LeafSpec FutureWarning (see run_lightning)


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
    """LightningCLI, and the exit code of how it ended (the module docstring's list)."""
    from jsonargparse import ArgumentError
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from effnet_lightning.callbacks.nonfinite import NonFiniteLossError
    from effnet_lightning.train import plugins
    from effnet_lightning.train.finite import NonFiniteStateError
    from effnet_lightning.train.lightning_cli import EffnetCLI
    from effnet_lightning.train.signals import Stopped

    command = argv[0]
    run_folders: list[Path] = []  # the run folder, once the CLI has picked it (for the crash report)
    try:
        plugins.load_and_report()  # makes drop-in and entry-point datamodules known by their short class names
        with warnings.catch_warnings():
            # Lightning 2.6's own helper (CombinedLoader, every run) builds torch's deprecated LeafSpec; neither the
            # user nor we can act on the FutureWarning. Ignored by category and emitting module only, for this one
            # call; pyproject pins lightning<2.7 and tests/train/test_quiet.py fails once Lightning stops raising it.
            # private: Lightning's `_pytree` module names the source; no public setting avoids the warning.
            warnings.filterwarnings("ignore", category=FutureWarning, module=PYTREE_MODULE)
            EffnetCLI(args=None if argv == sys.argv[1:] else argv, on_run_dir=run_folders.append)
    except SystemExit as stop:  # jsonargparse's --help and --print_config
        return exit_code(stop)
    except ArgumentError as err:  # a malformed config or option
        if os.environ.get("EFFNET_TRACEBACK"):
            traceback.print_exc()
        print(f"effnet {command}: error: {parse_error_line(err)} (see 'effnet {command} --help')", file=sys.stderr)
        return EXIT_USER_ERROR
    except UserError as err:
        if os.environ.get("EFFNET_TRACEBACK"):
            traceback.print_exc()
        print(f"effnet {command}: error: {one_line(str(err))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (NonFiniteLossError, NonFiniteStateError) as err:
        print(f"effnet {command}: error: {err}", file=sys.stderr)
        return EXIT_NONFINITE
    except SIGTERMException:  # Lightning's own SIGTERM path; LastCheckpoint saved in on_exception
        return EXIT_PREEMPTED
    except Stopped:  # a signal: main() reports it with the signal's exit code
        raise
    except Exception as err:  # a crash: the traceback, and where the run's results are
        traceback.print_exc()
        print(crash_line(command, err, run_folders[-1] if run_folders else None), file=sys.stderr, flush=True)
        return EXIT_CRASH
    return EXIT_OK


def crash_line(command: str, err: BaseException, run: Path | None) -> str:
    """The last line of a crash: what raised, and where the run's log and its last checkpoint are."""
    what = f"effnet {command}: crashed with {type(err).__name__} (traceback above)"
    if run is None or not run.is_dir():
        return f"{what}; no run folder was written"
    if command != "fit":
        return f"{what}; its log (config.yaml, TensorBoard events) is in {run}"
    last = last_checkpoint(run)
    kept = f"the last checkpoint is {last}" if last.is_file() else "no last.ckpt was written yet"
    return f"{what}; the run's log (config.yaml, TensorBoard events) is in {run}, {kept}"
