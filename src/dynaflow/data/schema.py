"""The demonstration NPZ schema and its validation (one-line errors naming file, key, shape and value).

A dataset is one ``.npz`` file (loaded with ``allow_pickle=False``):

====================  =============  ============================================================
key                   shape          meaning
====================  =============  ============================================================
``states``            (N, T, 37)     required; the 37-D state layout of :mod:`dynaflow.robots.go2`
``conditionings``     (N, T, C)      optional; per-step conditioning (commands, gait one-hot, ...)
``actions``           (N, T, 12)     optional; never used to train DynaFlow (baselines/checks may)
``episode_lengths``   (N,)           optional; valid steps per episode when episodes are padded
====================  =============  ============================================================

Arrays are stored and trained on as float32: values are checked *after* that conversion, so a finite
float64 that overflows float32 (1e39) is refused like a NaN. Windows, the split and the normaliser are in
:mod:`dynaflow.data.windows`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dynaflow.fileio import FileProblem, read_npz, write_npz
from dynaflow.robots.go2 import ACTION_DIM, QUAT, STATE_DIM

QUAT_TOLERANCE = 0.05  # | |q| - 1 | above this is not a unit quaternion (a wrong layout, not rounding)


class DatasetError(FileProblem):
    """A dataset file that does not follow the schema; the message names file, key and problem."""


@dataclass(frozen=True)
class Dataset:
    """A validated demonstration set. Arrays are float32; ``lengths`` holds valid steps per episode."""

    states: np.ndarray
    lengths: np.ndarray
    conditionings: np.ndarray | None = None
    actions: np.ndarray | None = None
    source: str = "<memory>"

    @property
    def num_episodes(self) -> int:
        return int(self.states.shape[0])

    @property
    def cond_dim(self) -> int | None:
        return None if self.conditionings is None else int(self.conditionings.shape[-1])


def _fail(source: str, key: str, msg: str) -> DatasetError:
    return DatasetError(f"{source}: key '{key}': {msg}")


def load_dataset(path: str | Path) -> Dataset:
    """Load and validate a demonstration NPZ (see the module docstring for the schema)."""
    try:
        arrays = read_npz(path, "dataset file")
    except FileProblem as e:
        raise DatasetError(str(e)) from e
    source = str(path)
    return make_dataset(**{k: arrays[k] for k in arrays if k in _KEYS}, source=source, _found=sorted(arrays))


_KEYS = ("states", "conditionings", "actions", "episode_lengths")


def make_dataset(
    states=None,
    conditionings=None,
    actions=None,
    episode_lengths=None,
    source: str = "<memory>",
    _found: list[str] | None = None,
) -> Dataset:
    """Validate arrays against the schema and build a :class:`Dataset` (also used by ``load_dataset``)."""
    if states is None:
        found = ", ".join(_found or []) or "nothing"
        raise _fail(source, "states", f"missing (required, shape (N, T, {STATE_DIM})); found {found}")
    states = _numeric(source, "states", states)
    if states.ndim != 3 or states.shape[-1] != STATE_DIM:
        raise _fail(source, "states", f"expected shape (N, T, {STATE_DIM}), got {states.shape}")
    n, t = states.shape[:2]
    if n < 1 or t < 2:
        raise _fail(source, "states", f"expected at least 1 episode of at least 2 states, got {states.shape}")

    if episode_lengths is None:
        lengths = np.full(n, t, dtype=np.int64)
    else:
        el = _numeric(source, "episode_lengths", episode_lengths)
        if el.shape != (n,):
            raise _fail(source, "episode_lengths", f"expected shape ({n},) to match states, got {el.shape}")
        if not np.all(np.isfinite(el)) or np.any(el != np.round(el)):
            raise _fail(source, "episode_lengths", "expected integers")
        lengths = el.astype(np.int64)
        bad = np.flatnonzero((lengths < 1) | (lengths > t))
        if bad.size:
            i = int(bad[0])
            raise _fail(source, "episode_lengths", f"episode {i} has length {lengths[i]}, outside 1..{t}")

    valid = np.arange(t)[None, :] < lengths[:, None]  # (N, T)
    states = _check_finite(source, "states", states, valid)
    qn = np.linalg.norm(states[..., QUAT], axis=-1)
    off = valid & (np.abs(qn - 1.0) > QUAT_TOLERANCE)
    if off.any():
        i, j = (int(v) for v in np.argwhere(off)[0])
        raise _fail(
            source,
            "states",
            f"base quaternion (dims 3:7, w x y z) has norm {qn[i, j]:.3f} at episode {i}, step {j}; "
            "expected unit quaternions (is the state layout [pos 3, quat 4, joints 12, vel 18]?)",
        )

    def per_step(key, arr, width):
        if arr is None:
            return None
        arr = _numeric(source, key, arr)
        want = f"(N, T, {width})" if width else "(N, T, C)"
        if arr.ndim != 3 or (width and arr.shape[-1] != width) or arr.shape[-1] < 1:
            raise _fail(source, key, f"expected shape {want}, got {arr.shape}")
        if arr.shape[:2] != (n, t):
            raise _fail(source, key, f"expected N, T = {n}, {t} to match states, got {arr.shape}")
        return _check_finite(source, key, arr, valid)

    conds = per_step("conditionings", conditionings, None)
    acts = per_step("actions", actions, ACTION_DIM)
    return Dataset(states, lengths, conds, acts, source)


def _numeric(source: str, key: str, arr) -> np.ndarray:
    arr = np.asarray(arr)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise _fail(source, key, f"expected a numeric array, got dtype {arr.dtype}")
    return arr


def _check_finite(source: str, key: str, arr: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``arr`` as float32, after checking every valid entry is finite *as float32* (1e39 is not)."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = arr.astype(np.float32)
    bad = ~np.isfinite(out) & valid.reshape(valid.shape + (1,) * (arr.ndim - 2))
    if bad.any():
        idx = tuple(int(v) for v in np.argwhere(bad)[0])
        where = f"episode {idx[0]}, step {idx[1]}, dim {idx[2]}"
        value = arr[idx]
        if np.isfinite(value):
            raise _fail(
                source, key, f"value {float(value):.3g} at {where} does not fit in float32 (|x| < 3.4e38)"
            )
        raise _fail(source, key, f"contains NaN or inf (first at {where})")
    return out


def save_dataset(
    path: str | Path, states, conditionings=None, actions=None, episode_lengths=None, compressed: bool = False
) -> Path:
    """Validate and write a dataset NPZ (atomically: a temporary file renamed into place)."""
    ds = make_dataset(states, conditionings, actions, episode_lengths, source=str(path))
    arrays = {"states": ds.states, "episode_lengths": ds.lengths}
    if ds.conditionings is not None:
        arrays["conditionings"] = ds.conditionings
    if ds.actions is not None:
        arrays["actions"] = ds.actions
    path = write_npz(path, arrays, compressed=compressed)
    return path


BUNDLED = Path(__file__).resolve().parent / "datasets" / "go2_gaits.npz"


def bundled_dataset() -> Path:
    """Path of the dataset shipped with the package: the gait library, 100 episodes of 4 s (20 per gait:
    trot, pace, bound, pronk, stand), states + actions + 7-D conditioning, made by
    ``dynaflow data gaits --out go2_gaits.npz --episodes 100 --seconds 4 --seed 0 --compress``."""
    if not BUNDLED.is_file():
        raise DatasetError(f"{BUNDLED}: the bundled dataset is missing from this installation")
    return BUNDLED
