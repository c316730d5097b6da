"""Quaternion helpers (w, x, y, z, MuJoCo's order), vectorised over leading axes; NumPy only.

Shared by the demonstration sources (gait library, kinematic data, motion clips)."""

from __future__ import annotations

import numpy as np

# quaternions (w, x, y, z), vectorised over leading axes


def qmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a ⊗ b``."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def qconj(q: np.ndarray) -> np.ndarray:
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def qrotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``v`` rotated by unit quaternions ``q`` (body -> world when q is a body orientation)."""
    vq = np.concatenate([np.zeros(v.shape[:-1] + (1,)), v], axis=-1)
    return qmul(qmul(q, vq), qconj(q))[..., 1:]


def qyaw(yaw: np.ndarray) -> np.ndarray:
    yaw = np.asarray(yaw, np.float64)
    z = np.zeros_like(yaw)
    return np.stack([np.cos(yaw / 2), z, z, np.sin(yaw / 2)], axis=-1)


def heading(q: np.ndarray) -> np.ndarray:
    """Heading (rad): the yaw of the body's x axis in the world."""
    w, x, y, z = np.moveaxis(np.asarray(q), -1, 0)
    return np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def continuous(q: np.ndarray) -> np.ndarray:
    """Quaternions ``(T, 4)`` with signs flipped so neighbours lie in one hemisphere (q and -q agree)."""
    q = q.copy()
    for i in range(1, len(q)):
        if np.dot(q[i], q[i - 1]) < 0:
            q[i] = -q[i]
    return q


def slerp(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Spherical interpolation between unit quaternions ``a`` and ``b`` (same shape) at ``w`` in [0, 1]."""
    d = np.sum(a * b, axis=-1, keepdims=True)
    b = np.where(d < 0, -b, b)
    d = np.abs(d)
    w = np.asarray(w, np.float64)[..., None]
    theta = np.arccos(np.clip(d, -1.0, 1.0))
    s = np.sin(theta)
    near = s < 1e-6
    safe = np.where(near, 1.0, s)
    wa = np.where(near, 1 - w, np.sin((1 - w) * theta) / safe)
    wb = np.where(near, w, np.sin(w * theta) / safe)
    out = wa * a + wb * b
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def body_angular_velocity(q: np.ndarray, dt: float) -> np.ndarray:
    """Body-frame angular velocity ``(T, 3)`` of a sign-continuous quaternion sequence ``(T, 4)``."""
    if len(q) < 2:
        return np.zeros((len(q), 3))
    dq = np.gradient(q, dt, axis=0)
    return 2.0 * qmul(qconj(q), dq)[..., 1:]
