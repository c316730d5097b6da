"""Writing a checkpoint atomically (a hidden temporary directory renamed into place, the old one moved
aside first) and :func:`recover`, which finishes or undoes a save that a kill interrupted."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import traverse_util

from dynaflow.checkpoint.meta import ARRAY_FILES, FORMAT, FORMAT_VERSION, CheckpointError, versions
from dynaflow.runtime import test_event


def _flatten(tree: Mapping) -> dict[str, np.ndarray]:
    flat = traverse_util.flatten_dict(jax.device_get(dict(tree)), sep="/")
    return {k: np.asarray(v) for k, v in flat.items()}


def _unflatten(arrays: Mapping[str, np.ndarray]) -> dict:
    return traverse_util.unflatten_dict(dict(arrays), sep="/")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _siblings(path: Path, kind: str) -> list[Path]:
    if not path.parent.is_dir():
        return []
    return sorted(path.parent.glob(f".{path.name}.{kind}-*"), key=lambda p: p.stat().st_mtime)


def _complete(path: Path) -> bool:
    """A checkpoint directory whose config.json parses and whose array files match their hashes."""
    try:
        config = json.loads((path / "config.json").read_text())
        files = config.get("files") or {}
        return bool(files) and all(_sha256(path / name) == sha for name, sha in files.items())
    except (OSError, ValueError, AttributeError, TypeError):
        return False


def recover(path: str | Path) -> str | None:
    """Finish or undo a save of ``path`` that a kill interrupted, and remove stale temporaries.

    A save writes ``.NAME.tmp-*``, moves an existing ``NAME`` to ``.NAME.old-*``, renames the temporary to
    ``NAME`` and deletes the old one. Killed between the two renames, ``NAME`` is missing: the newest
    complete temporary (or else the old checkpoint) becomes ``NAME`` again. Returns what was done, or None
    when there was nothing to do."""
    path = Path(path)
    tmps, olds = _siblings(path, "tmp"), _siblings(path, "old")
    if not tmps and not olds:
        return None
    done = None
    if not path.exists():
        for candidate, what in [
            *((t, "the interrupted save") for t in reversed(tmps)),
            *((o, "the previous checkpoint") for o in reversed(olds)),
        ]:
            if _complete(candidate):
                os.rename(candidate, path)
                _fsync_dir(path.parent)
                done = f"{path}: restored from {what} ({candidate.name}) after an interrupted save"
                break
    for stale in [*tmps, *olds]:
        if stale.exists():
            shutil.rmtree(stale, ignore_errors=True)
            done = done or f"{path}: removed {stale.name} left by an interrupted save"
    if done:
        warnings.warn(done, stacklevel=2)
    return done


def save_checkpoint(
    path: str | Path,
    params: Mapping,
    ema_params: Mapping,
    config: Mapping[str, Any],
    opt_state: Any = None,
) -> Path:
    """Write a checkpoint directory at ``path`` atomically (replacing an existing one).

    ``params`` / ``ema_params`` are the model's full variable dicts; ``config`` is the ``config.json``
    content from :func:`checkpoint_meta` (or :func:`model_meta`); ``opt_state`` is any pytree (saved as its
    leaves). Non-finite weights are refused: a checkpoint is always usable."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover(path)
    flat = {"params.npz": _flatten(params), "ema_params.npz": _flatten(ema_params)}
    for fname, arrays in flat.items():
        for name, value in arrays.items():
            if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
                raise CheckpointError(f"{path / fname}: weight '{name}' is not finite; refusing to save it")
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        for fname, arrays in flat.items():
            _write_npz(tmp / fname, arrays)
        if opt_state is not None:
            leaves = jax.device_get(jax.tree.leaves(opt_state))
            _write_npz(tmp / "opt_state.npz", {f"leaf_{i:05d}": np.asarray(v) for i, v in enumerate(leaves)})
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            **dict(config),
            "versions": versions(),
            "files": {name: _sha256(tmp / name) for name in ARRAY_FILES if (tmp / name).exists()},
        }
        with open(tmp / "config.json", "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        test_event("save", path.name)
        if path.exists():
            old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(path, old)
            test_event("rename", path.name)  # the moment `path` is missing: recover() restores it
            os.rename(tmp, path)
            _fsync_dir(path.parent)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
            _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
