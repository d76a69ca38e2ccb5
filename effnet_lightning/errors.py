"""The error contract of every `effnet` command: what a user can cause, and the exit codes a scheduler reads.

A mistake a user can make (missing data, an unknown variant, a malformed config, a corrupt file, an impossible
number) raises a `UserError` whose message names the key or file and says what to do: one line, exit 2. Anything
else is a crash: exit 1 with its traceback. Nothing catches `ValueError` or `OSError` wholesale to make a crash look
like a user error: a check that knows the user caused something raises one of the kinds below, each also a subclass
of the builtin it replaces (`ConfigError` is a `ValueError`), so `except ValueError` around library calls still
works. Light to import: no torch.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import traceback
from collections.abc import Callable

__all__ = [
    "EXIT_CRASH",
    "EXIT_INTERRUPTED",
    "EXIT_NONFINITE",
    "EXIT_OK",
    "EXIT_PREEMPTED",
    "EXIT_USER_ERROR",
    "MAX_MESSAGE",
    "CheckpointError",
    "ConfigError",
    "CorruptFileError",
    "DataError",
    "DiskFullError",
    "DownloadError",
    "MissingFileError",
    "OneLineParser",
    "UserError",
    "exit_code",
    "is_disk_full",
    "one_line",
    "outcome",
    "parse_error_line",
]

EXIT_OK = 0
EXIT_CRASH = 1  # a bug or a fault: the traceback is printed
EXIT_USER_ERROR = 2  # one line that says what to do (argparse's own code for a usage error)
EXIT_NONFINITE = 3  # the loss or weights became NaN/inf; last.ckpt is the last finite state
EXIT_PREEMPTED = 75  # SIGTERM: last.ckpt saved at the step reached; rerun with --ckpt_path (sysexits EX_TEMPFAIL)
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C): last.ckpt saved at the step reached; 128 + 2, as shells report it
MAX_MESSAGE = 500  # characters: a Union error quotes the whole given value, e.g. a datamodule's every argument
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)  # "no space left on device", "disk quota exceeded"


class UserError(Exception):
    """A mistake the user can fix; the message names the key or file and says what to do."""


class ConfigError(UserError, ValueError):
    """A setting (config key, command-line option, argument) the user must change."""


class DataError(UserError, ValueError):
    """The data's content is unusable as it is (labels out of range, class folders without images, ...)."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named, or that the data needs, is not there."""


class CorruptFileError(UserError, OSError):
    """A file is damaged or not what it claims to be; it is left untouched."""


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be used as it is (holds Python objects, needs a missing module, not Lightning's)."""


class DiskFullError(UserError, OSError):
    """No space left where a file is written; the previous file is intact."""


class DownloadError(UserError, ConnectionError):
    """A download failed; the message says where to get the files instead."""


def is_disk_full(err: BaseException | None) -> bool:
    """Whether `err`, or an exception it was raised from, is a full disk or quota (torch.save wraps the OSError in
    a RuntimeError)."""
    while err is not None:
        if isinstance(err, OSError) and err.errno in DISK_FULL:
            return True
        err = err.__cause__ or err.__context__
    return False


def one_line(message: str, limit: int = MAX_MESSAGE) -> str:
    """A message as one line of at most `limit` characters."""
    line = " ".join(message.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def parse_error_line(err: BaseException) -> str:
    """A parse error (jsonargparse's ArgumentError) as one line. When its root cause is a `UserError` (a link's
    compute function, a constructor's check), that sentence already says what to do; otherwise the parser's whole
    message, which names the option and the value."""
    root = err
    while root.__cause__ is not None:
        root = root.__cause__
    return one_line(str(root if isinstance(root, UserError) else err))


def exit_code(stop: SystemExit) -> int:
    """The exit code a SystemExit carries (argparse's --help and usage errors, jsonargparse's --print_config)."""
    if stop.code is None:
        return EXIT_OK
    return stop.code if isinstance(stop.code, int) else EXIT_CRASH


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage dump), exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USER_ERROR, self.usage_line(message))

    def usage_line(self, message: str) -> str:
        return f"{self.prog}: error: {one_line(message)} (see '{self.prog} --help')\n"


def outcome(command: str, run: Callable[[], int | None]) -> int:
    """Calls a command's body and returns the exit code of how it ended; the one mapping of every `effnet` command.

    - it returned: 0, or the code it returned (3 non-finite, 75 SIGTERM, 130 SIGINT are decided where they happen);
    - a `UserError`: one line on stderr, exit 2 (`EFFNET_TRACEBACK=1` adds the traceback);
    - SystemExit from a parser (`--help`, a usage error it has already printed in one line): its code;
    - anything else is a crash: the traceback (with any note the command added, such as where the run folder is),
      then one line naming the command and the exception, exit 1.
    """
    try:
        code = run()
    except UserError as err:
        if os.environ.get("EFFNET_TRACEBACK"):
            traceback.print_exc()
        print(f"effnet {command}: error: {one_line(str(err))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except SystemExit as stop:  # argparse/jsonargparse: --help, --print_config, a usage error already printed
        return exit_code(stop)
    except Exception as err:  # a crash
        traceback.print_exc()
        print(f"effnet {command}: crashed with {type(err).__name__} (traceback above)", file=sys.stderr, flush=True)
        return EXIT_CRASH
    return EXIT_OK if code is None else code
