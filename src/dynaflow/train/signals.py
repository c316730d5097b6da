"""Stopping a run: the exceptions a run ends with, and the stop signals (Ctrl-C, SIGTERM, SIGHUP,
SIGUSR1), which finish the update, save ``last`` and exit with 128 + the signal's number."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax

from dynaflow import distributed


class TrainingStopped(RuntimeError):
    """The run cannot go on (too many consecutive non-finite updates); ``last`` was saved."""


class TrainingInterrupted(RuntimeError):
    """A stop signal (Ctrl-C, SIGTERM, SIGHUP, SIGUSR1): the run stopped cleanly after saving ``last``.
    ``exit_code`` is the shell's convention for it, 128 + the signal's number (130 for Ctrl-C)."""

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = int(signum)
        self.exit_code = 128 + int(signum)


#: The signals that stop a run cleanly: Ctrl-C, a scheduler's termination (SLURM, Kubernetes), a closed
#: terminal, and SLURM's usual pre-emption warning.
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1")


class StopRequests:
    """Stop signals while training (:data:`STOP_SIGNALS`): the first only asks the loop to stop (it
    finishes the update, saves ``last`` and exits with 128 + the signal's number); a second one during a
    save waits for the save to finish; a second one at any other moment stops at once (the checkpoints on
    disk are complete either way). Outside the main thread nothing is installed."""

    def __init__(self) -> None:
        self.signum: int | None = None  # the first stop signal received
        self.saving = False
        self.deferred: int | None = None  # a second signal that arrived during a save
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for name in STOP_SIGNALS:
                sig = getattr(signal, name, None)
                if sig is not None:
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        if self.signum is None:
            self.signum = signum
        elif self.saving:
            self.deferred = signum
        else:
            raise TrainingInterrupted(
                f"dynaflow train: interrupted at once by a second {signal_name(signum)} (nothing saved now; "
                "the checkpoints on disk are complete)",
                signum,
            )

    @contextlib.contextmanager
    def saving_now(self) -> Iterator[None]:
        """A save in progress: a signal arriving now waits until it is written."""
        before, self.saving = self.saving, True
        try:
            yield
        finally:
            self.saving = before


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15, ``SIGINT (Ctrl-C)`` for 2, and so on."""
    try:
        name = signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
    return name + " (Ctrl-C)" if signum == signal.SIGINT else name


def stopped_message(signum: int, step: int, run_dir: Path) -> str:
    """The one line a stopped run prints: the signal, what was saved, and the command that continues it."""
    import shlex

    again = f"dynaflow train --resume {shlex.quote(str(run_dir))}"
    if jax.process_count() > 1:
        again += " (in every process, with the same --coordinator or --distributed flags)"
    if not distributed.is_main():
        return (
            f"dynaflow train: process {jax.process_index()}: interrupted by {signal_name(signum)} at step "
            f"{step}; process 0 saved {run_dir / 'last'}"
        )
    return (
        f"dynaflow train: interrupted by {signal_name(signum)} at step {step}; saved {run_dir / 'last'} "
        f"(step {step}); continue with: {again}"
    )
