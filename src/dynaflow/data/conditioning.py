"""What a gait motion is conditioned on, and the same measured on a motion; NumPy only (no JAX, no MuJoCo).

The gait library's conditioning is ``[vx_cmd, vy_cmd, yaw_rate_cmd, one-hot gait (trot, pace, bound,
pronk)]`` (standing: all zeros). What a trajectory achieves is measured the same way everywhere (the gait
library, the clip importer, the evaluation): the base velocity in the heading frame and the yaw rate,
from :func:`yaw_of` and :func:`heading_velocity`. Kept free of JAX so that ``dynaflow data import``
starts in a fraction of a second.
"""

from __future__ import annotations

import numpy as np

from dynaflow.data.quat import heading
from dynaflow.robots.go2 import LINVEL, QUAT

GAITS = ("trot", "pace", "bound", "pronk")
ALL_GAITS = (*GAITS, "stand")
COND_NAMES = ("vx_cmd", "vy_cmd", "yaw_rate_cmd", *(f"gait_{g}" for g in GAITS))
COND_DIM = len(COND_NAMES)


def yaw_of(X: np.ndarray) -> np.ndarray:
    """Heading (rad) of each state ``(..., 37)``, from its (w, x, y, z) quaternion."""
    return heading(np.asarray(X)[..., QUAT])


def heading_velocity(X: np.ndarray, dt: float) -> np.ndarray:
    """Achieved (vx, vy, yaw rate) of trajectories ``(..., T, 37)``: means over time of the base velocity
    in the heading frame and of the finite-difference yaw rate; ``(..., 3)``."""
    X = np.asarray(X, np.float64)
    yaw = np.unwrap(yaw_of(X), axis=-1)
    c, s = np.cos(yaw), np.sin(yaw)
    vx_world, vy_world = X[..., LINVEL.start], X[..., LINVEL.start + 1]
    vx = (c * vx_world + s * vy_world).mean(-1)
    vy = (-s * vx_world + c * vy_world).mean(-1)
    wz = (np.gradient(yaw, axis=-1) / dt).mean(-1) if X.shape[-2] > 1 else np.zeros(X.shape[:-2])
    return np.stack([vx, vy, wz], axis=-1)


def tracking_error(X: np.ndarray, command: np.ndarray, dt: float = 0.02) -> np.ndarray:
    """Achieved minus commanded (vx, vy) in the body's heading frame and yaw rate, means over X."""
    return heading_velocity(X, dt) - command
