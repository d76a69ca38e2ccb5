"""`effnet fit|validate|test|predict`: LightningCLI, and the exit codes decided here.

- NaN/inf in the loss or the weights: one line, exit 3 (last.ckpt is the last finite state);
- SIGTERM / SIGINT: last.ckpt saved at the step reached, exit 75 / 130 (signals.py);
- a malformed config or option (jsonargparse's ArgumentError) is raised as a `ConfigError`;
- a crash gets a note saying where the run's log and last.ckpt are, and goes on up.
cli.py maps a `UserError` to one line and exit 2, and a crash to its traceback and exit 1. The lines said here go
to the package's logger, which `effnet` shows on stderr.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

from effnet_lightning.errors import EXIT_INTERRUPTED, EXIT_NONFINITE, EXIT_PREEMPTED, ConfigError, parse_error_line
from effnet_lightning.train.run_layout import last_checkpoint

__all__ = ["crash_note", "main", "run_lightning"]

log = logging.getLogger(__name__)
PYTREE_MODULE = r"lightning\.pytorch\.utilities\._pytree"  # emits torch's LeafSpec FutureWarning (see run_lightning)


def main(argv: list[str], in_process: bool = True) -> int | None:
    """Runs one training command (argv[0] is fit/validate/test/predict); returns the exit code of a stop decided
    here (non-finite, a signal), None when it finished."""
    from effnet_lightning.train import signals

    command = argv[0]
    previous = signals.install()  # before the slow imports: a signal during start-up is a defined stop
    try:
        return run_lightning(argv)
    except signals.Stopped as stop:  # during start-up, or LastCheckpoint saved and said how to resume
        if not stop.reported:
            log.error(f"effnet {command}: {stop}")
        return signals.EXIT_CODES[stop.signum]
    except KeyboardInterrupt:  # SIGINT before our handler was installed
        log.error(f"effnet {command}: stopped by SIGINT during start-up; nothing was saved")
        return EXIT_INTERRUPTED
    finally:
        if in_process:
            signals.restore(previous)
        else:  # the console script: a late signal during interpreter exit must not change the exit code
            signals.ignore()


def run_lightning(argv: list[str]) -> int | None:
    """LightningCLI; the exit code of a non-finite stop or Lightning's own SIGTERM path, None when it finished."""
    from jsonargparse import ArgumentError
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from effnet_lightning.assembly import plugins
    from effnet_lightning.assembly.lightning_cli import EffnetCLI
    from effnet_lightning.callbacks.nonfinite import NonFiniteLossError
    from effnet_lightning.errors import UserError
    from effnet_lightning.train.finite import NonFiniteStateError
    from effnet_lightning.train.signals import Stopped

    command = argv[0]
    run_folders: list[Path] = []  # the run folder, once the CLI has picked it (for the crash note)
    try:
        plugins.load_and_report()  # makes drop-in and entry-point datamodules known by their short class names
        with warnings.catch_warnings():
            # Lightning 2.6's own helper (CombinedLoader, every run) builds torch's deprecated LeafSpec; neither the
            # user nor we can act on the FutureWarning. Ignored by category and emitting module only, for this one
            # call; pyproject pins lightning<2.7 and tests/train/test_quiet.py fails once Lightning stops raising it.
            # private: Lightning's `_pytree` module names the source; no public setting avoids the warning.
            warnings.filterwarnings("ignore", category=FutureWarning, module=PYTREE_MODULE)
            EffnetCLI(args=None if argv == sys.argv[1:] else argv, on_run_dir=run_folders.append)
    except ArgumentError as err:  # a malformed config or option
        raise ConfigError(f"{parse_error_line(err)} (see 'effnet {command} --help')") from err
    except (NonFiniteLossError, NonFiniteStateError) as err:
        log.error(f"effnet {command}: error: {err}")
        return EXIT_NONFINITE
    except SIGTERMException:  # Lightning's own SIGTERM path; LastCheckpoint saved in on_exception
        return EXIT_PREEMPTED
    except (Stopped, UserError):  # main() reports a signal; cli.py a user error
        raise
    except Exception as err:  # a crash: cli.py prints the traceback, this note says where the run's results are
        err.add_note(crash_note(command, run_folders[-1] if run_folders else None))
        raise
    return None


def crash_note(command: str, run: Path | None) -> str:
    """Where a crashed run's log and its last checkpoint are."""
    if run is None or not run.is_dir():
        return f"effnet {command}: no run folder was written"
    if command != "fit":
        return f"effnet {command}: its log (config.yaml, TensorBoard events) is in {run}"
    last = last_checkpoint(run)
    kept = f"the last checkpoint is {last}" if last.is_file() else "no last.ckpt was written yet"
    return f"effnet {command}: the run's log (config.yaml, TensorBoard events) is in {run}, {kept}"
