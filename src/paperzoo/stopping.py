"""Stopping a run on Ctrl-C (SIGINT) or SIGTERM (a scheduler's stop, `timeout`, `kill`) without losing its work.

`Stopped` is a `KeyboardInterrupt`, so no `except Exception` (a claim's error handler, a loop's) swallows it; its
message says what was kept, and the CLI prints it as one line and exits with 128 + the signal's number (130 for
Ctrl-C, 143 for SIGTERM).

- `sigterm_raises()`: within it, SIGTERM raises `Stopped` in the main thread, as Ctrl-C raises `KeyboardInterrupt`
  (`reproduce`: stop the workers, keep the finished claims).
- `StopRequest`: within it, the first SIGINT or SIGTERM only records the signal, for a loop to stop at a safe point
  (the trainer finishes its step and saves a checkpoint); a second one raises at once.

Both change the handlers only in the main thread (Python's rule) and restore the previous ones on exit.
"""

from __future__ import annotations

import signal
import threading


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Stopped(KeyboardInterrupt):
    """A run stopped by a signal after keeping what it had; `str(e)` says what was kept, `signum` which signal."""

    def __init__(self, message: str = "", signum: int = signal.SIGINT):
        super().__init__(message)
        self.message = message or f"stopped by {signal_name(signum)}"
        self.signum = int(signum)

    def __str__(self) -> str:
        return self.message


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class sigterm_raises:
    """Context: SIGTERM raises `Stopped(signum=SIGTERM)` where the main thread is (Ctrl-C already raises)."""

    def __enter__(self):
        self.previous = None
        if _in_main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._raise)
        return self

    @staticmethod
    def _raise(signum, frame):
        raise Stopped(signum=signum)

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        return False


class StopRequest:
    """Context: SIGINT and SIGTERM set `signum` (the first one) instead of interrupting; the loop looks at
    `requested` at its safe points. A second signal raises `Stopped` at once (a user who means it)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.signum: int | None = None
        self.previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise Stopped(f"stopped by a second {signal_name(signum)} before the checkpoint was saved", signum)
        self.signum = signum

    def __enter__(self):
        if self.enabled and _in_main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        self.previous = {}
        return False
