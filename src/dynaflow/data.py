"""Demonstration data: the NPZ schema, its validation, the episode split, windows and normalisation.

A dataset is one ``.npz`` file (loaded with ``allow_pickle=False``):

====================  =============  ============================================================
key                   shape          meaning
====================  =============  ============================================================
``states``            (N, T, 37)     required; the 37-D state layout of :mod:`dynaflow.physics`
``conditionings``     (N, T, C)      optional; per-step conditioning (commands, gait one-hot, ...)
``actions``           (N, T, 12)     optional; never used to train DynaFlow (baselines/checks may)
``episode_lengths``   (N,)           optional; valid steps per episode when episodes are padded
====================  =============  ============================================================

Training sees *windows* of ``H + 1`` consecutive states of one episode (``X1 = x0 .. xH``); the
window's conditioning is the conditioning at its **first** step (the command in force when the plan
starts). Train and validation sets are split **by episode**, so no window of a validation episode is
ever trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dynaflow.physics import ACTION_DIM, STATE_DIM

QUAT = slice(3, 7)
QUAT_TOLERANCE = 0.05  # | |q| - 1 | above this is not a unit quaternion (a wrong layout, not rounding)
STD_FLOOR = 1e-2  # per-dimension std floor: a (nearly) constant dimension must not blow up the loss


class DatasetError(ValueError):
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
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise DatasetError(f"{source}: no such dataset file")
    with open(path, "rb") as fh:
        if fh.read(4) != b"PK\x03\x04":
            raise DatasetError(
                f"{source}: not a readable .npz file (not a zip archive; write it with np.savez)"
            )
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except ValueError as e:  # object arrays need pickle: refused
        raise DatasetError(
            f"{source}: cannot be read without pickle ({e}); store plain numeric arrays"
        ) from e
    except Exception as e:  # noqa: BLE001 - zipfile/OSError/EOFError: truncated or not an npz
        raise DatasetError(f"{source}: not a readable .npz file ({type(e).__name__}: {e})") from e
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
    _check_finite(source, "states", states, valid)
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
        _check_finite(source, key, arr, valid)
        return arr.astype(np.float32)

    conds = per_step("conditionings", conditionings, None)
    acts = per_step("actions", actions, ACTION_DIM)
    return Dataset(states.astype(np.float32), lengths, conds, acts, source)


def _numeric(source: str, key: str, arr) -> np.ndarray:
    arr = np.asarray(arr)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise _fail(source, key, f"expected a numeric array, got dtype {arr.dtype}")
    return arr


def _check_finite(source: str, key: str, arr: np.ndarray, valid: np.ndarray) -> None:
    bad = ~np.isfinite(arr) & valid.reshape(valid.shape + (1,) * (arr.ndim - 2))
    if bad.any():
        idx = tuple(int(v) for v in np.argwhere(bad)[0])
        raise _fail(
            source, key, f"contains NaN or inf (first at episode {idx[0]}, step {idx[1]}, dim {idx[2]})"
        )


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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        (np.savez_compressed if compressed else np.savez)(f, **arrays)
    tmp.replace(path)
    return path


# --------------------------------------------------------------------------------------------
# Split and windows


def split_episodes(dataset: Dataset, val_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split episode indices into (train, validation), by episode, deterministically for a seed.

    With ``val_fraction > 0`` at least one episode goes to validation and at least one to training."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction: expected a value in [0, 1), got {val_fraction}")
    n = dataset.num_episodes
    order = np.random.default_rng(seed).permutation(n)
    if val_fraction == 0.0:
        return np.sort(order), np.zeros(0, dtype=np.int64)
    if n < 2:
        raise DatasetError(
            f"{dataset.source}: a validation split needs at least 2 episodes, got {n} (use val_fraction 0)"
        )
    n_val = min(max(1, int(round(val_fraction * n))), n - 1)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def window_index(dataset: Dataset, episodes: np.ndarray, horizon: int, stride: int = 1) -> np.ndarray:
    """All windows of ``horizon + 1`` states inside the given episodes: an (M, 2) array (episode, start)."""
    if horizon < 1 or stride < 1:
        raise ValueError(f"horizon and stride must be >= 1, got {horizon}, {stride}")
    short = [int(e) for e in episodes if dataset.lengths[e] < horizon + 1]
    if short:
        e = short[0]
        raise DatasetError(
            f"{dataset.source}: episode {e} has {dataset.lengths[e]} states, fewer than horizon + 1 = "
            f"{horizon + 1} ({len(short)} such episodes); use a shorter --horizon or longer episodes"
        )
    rows = [
        np.stack([np.full(len(s), e), s], axis=1)
        for e in episodes
        for s in [np.arange(0, dataset.lengths[e] - horizon, stride)]
    ]
    return np.concatenate(rows).astype(np.int64) if rows else np.zeros((0, 2), np.int64)


def gather_windows(dataset: Dataset, index: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray | None]:
    """States ``(M, H+1, 37)`` of the windows in ``index`` and their conditioning ``(M, C)`` (first step)."""
    ep, start = index[:, 0], index[:, 1]
    steps = start[:, None] + np.arange(horizon + 1)[None, :]
    X = dataset.states[ep[:, None], steps]
    c = None if dataset.conditionings is None else dataset.conditionings[ep, start]
    return X, c


def gather_actions(dataset: Dataset, index: np.ndarray, horizon: int) -> np.ndarray:
    """Recorded actions ``(M, H, 12)`` of the windows in ``index``: a_k drives x_k to x_{k+1}.

    Only the baselines that see action labels (``state-fm-id``, ``bc``) use them; DynaFlow never does."""
    if dataset.actions is None:
        raise DatasetError(
            f"{dataset.source}: key 'actions' missing; the state-fm-id and bc baselines learn from recorded "
            "actions (DynaFlow and state-fm do not need them)"
        )
    ep, start = index[:, 0], index[:, 1]
    return dataset.actions[ep[:, None], start[:, None] + np.arange(horizon)[None, :]]


# --------------------------------------------------------------------------------------------
# Normalisation


@dataclass(frozen=True)
class Normalizer:
    """Per-dimension z-scoring of state trajectories, travelling inside the checkpoint.

    Base x, y are first made relative to the trajectory's initial state (a window that starts at
    x = 5 m is the same motion as one that starts at 0: the floor is flat), then every dimension is
    z-scored with the training windows' mean and std, except the quaternion (left as is: it is
    already unit-scale and its components are not independent)."""

    mean: np.ndarray  # (37,)
    std: np.ndarray  # (37,)

    @staticmethod
    def identity() -> Normalizer:
        return Normalizer(np.zeros(STATE_DIM, np.float32), np.ones(STATE_DIM, np.float32))

    @staticmethod
    def fit(X: np.ndarray) -> Normalizer:
        """Statistics of windows ``X`` (M, H+1, 37), positions relative to each window's start."""
        Xr = relative_xy(np.asarray(X, np.float64))
        flat = Xr.reshape(-1, STATE_DIM)
        mean = flat.mean(axis=0)
        std = np.maximum(flat.std(axis=0), STD_FLOOR)
        mean[QUAT], std[QUAT] = 0.0, 1.0
        return Normalizer(mean.astype(np.float32), std.astype(np.float32))

    def to_dict(self) -> dict:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @staticmethod
    def from_dict(d: dict) -> Normalizer:
        mean, std = np.asarray(d["mean"], np.float32), np.asarray(d["std"], np.float32)
        if mean.shape != (STATE_DIM,) or std.shape != (STATE_DIM,) or np.any(std <= 0):
            raise ValueError(f"normalizer: expected mean and std of shape ({STATE_DIM},) with std > 0")
        return Normalizer(mean, std)


def relative_xy(X):
    """Trajectories ``(..., H+1, 37)`` with base x, y made relative to the first state (NumPy or JAX)."""
    offset = X[..., :1, 0:2]
    if isinstance(X, np.ndarray):
        out = X.copy()
        out[..., 0:2] -= offset
        return out
    return X.at[..., 0:2].add(-offset)


BUNDLED = Path(__file__).resolve().parent / "datasets" / "go2_gaits.npz"


def bundled_dataset() -> Path:
    """Path of the dataset shipped with the package: the gait library, 100 episodes of 4 s (20 per gait:
    trot, pace, bound, pronk, stand), states + actions + 7-D conditioning, made by
    ``dynaflow data gaits --out go2_gaits.npz --episodes 100 --seconds 4 --seed 0 --compress``."""
    if not BUNDLED.is_file():
        raise DatasetError(f"{BUNDLED}: the bundled dataset is missing from this installation")
    return BUNDLED
