"""Run directories: which checkpoint a path means (:func:`resolve_checkpoint`), what of an earlier run a
directory holds, the newest checkpoint that loads (``--resume auto``), and removing a run
(``--overwrite``)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

from dynaflow.checkpoint.load import load_checkpoint, read_config
from dynaflow.checkpoint.meta import RUN_FILES, CheckpointError
from dynaflow.checkpoint.save import recover


def resolve_checkpoint(path: str | Path, prefer: tuple[str, ...] = ("last",)) -> Path:
    """``path`` when it is a checkpoint directory; for a run directory, its first checkpoint in ``prefer``
    that exists (``path`` unchanged otherwise, so loading it names what is missing). An interrupted save of
    a preferred checkpoint is recovered first."""
    path = Path(path)
    if not (path / "config.json").exists() and path.is_dir():
        for name in prefer:
            recover(path / name)
            if (path / name / "config.json").exists():
                return path / name
    return path


def run_contents(run_dir: str | Path) -> list[str]:
    """What of an earlier run a directory holds: ``metrics.jsonl`` and checkpoint directories (or the
    leftovers of an interrupted save). Empty for a missing or unrelated directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [name for name in RUN_FILES if (run_dir / name).exists()]
    for p in sorted(run_dir.iterdir()):
        if p.is_dir() and (p / "config.json").exists():
            found.append(p.name)
        elif p.name.startswith(".") and (".tmp-" in p.name or ".old-" in p.name) and p.is_dir():
            found.append(p.name)
    return found


def latest_checkpoint(run_dir: str | Path) -> tuple[Path | None, list[str]]:
    """The checkpoint of ``run_dir`` with the most updates that loads completely (``--resume auto``),
    and notes, one line each: a checkpoint skipped because it does not load (damaged, truncated,
    incomplete), an interrupted save recovered.

    Interrupted saves are recovered first (:func:`recover`). Ties go to ``last``, then the newest file.
    ``(None, skipped)`` when the directory is missing, empty or holds no loadable checkpoint."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None, []
    names = set()
    for p in run_dir.iterdir():
        if p.name.startswith(".") and (".tmp-" in p.name or ".old-" in p.name):
            names.add(p.name[1:].rsplit(".tmp-" if ".tmp-" in p.name else ".old-", 1)[0])
        elif p.is_dir():
            names.add(p.name)
    candidates = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in sorted(names):
            recover(run_dir / name)
    skipped = [str(w.message) for w in caught]
    for name in sorted(names):
        path = run_dir / name
        if not (path / "config.json").is_file():
            continue
        try:
            step = read_config(path)["progress"]["step"]
        except CheckpointError as e:
            skipped.append(f"skipping {path}: {e}")
            continue
        candidates.append((step, name == "last", (path / "config.json").stat().st_mtime, path))
    for *_, path in sorted(candidates, key=lambda c: c[:3], reverse=True):
        try:
            load_checkpoint(path, with_opt_state=True)
        except CheckpointError as e:
            skipped.append(f"skipping {path}: {e}")
            continue
        return path, skipped
    return None, skipped


def remove_run(run_dir: str | Path) -> None:
    """Delete what :func:`run_contents` lists (``--overwrite``); anything else in the directory stays."""
    run_dir = Path(run_dir)
    for name in run_contents(run_dir):
        p = run_dir / name
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()
