"""Generated Go2 motion back out as AMP / motion_imitation clips, for any profile."""

from __future__ import annotations

import math

import numpy as np

from dynaflow.data.quat import continuous, qconj, qmul, qrotate
from dynaflow.data.sources.clips.frames import CTRL_DT, LOOP_MODES, Clip
from dynaflow.data.sources.clips.profiles import RobotProfile, feet_in_body
from dynaflow.data.sources.clips.retarget import retarget
from dynaflow.robots.go2 import ACTION_DIM, ANGVEL, JOINT_VEL, JOINTS, LEGS, LINVEL, POS, QUAT, STATE_DIM

# generated motion -> clips


def motion_clip(states: np.ndarray, dt: float = CTRL_DT, name: str = "motion") -> Clip:
    """A Go2 motion ``(T, 37)`` at ``dt`` as a (non-looping) :class:`Clip` with its velocities."""
    states = check_motion(states)
    q = continuous(states[:, QUAT] / np.linalg.norm(states[:, QUAT], axis=1, keepdims=True))
    return Clip(
        name, dt, False, False, False, states[:, POS], q, states[:, JOINTS],
        linvel=states[:, LINVEL], angvel=qrotate(q, states[:, ANGVEL]), jointvel=states[:, JOINT_VEL],
    )  # fmt: skip


def check_motion(states: np.ndarray) -> np.ndarray:
    """A finite ``(T >= 2, 37)`` float64 motion."""
    states = np.asarray(states, np.float64)
    if states.ndim != 2 or states.shape[1] != STATE_DIM or len(states) < 2:
        raise ValueError(f"states: expected shape (T >= 2, {STATE_DIM}), got {states.shape}")
    if not np.isfinite(states).all():
        raise ValueError("states: contains NaN or inf")
    return states


def export_clip(
    states: np.ndarray,
    profile: RobotProfile,
    dt: float = CTRL_DT,
    loop_mode: str = "Clamp",
    quat_order: str = "xyzw",
    frame_format: str = "amp",
    weight: float | None = None,
    frame_duration: float | None = None,
) -> dict:
    """A motion ``(T, 37)`` at ``dt`` as an AMP / motion_imitation clip (a JSON-ready dict) for
    ``profile``: frames of 61 numbers (``frame_format="amp"``: pose, toe positions, base velocities in
    the body frame, joint and toe velocities) or 19 (``"pose"``), every ``frame_duration`` seconds
    (default ``dt``; other durations resample the motion). :func:`read_clip` + :func:`retarget` with
    ``place=False`` at the same ``dt`` give the motion back."""
    states = check_motion(states)
    if frame_duration is not None and abs(frame_duration - dt) > 1e-12:
        if not (math.isfinite(frame_duration) and frame_duration > 0):
            raise ValueError(f"frame_duration: expected a positive number of seconds, got {frame_duration!r}")
        wide = np.tile([[-np.inf, np.inf]], (12, 1))
        clip = motion_clip(states, dt)
        states = retarget(clip, seconds=clip.duration, dt=frame_duration, place=False, ranges=wide).states
        dt = frame_duration
    if loop_mode not in LOOP_MODES:
        raise ValueError(f"loop_mode: expected one of {', '.join(LOOP_MODES)}, got {loop_mode!r}")
    if quat_order not in ("xyzw", "wxyz"):
        raise ValueError(f"quat_order: expected xyzw or wxyz, got {quat_order!r}")
    if frame_format not in ("amp", "pose"):
        raise ValueError(f"frame_format: expected amp or pose, got {frame_format!r}")
    q = states[:, QUAT] / np.linalg.norm(states[:, QUAT], axis=1, keepdims=True)
    q_src = qmul(q, np.asarray(profile.base_rotation))
    pos = states[:, POS] / profile.scale
    joints = profile.joints_from_go2(states[:, JOINTS])
    qf = q_src[:, [1, 2, 3, 0]] if quat_order == "xyzw" else q_src
    parts = [pos, qf, joints]
    if frame_format == "amp":
        # toe positions in the source's body frame, from its geometry (our convention, its order)
        toes_ours = feet_in_body(states[:, JOINTS], profile.geometry)  # (T, 4, 3) our body frame
        rot_b = np.broadcast_to(np.asarray(profile.base_rotation), toes_ours.shape[:-1] + (4,))
        toes_src = qrotate(qconj(rot_b), toes_ours)[:, [LEGS.index(leg) for leg in profile.legs]]
        toes = toes_src.reshape(len(states), 12)
        lin_body = qrotate(qconj(q_src), states[:, LINVEL]) / profile.scale
        ang_world = qrotate(q, states[:, ANGVEL])
        ang_body = qrotate(qconj(q_src), ang_world)
        jvel = profile.velocities_from_go2(states[:, JOINT_VEL])
        parts += [toes, lin_body, ang_body, jvel, np.gradient(toes, dt, axis=0)]
    frames = np.concatenate(parts, axis=1)
    clip: dict = {
        "LoopMode": loop_mode,
        "FrameDuration": dt,
        "EnableCycleOffsetPosition": loop_mode == "Wrap",
        "EnableCycleOffsetRotation": loop_mode == "Wrap",
    }
    if weight is not None:
        clip["MotionWeight"] = weight
    clip["Frames"] = [[float(x) for x in row] for row in frames]
    return clip


def check_actions(actions: np.ndarray | None, steps: int) -> np.ndarray | None:
    """Actions ``(T or T-1, 12)`` that go with a motion of ``steps`` states, or None."""
    if actions is None:
        return None
    a = np.asarray(actions, np.float64)
    if a.ndim != 2 or a.shape[1] != ACTION_DIM or a.shape[0] not in (steps, steps - 1):
        raise ValueError(f"actions: expected shape ({steps - 1} or {steps}, {ACTION_DIM}), got {a.shape}")
    return a
