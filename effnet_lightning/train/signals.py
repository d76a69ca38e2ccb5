"""SIGINT and SIGTERM as a defined stop: one exit code per signal, and never in the middle of a checkpoint write.

`effnet` installs `stop_handler` for both signals before it does anything else:
- during start-up (parsing, building the model and data, before training starts) a signal stops the command at
  once with `Stopped`: nothing needs saving yet; `effnet` prints one line and exits 130 (SIGINT) or 75 (SIGTERM);
- once training runs, `defer()` makes the handler only record the signal; `LastCheckpoint` notices it at the next
  batch boundary, writes last.ckpt and raises `Stopped`. A second signal while it saves is recorded, not obeyed,
  so it cannot abort the write or the exit that follows (before, a second SIGTERM 0.1-1.5 s later gave exit 143).
Lightning composes its own SIGTERM handler with this one (its signal connector keeps an existing handler).
"""

from __future__ import annotations

import signal
from types import FrameType

from effnet_lightning.errors import EXIT_INTERRUPTED, EXIT_PREEMPTED

__all__ = [
    "EXIT_CODES",
    "STOP_SIGNALS",
    "Stopped",
    "defer",
    "ignore",
    "install",
    "installed",
    "pending",
    "restore",
    "stop_handler",
]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_CODES = {signal.SIGINT: EXIT_INTERRUPTED, signal.SIGTERM: EXIT_PREEMPTED}


class Stopped(Exception):  # not KeyboardInterrupt: Lightning turns that into sys.exit(1)
    """The process got SIGINT or SIGTERM; `signum` says which."""

    def __init__(self, signum: int, message: str = "", reported: bool = False) -> None:
        super().__init__(message or f"stopped by {signal.Signals(signum).name}")
        self.signum = signum
        self.reported = reported  # the message was already printed (by rank 0)


_received: list[int] = []  # signals since install(), in order
_deferred = False  # True while training: record only


def stop_handler(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    if not _deferred:
        raise Stopped(signum, f"stopped by {signal.Signals(signum).name} during start-up; nothing was saved")


def install() -> dict[int, object]:
    """Start-up mode; returns the previous handlers for `restore`."""
    global _deferred
    _received.clear()
    _deferred = False
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    for s in STOP_SIGNALS:
        signal.signal(s, stop_handler)
    return previous


def restore(previous: dict[int, object]) -> None:
    global _deferred
    for s, handler in previous.items():
        signal.signal(s, handler)
    _deferred = False


def ignore() -> None:
    """The command has finished and chosen its exit code: ignore signals while the interpreter exits (Python
    resets its own handlers to the default, killing, ones during finalization; SIG_IGN survives that)."""
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)


def installed() -> bool:
    return signal.getsignal(signal.SIGTERM) is stop_handler or signal.getsignal(signal.SIGINT) is stop_handler


def defer() -> None:
    """Training started: from now on a signal is only recorded, to be acted on at a batch boundary."""
    global _deferred
    _deferred = True


def pending() -> int | None:
    """The first signal received, if any."""
    return _received[0] if _received else None
