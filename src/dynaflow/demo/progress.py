"""The demo's progress: one bar per stage with the stage's note and the time left of ``--budget-minutes``
(rich, on a terminal), or a plain line at most every 30 s (logs)."""

from __future__ import annotations

import sys
import time


class StageBar:
    """``[2/6] train dynaflow ━━━━━━╸━━━━━ 50% step 1200, val TRE 0.31  12:10 of the budget left``."""

    def __init__(self, stages: list[str], budget_s: float, stream=None):
        self.stages, self.budget_s = stages, budget_s
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.t0 = time.perf_counter()
        self.index, self.name, self.last_line = 0, "", 0.0
        self._progress = self._task = None
        if self.tty:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[left]} of the budget left  {task.fields[note]}"),
                console=Console(file=self.stream),
                transient=True,
            )

    def left_s(self) -> float:
        """Seconds of the budget left."""
        return max(self.budget_s - (time.perf_counter() - self.t0), 0.0)

    def start(self, name: str) -> None:
        self.index = self.stages.index(name) + 1
        self.name = name
        if self._progress is not None:
            if self._task is None:
                self._progress.start()
            else:
                self._progress.remove_task(self._task)
            label = f"[{self.index}/{len(self.stages)}] {name:<16s}"
            self._task = self._progress.add_task(label, total=1.0, note="", left=self._left_text())
        self.update(0.0, force=True)

    def _left_text(self) -> str:
        left = self.left_s()
        return f"{int(left // 60)}:{int(left % 60):02d}"

    def update(self, fraction: float, note: str = "", force: bool = False) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        if self._progress is not None:
            self._progress.update(self._task, completed=fraction, note=note, left=self._left_text())
            return
        now = time.perf_counter()
        if not force and now - self.last_line < 30:
            return  # logs get a line every 30 s at most
        self.last_line = now
        bar = "#" * int(20 * fraction) + "." * (20 - int(20 * fraction))
        self.stream.write(
            f"[{self.index}/{len(self.stages)}] {self.name:<16s} [{bar}] {100 * fraction:3.0f}%  "
            f"{self._left_text()} of the budget left  {note}".rstrip()
            + "\n"
        )
        self.stream.flush()

    def say(self, text: str) -> None:
        """A line of its own (above the bar on a terminal)."""
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def done(self, message: str) -> None:
        elapsed = time.perf_counter() - self.t0
        self.say(f"[{self.index}/{len(self.stages)}] {message} ({elapsed / 60:.1f} min elapsed)")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
