"""Stopping a long job the ways jobs are really stopped, at a moment of our choosing.

Ctrl+C sends SIGINT; ``timeout``, Slurm and ``docker stop`` send SIGTERM. Left to Python, SIGINT
raises KeyboardInterrupt wherever the program happens to be (say, between the optimiser step and
the iteration counter, so a checkpoint written then pairs new weights with an old count) and
SIGTERM ends the process on the spot. :class:`StopSignals` turns both into a request that the
loop reads at a safe point:

    >>> with StopSignals() as stop:
    ...     while not stop.received:
    ...         one_step()                   # a signal here lets the step finish
    >>> stop.received                        # "SIGTERM", "SIGINT" or None

A second signal of the same kind acts as it normally would (Ctrl+C twice: KeyboardInterrupt at
once). Handlers can only be installed in the main thread; elsewhere the context does nothing.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading

STOP_SIGNALS = ("SIGINT", "SIGTERM")
EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}   # what a shell reports: 128 + the signal's number


class StopSignals:
    """Context manager: while inside, SIGINT and SIGTERM set :attr:`received` instead of acting.

    note: a line written to stderr when the first signal arrives (None: say nothing)."""

    def __init__(self, note: str | None = "stopping at the next safe point (send it again to quit at once)"):
        self.note = note
        self.received: str | None = None
        self._previous: dict = {}

    def _handle(self, number, _frame) -> None:
        self.received = signal.Signals(number).name
        signal.signal(number, self._previous[number])      # the next one acts at once
        if self.note:
            # os.write, not print: printing here while the interrupted code prints to the same
            # buffered stream raises "reentrant call"
            with contextlib.suppress(OSError):
                os.write(2, f"\n{self.received}: {self.note}\n".encode())

    def __enter__(self) -> StopSignals:
        self.received = None
        if threading.current_thread() is threading.main_thread():
            for name in STOP_SIGNALS:
                number = getattr(signal, name)
                previous = signal.signal(number, self._handle)
                # None: a handler installed outside Python; the default is the closest we can restore
                self._previous[number] = signal.SIG_DFL if previous is None else previous
        return self

    def __exit__(self, *_exc) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}


def ignore_stop_signals(_worker_id: int = 0) -> None:
    """For worker processes (a DataLoader's ``worker_init_fn``): they share the terminal's process
    group, so Ctrl+C reaches them too, but the main process decides when to stop and ends them."""
    for name in STOP_SIGNALS:
        signal.signal(getattr(signal, name), signal.SIG_IGN)


__all__ = ["StopSignals", "ignore_stop_signals", "STOP_SIGNALS", "EXIT_CODES"]
