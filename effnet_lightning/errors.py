"""The error contract of every `effnet` command: what a user can cause, and the exit codes a scheduler reads.

A mistake a user can make (missing data, an unknown variant, a malformed config, a corrupt file, an impossible
number) raises a `UserError` whose message names the key or file and says what to do: one line, exit 2. Anything
else is a crash: exit 1 with its traceback. Light to import: no torch.
"""

from __future__ import annotations

import argparse

__all__ = [
    "EXIT_CRASH",
    "EXIT_INTERRUPTED",
    "EXIT_NONFINITE",
    "EXIT_OK",
    "EXIT_PREEMPTED",
    "EXIT_USER_ERROR",
    "MAX_MESSAGE",
    "OneLineParser",
    "UserError",
    "one_line",
]

EXIT_OK = 0
EXIT_CRASH = 1  # a bug or a fault: the traceback is printed
EXIT_USER_ERROR = 2  # one line that says what to do (argparse's own code for a usage error)
EXIT_NONFINITE = 3  # the loss or weights became NaN/inf; last.ckpt is the last finite state
EXIT_PREEMPTED = 75  # SIGTERM: last.ckpt saved at the step reached; rerun with --ckpt_path (sysexits EX_TEMPFAIL)
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C): last.ckpt saved at the step reached; 128 + 2, as shells report it
MAX_MESSAGE = 500  # characters: a Union error quotes the whole given value, e.g. a datamodule's every argument


class UserError(Exception):
    """A mistake the user can fix; the message names the key or file and says what to do."""


def one_line(message: str, limit: int = MAX_MESSAGE) -> str:
    """A message as one line of at most `limit` characters."""
    line = " ".join(message.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage dump), exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {one_line(message)} (see '{self.prog} --help')\n")
