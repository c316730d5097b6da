"""Kinematic (dynamically infeasible) demonstrations, like retargeted motion capture.

Made from gait-library episodes by replacing the simulated base motion with **kinematic integration
of the commanded velocity**: the trunk glides at constant height with a pure-yaw orientation, moving
exactly as commanded (body-frame vx, vy rotated by the integrated heading; yaw rate as commanded),
while the joints replay the simulated leg motion. Optionally the joint trajectories are **time-warped**
(played ``time_scale`` times faster, velocities scaled alike). Nothing here is simulated: the feet slide
and the trunk ignores the legs, so no action sequence reproduces these states exactly — which is the
point of the paper's second experiment (DynaFlow must turn them into feasible motion).
"""

from __future__ import annotations

import numpy as np

from dynaflow.data.quat import qyaw
from dynaflow.robots.go2 import JOINT_VEL, JOINTS, STATE_DIM

yaw_quaternion = qyaw  # (w, x, y, z) quaternions of pure rotations about world z


def kinematic_from_gaits(
    states: np.ndarray,
    conditionings: np.ndarray,
    ctrl_dt: float = 0.02,
    time_scale: float = 1.0,
    height: float | None = None,
) -> np.ndarray:
    """Kinematic versions ``(N, T, 37)`` of gait episodes ``states (N, T, 37)``.

    ``conditionings`` must start with the commanded (vx, vy, yaw rate) as the gait library writes them.
    ``time_scale`` > 1 plays the joint motion faster (resampled by linear interpolation, clamped at the
    episode's end). ``height`` is the trunk height (default: each episode's mean simulated height)."""
    states = np.asarray(states, np.float64)
    cond = np.asarray(conditionings, np.float64)
    if states.ndim != 3 or states.shape[-1] != STATE_DIM:
        raise ValueError(f"states: expected shape (N, T, {STATE_DIM}), got {states.shape}")
    if cond.shape[:2] != states.shape[:2] or cond.shape[-1] < 3:
        raise ValueError(f"conditionings: expected shape {states.shape[:2] + ('C >= 3',)}, got {cond.shape}")
    if time_scale <= 0:
        raise ValueError(f"time_scale: expected > 0, got {time_scale}")
    n, t = states.shape[:2]
    out = np.empty_like(states)
    src_t = np.minimum(np.arange(t) * time_scale, t - 1)
    lo = np.floor(src_t).astype(int)
    hi = np.minimum(lo + 1, t - 1)
    w = (src_t - lo)[:, None]
    for i in range(n):
        vx, vy, wz = cond[i, 0, :3]
        yaw0 = 2 * np.arctan2(states[i, 0, 6], states[i, 0, 3])  # heading of the first state
        yaw = yaw0 + wz * ctrl_dt * np.arange(t)
        c, s = np.cos(yaw), np.sin(yaw)
        vel_w = np.stack([c * vx - s * vy, s * vx + c * vy], axis=1)  # world-frame planar velocity
        steps = np.concatenate([np.zeros((1, 2)), np.cumsum(vel_w[:-1] * ctrl_dt, axis=0)])
        pos = states[i, 0, :2] + steps
        out[i, :, 0:2] = pos
        out[i, :, 2] = states[i, :, 2].mean() if height is None else height
        out[i, :, 3:7] = yaw_quaternion(yaw)
        joints = (1 - w) * states[i, lo, JOINTS] + w * states[i, hi, JOINTS]
        jvel = ((1 - w) * states[i, lo, JOINT_VEL] + w * states[i, hi, JOINT_VEL]) * time_scale
        out[i, :, JOINTS] = joints
        out[i, :, 19:21] = vel_w
        out[i, :, 21] = 0.0
        out[i, :, 22:24] = 0.0
        out[i, :, 24] = wz
        out[i, :, JOINT_VEL] = jvel
    return out.astype(np.float32)
