"""What training sees of a dataset: the episode split, windows of H + 1 states, and the normaliser.

Training sees *windows* of ``H + 1`` consecutive states of one episode (``X1 = x0 .. xH``); the
window's conditioning is the conditioning at its **first** step (the command in force when the plan
starts). Train and validation sets are split **by episode**, so no window of a validation episode is
ever trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dynaflow.data.schema import Dataset, DatasetError
from dynaflow.robots.go2 import QUAT, STATE_DIM, STATE_GROUPS

STD_FLOOR = 1e-2  # per-dimension std floor: a (nearly) constant dimension must not blow up the loss
#: ``std_floor="physical"``: a floor per state group at the scale of motion legs make that kinematic or
#: motion-capture data may leave out (trunk bobbing of 2 cm, 0.05 rad of joint motion, 0.1 m/s, 0.25
#: rad/s, 1 rad/s of joint speed), so a dimension the data holds constant does not make every
#: physically necessary deviation from it cost (deviation / 0.01)^2 in the loss.
PHYSICAL_FLOORS = {
    "base_pos": 0.02,
    "joint_pos": 0.05,
    "base_linvel": 0.1,
    "base_angvel": 0.25,
    "joint_vel": 1.0,
}
STD_FLOORS = ("uniform", "physical")


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


def draw_start_states(
    dataset: Dataset, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | None]:
    """``n`` initial states ``(n, 37)`` drawn uniformly from every valid step of every episode, with the
    conditioning in force there ``(n, C)`` (None without conditionings); with replacement only when the
    dataset has fewer than ``n`` valid steps."""
    if n < 1:
        raise ValueError(f"n: expected >= 1, got {n}")
    starts = np.array([(e, s) for e in range(dataset.num_episodes) for s in range(int(dataset.lengths[e]))])
    pick = starts[rng.choice(len(starts), n, replace=len(starts) < n)]
    x0 = dataset.states[pick[:, 0], pick[:, 1]]
    cond = None if dataset.conditionings is None else dataset.conditionings[pick[:, 0], pick[:, 1]]
    return x0, cond


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
    def fit(X: np.ndarray, floor: str = "uniform") -> Normalizer:
        """Statistics of windows ``X`` (M, H+1, 37), positions relative to each window's start. ``floor``:
        ``"uniform"`` (:data:`STD_FLOOR` everywhere) or ``"physical"`` (:data:`PHYSICAL_FLOORS`)."""
        if floor not in STD_FLOORS:
            raise ValueError(f"std_floor: expected one of {STD_FLOORS}, got {floor!r}")
        Xr = relative_xy(np.asarray(X, np.float64))
        flat = Xr.reshape(-1, STATE_DIM)
        mean = flat.mean(axis=0)
        floors = np.full(STATE_DIM, STD_FLOOR)
        if floor == "physical":
            for group, value in PHYSICAL_FLOORS.items():
                floors[STATE_GROUPS[group]] = value
        std = np.maximum(flat.std(axis=0), floors)
        mean[QUAT], std[QUAT] = 0.0, 1.0
        return Normalizer(mean.astype(np.float32), std.astype(np.float32))

    def to_dict(self) -> dict:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @staticmethod
    def from_dict(d: dict) -> Normalizer:
        mean, std = np.asarray(d["mean"], np.float32), np.asarray(d["std"], np.float32)
        if mean.shape != (STATE_DIM,) or std.shape != (STATE_DIM,):
            raise ValueError(f"normalizer: expected mean and std of shape ({STATE_DIM},)")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise ValueError("normalizer: expected finite mean and std with std > 0")
        return Normalizer(mean, std)


def relative_xy(X):
    """Trajectories ``(..., H+1, 37)`` with base x, y made relative to the first state (NumPy or JAX)."""
    offset = X[..., :1, 0:2]
    if isinstance(X, np.ndarray):
        out = X.copy()
        out[..., 0:2] -= offset
        return out
    return X.at[..., 0:2].add(-offset)
