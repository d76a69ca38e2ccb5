"""The effnet LightningCLI inside another command's process (the study's units): built on a command line, or run
as `effnet fit|validate|test|predict` would run it.

LightningCLI reads its command line from sys.argv when it is given none, and warns when it is given one while
sys.argv holds another (as it does inside `effnet study ...`). So the command line goes into sys.argv for the
call and is put back afterwards. A command run here ends as it ends under `effnet`: `errors.outcome` turns a
UserError into exit 2 (its one line on stderr) and a crash into exit 1 (its traceback on stderr). What it writes
to stderr still reaches the terminal and is also kept, with the exception that ended it, for the caller's record
of a failure.
"""

from __future__ import annotations

import collections
import contextlib
import io
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from effnet_lightning.errors import outcome

if TYPE_CHECKING:
    from effnet_lightning.assembly.lightning_cli import EffnetCLI

__all__ = ["Ended", "build", "command_line", "run_command"]


@contextlib.contextmanager
def command_line(argv: Sequence[str]) -> Iterator[None]:
    """sys.argv is `<program> argv...` inside this block, as it was afterwards."""
    typed = sys.argv
    sys.argv = [typed[0], *argv]
    try:
        yield
    finally:
        sys.argv = typed


def build(argv: Sequence[str]) -> EffnetCLI:
    """EffnetCLI on `argv` (fit's options, without a subcommand) with run=False: its trainer, model and datamodule
    are built, nothing runs. Parse errors come as jsonargparse raises them."""
    from effnet_lightning.assembly.lightning_cli import EffnetCLI

    with command_line(argv):
        return EffnetCLI(args=None, run=False)


@dataclass(frozen=True)
class Ended:
    """How a command run in this process ended."""

    code: int  # its exit code, as `effnet` returns it
    stderr: str  # the end of what it wrote to stderr (its one line for a user error, its traceback for a crash)
    error: Exception | None  # what it raised (a UserError or a crash); None where it returned


def run_command(argv: Sequence[str], keep: int) -> Ended:
    """`effnet <argv>` for a training command (argv[0] is fit/validate/test/predict) in this process; keeps the
    last `keep` characters of its stderr."""
    from effnet_lightning.assembly import run as training  # looked up when called: tests replace run.main

    raised: list[Exception] = []

    def body() -> int | None:
        try:
            return training.main(list(argv))
        except Exception as err:  # kept for the caller's record; outcome() maps it to the exit code
            raised.append(err)
            raise

    stderr = sys.stderr
    sys.stderr = tee = _Tee(stderr, keep)
    try:
        with command_line(argv):
            code = outcome(argv[0], body)
    finally:
        sys.stderr = stderr
    return Ended(code, tee.kept(), raised[-1] if raised else None)


class _Tee(io.TextIOBase):
    """Writes to the terminal's stream and keeps the last `keep` characters written."""

    def __init__(self, stream: TextIO, keep: int) -> None:
        self.stream, self.keep = stream, keep
        self.chunks: collections.deque[str] = collections.deque()
        self.size = 0

    def write(self, text: str) -> int:
        self.chunks.append(text)
        self.size += len(text)
        while self.chunks and self.size - len(self.chunks[0]) >= self.keep:
            self.size -= len(self.chunks.popleft())
        return self.stream.write(text)

    def kept(self) -> str:
        return "".join(self.chunks)[-self.keep :]

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")
