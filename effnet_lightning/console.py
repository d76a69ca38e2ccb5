"""Where the package's messages go: library code logs, the `effnet` command decides what reaches the terminal.

Library code (the LightningCLI subclass, callbacks, datamodules, the checkpoint reader) never prints. It logs to
`logging.getLogger(__name__)`: notes and warnings meant for stderr, already worded for a terminal
(`effnet: warning: ...`). What a command reports as its result (the run summary, the plain progress lines, where
predictions were written) goes to the `effnet_lightning.output` logger instead, which `effnet` shows on stdout.
Under `effnet` (`console()`), records of INFO and above print as their bare message; outside it (a notebook, a
script) the caller's logging configuration decides, and by default only warnings reach stderr.
Light to import: no torch.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

__all__ = ["OUTPUT", "console", "output"]

PACKAGE = "effnet_lightning"
OUTPUT = f"{PACKAGE}.output"  # a command's results: stdout


def output() -> logging.Logger:
    """The logger for what a command reports as its output (stdout under `effnet`)."""
    return logging.getLogger(OUTPUT)


class _Terminal(logging.Handler):
    """Writes each record's message to the stdout or stderr of the moment it is emitted (pytest and notebooks
    replace them; a stream fixed when the handler was made could be closed by then)."""

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stdout if record.name == OUTPUT else sys.stderr
        try:
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # logging's contract: a failed write is reported by handleError, never raised
            self.handleError(record)


@contextlib.contextmanager
def console() -> Iterator[None]:
    """For one command: the package's records of INFO and above as bare lines on the terminal, and not also
    passed to the root logger's handlers. Everything is as before afterwards."""
    logger = logging.getLogger(PACKAGE)
    handler = _Terminal(logging.INFO)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
