"""A run's records: ``metrics.jsonl`` (process 0), Weights & Biases, the progress display (rich, on a
terminal) and an optional hook."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from dynaflow.config import TrainConfig
from dynaflow.fileio import atomic_write


class RunLog:
    """Where every record of the run goes: ``metrics.jsonl`` (process 0), W&B, the progress display and
    an optional hook. On resume, records after the checkpoint's step are dropped from ``metrics.jsonl``
    (they are about to be logged again)."""

    def __init__(
        self, run_dir: Path, config: TrainConfig, main: bool, progress: bool, hook, resume_step: int
    ):
        self.history: list[dict] = []
        self.hook = hook
        self.enabled = progress and main
        self.bar = EpochBar() if self.enabled and sys.stderr.isatty() else None
        self.file = None
        self.wandb = None
        if not main:
            return
        path = run_dir / "metrics.jsonl"
        if resume_step and path.exists():
            keep = [line for line in path.read_text().splitlines() if _step_of(line) <= resume_step]
            atomic_write(path, "".join(line + "\n" for line in keep))
        elif path.exists() and not resume_step:
            path.unlink()
        self.file = open(path, "a")
        self.wandb = _wandb_run(config, run_dir)

    def record(self, rec: dict) -> None:
        self.history.append(rec)
        if self.file is not None:
            self.file.write(json.dumps(rec) + "\n")
            self.file.flush()
        if self.wandb is not None:
            self.wandb.log(rec, step=rec["step"])
        if self.hook is not None:
            self.hook(rec)

    def progress(self, epoch: int, epochs: int, i: int, n: int, loss: float, rate: float) -> None:
        """The epoch's bar (a terminal only): updates done of ``n``, the last loss, the update rate."""
        if self.bar is not None:
            self.bar.show(epoch, epochs, i, n, loss, rate)

    def line(self, text: str) -> None:
        """One line of the run's story (stderr, process 0), printed above the bar."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.print(text)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.file is not None:
            self.file.close()
        if self.wandb is not None:
            self.wandb.finish()


def _step_of(line: str) -> float:
    try:
        return float(json.loads(line).get("step", math.inf))
    except (ValueError, AttributeError):
        return math.inf  # a torn last line from a kill: dropped


def _wandb_run(config: TrainConfig, run_dir: Path):
    if config.log.wandb == "disabled":
        return None
    try:
        import wandb
    except ImportError as e:
        raise SystemExit(
            f"dynaflow train: --wandb {config.log.wandb} needs the wandb package; install it with "
            "pip install 'dynaflow[wandb]' (or use --wandb disabled)"
        ) from e
    return wandb.init(
        project=config.log.wandb_project,
        name=config.log.wandb_name,
        mode=config.log.wandb,
        dir=str(run_dir),
        config=config.to_dict(),
    )


class EpochBar:
    """``epoch 3/10 ━━━━━━╺━━━━ 120/200 loss 0.4123 5.41 steps/s 0:00:15`` on stderr (rich), one bar per
    epoch; lines printed through it appear above the bar."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = None
        self._epoch = None

    def show(self, epoch: int, epochs: int, i: int, n: int, loss: float, rate: float) -> None:
        note = f"loss {loss:.4f} {rate:.2f} steps/s"
        if self._task is None or self._epoch != epoch:
            if self._task is None:
                self._progress.start()
            else:
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task(f"epoch {epoch + 1}/{epochs}", total=n, note=note)
            self._epoch = epoch
        self._progress.update(self._task, completed=i, note=note)

    def print(self, text: str) -> None:
        self._progress.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        self._progress.stop()
