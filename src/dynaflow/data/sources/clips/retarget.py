"""Retargeting a clip onto the Go2 (resample, tile, clamp, place, velocities) and many clips into a
dataset."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dynaflow.data.conditioning import COND_NAMES, GAITS, heading_velocity
from dynaflow.data.quat import (
    body_angular_velocity,
    continuous,
    heading,
    qconj,
    qmul,
    qrotate,
    qyaw,
    slerp,
)
from dynaflow.data.sources.clips.frames import CTRL_DT, LOOP_SECONDS, Clip, read_clip
from dynaflow.data.sources.clips.profiles import ClipError, RobotProfile, feet_in_world
from dynaflow.robots.go2 import FOOT_RADIUS, JOINT_NAMES, STATE_DIM

# retargeting


#: bytes retargeting holds per output step at its peak (measured: about 1.4 KiB with tracemalloc)
BYTES_PER_STEP = 1536
FLOAT32_MAX = float(np.finfo(np.float32).max)


def available_memory() -> int | None:
    """Bytes of memory this machine can still give (``MemAvailable``; physical memory elsewhere), or
    None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def _size(nbytes: float) -> str:
    unit = "bytes"
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if nbytes < 1024 or unit == "PiB":
            break
        nbytes /= 1024
    return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"


def check_memory(nbytes: float, seconds: float | None, what: str) -> None:
    """Refuse, before allocating, work that needs more memory than is available (one line naming
    ``--seconds``, the memory needed and the memory there is)."""
    free = available_memory()
    if free is not None and nbytes > free:
        flag = f"--seconds {seconds:g}: " if seconds is not None else ""
        raise ClipError(
            f"{flag}{what} would need about {_size(nbytes)} of memory, more than the {_size(free)} "
            "available; give a shorter --seconds"
        )


#: rad a joint may pass its range before it is clamped: MuJoCo's soft limits let simulated motion (which
#: ``dynaflow export`` writes) go this far, and such motion must come back unchanged.
LIMIT_SLACK = 0.02


def joint_ranges() -> np.ndarray:
    """The Go2's 12 joint ranges ``(12, 2)`` (rad), from its MJCF."""
    from dynaflow.physics.model import load_go2_model

    m = load_go2_model()
    return np.asarray(m.jnt_range[1:], np.float64)


@dataclass
class Retargeted:
    """A clip on the Go2: ``states (T, 37)`` at ``dt`` and what retargeting did to it."""

    states: np.ndarray
    dt: float
    info: dict = field(default_factory=dict)


def retarget(
    clip: Clip,
    seconds: float | None = None,
    dt: float = CTRL_DT,
    place: bool = True,
    ranges: np.ndarray | None = None,
) -> Retargeted:
    """Resample, tile, clamp and place a clip on the Go2 (see the module docstring).

    ``seconds``: output length; looping clips are tiled to it (default :data:`LOOP_SECONDS`), others
    are cut to it (default: their own length). ``place=False`` keeps the clip's trunk height."""
    steps = _output_steps(clip, seconds, dt)
    t = np.arange(steps) * dt
    cycle, k, w = _frame_weights(clip, t)
    pos, quat, joints, rot_c = _tiled_pose(clip, cycle, k, w)
    joints, clamped, excess = _clamp_joints(joints, joint_ranges() if ranges is None else ranges)
    linvel, angvel, jointvel, velocities = _velocities(clip, pos, quat, joints, rot_c, k, w, dt)
    qpos, lowest, shift = _placed_pose(pos, quat, joints, place)
    states = np.concatenate([qpos, linvel, angvel, jointvel], axis=1)
    assert states.shape[1] == STATE_DIM
    info = {
        **_timing_info(clip, steps, t, dt),
        "velocities": velocities,
        **_contact_info(qpos, lowest, shift, place),
        **_clamp_info(clamped, excess),
        "ignored_numbers_per_frame": clip.ignored_numbers,
    }
    return Retargeted(states, dt, info)


def _output_steps(clip: Clip, seconds: float | None, dt: float) -> int:
    """Output steps (at least 2): looping clips tiled to ``seconds``, others cut to it; refused before
    allocating when they would not fit in memory."""
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"seconds: expected a positive number, got {seconds!r}")
    asked = seconds
    length = clip.duration
    if seconds is None:
        seconds = max(LOOP_SECONDS, length) if clip.loop else length
    elif not clip.loop:
        seconds = min(seconds, length)
    steps = int(math.floor(seconds / dt + 1e-6)) + (0 if clip.loop else 1)
    steps = max(steps, 2)
    check_memory(steps * BYTES_PER_STEP, asked, f"{clip.source or clip.name}: {steps:,} steps of {dt:g} s")
    return steps


def _frame_weights(clip: Clip, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output time: the clip's cycle, the frame ``k`` before it and the weight ``w`` of ``k + 1``."""
    length = clip.duration
    if clip.loop:
        cycle = np.floor(t / length + 1e-9).astype(int)
        tau = t - cycle * length
    else:
        cycle = np.zeros(len(t), int)
        tau = np.minimum(t, length)
    u = np.clip(tau / clip.frame_duration, 0, clip.frames - 1)
    k = np.minimum(np.floor(u + 1e-9).astype(int), clip.frames - 2)
    return cycle, k, u - k


def _lerp(a: np.ndarray, k: np.ndarray, w: np.ndarray) -> np.ndarray:
    return (1 - w)[:, None] * a[k] + w[:, None] * a[k + 1]


def _tiled_pose(
    clip: Clip, cycle: np.ndarray, k: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Position, orientation and joints at the output times, each cycle moved by the clip's cycle offsets
    (as motion_imitation: the heading turns by dh per cycle, the position moves by dp, rotated); and the
    per-step cycle rotation."""
    pos, joints = _lerp(clip.pos, k, w), _lerp(clip.joints, k, w)
    quat = slerp(clip.quat[k], clip.quat[k + 1], w)
    dp = np.zeros(3)
    dh = 0.0
    if clip.loop and clip.offset_position:
        dp = clip.pos[-1] - clip.pos[0]
        dp[2] = 0.0
    if clip.loop and clip.offset_rotation:
        dh = float(heading(qmul(clip.quat[-1], qconj(clip.quat[0]))))
    rot_c = qyaw(cycle * dh)
    offsets = np.zeros((cycle.max() + 1, 3))
    for c in range(1, len(offsets)):
        offsets[c] = offsets[c - 1] + qrotate(qyaw((c - 1) * dh), dp)
    pos = qrotate(rot_c, pos) + offsets[cycle]
    quat = continuous(qmul(rot_c, quat))
    return pos, quat, joints, rot_c


def _clamp_joints(joints: np.ndarray, ranges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Joints clamped to the Go2's ranges, widened by what its soft joint limits let the simulator
    reach: ``(joints, clamped (T, 12), excess past the range per joint)``."""
    lo, hi = ranges[:, 0], ranges[:, 1]
    excess = np.maximum(lo - joints, joints - hi).max(axis=0)
    lo, hi = lo - LIMIT_SLACK, hi + LIMIT_SLACK
    clamped = (joints < lo) | (joints > hi)
    return np.clip(joints, lo, hi), clamped, excess


def _velocities(
    clip: Clip,
    pos: np.ndarray,
    quat: np.ndarray,
    joints: np.ndarray,
    rot_c: np.ndarray,
    k: np.ndarray,
    w: np.ndarray,
    dt: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Base linear (world) and angular (body) velocity and joint velocities: the clip's own (AMP frames)
    or finite differences of the pose; and which."""
    if clip.linvel is not None:
        linvel = qrotate(rot_c, _lerp(clip.linvel, k, w))
        ang_world = qrotate(rot_c, _lerp(clip.angvel, k, w))
        angvel = qrotate(qconj(quat), ang_world)
        return linvel, angvel, _lerp(clip.jointvel, k, w), "frames"
    linvel = np.gradient(pos, dt, axis=0)
    angvel = body_angular_velocity(quat, dt)
    jointvel = np.gradient(joints, dt, axis=0)
    return linvel, angvel, jointvel, "finite differences"


def _placed_pose(
    pos: np.ndarray, quat: np.ndarray, joints: np.ndarray, place: bool
) -> tuple[np.ndarray, np.ndarray, float]:
    """``qpos (T, 19)`` with the feet put on the floor (the median lowest foot bottom at 0) when
    ``place``; the lowest foot bottom per step after it, and the height shift."""
    qpos = np.concatenate([pos, quat, joints], axis=1)
    lowest = (feet_in_world(qpos)[..., 2] - FOOT_RADIUS).min(axis=1)  # (T,) lowest foot bottom
    shift = -float(np.median(lowest)) if place else 0.0
    qpos[:, 2] += shift
    return qpos, lowest + shift, shift


def _timing_info(clip: Clip, steps: int, t: np.ndarray, dt: float) -> dict:
    length = clip.duration
    return {
        "clip_seconds": length,
        "clip_frames": clip.frames,
        "frame_duration": clip.frame_duration,
        "loop": clip.loop,
        "seconds": (steps - 1) * dt,
        "steps": steps,
        "cycles": float(t[-1] / length) if length > 0 else 0.0,
    }


def _contact_info(qpos: np.ndarray, lowest: np.ndarray, shift: float, place: bool) -> dict:
    floating = lowest > 0.01
    return {
        "height_offset_m": shift,
        "placed": place,
        "mean_height_m": float(qpos[:, 2].mean()),
        "foot_penetration_max_m": float(max(0.0, -lowest.min())),
        "foot_penetration_mean_m": float(np.maximum(0.0, -lowest).mean()),
        "all_feet_above_1cm_fraction": float(floating.mean()),
        "float_mean_m": float(lowest[floating].mean()) if floating.any() else 0.0,
    }


def _clamp_info(clamped: np.ndarray, excess: np.ndarray) -> dict:
    return {
        "clamped_steps": int(clamped.any(axis=1).sum()),
        "clamps_per_joint": {
            name: int(n) for name, n in zip(JOINT_NAMES, clamped.sum(axis=0), strict=True) if n
        },
        "clamp_max_excess_rad": float(max(0.0, excess.max())),
    }


def _check_float32(path: str | Path, states: np.ndarray, dt: float) -> None:
    """A retargeted clip's states must be finite float32 numbers (the dataset's type); a number in the
    clip too large for that is named by its state and time, in one line."""
    from dynaflow.robots.go2 import STATE_GROUPS

    bad = ~(np.abs(states) <= FLOAT32_MAX)
    if bad.any():
        t, d = (int(v) for v in np.argwhere(bad)[0])
        group = next(g for g, sl in STATE_GROUPS.items() if sl.start <= d < sl.stop)
        raise ClipError(
            f"{path}: state dim {d} ({group}) at {t * dt:.2f} s (step {t}) is {states[t, d]:.3g} after "
            "retargeting, beyond a float32's range (3.4e38); the clip holds a number too large for a "
            "position, angle or velocity"
        )


# many clips -> one dataset


_TRAILING = re.compile(r"[\s_\-.]*\d+$")


def label_of(path: str | Path) -> str:
    """A clip's style label from its file name: the stem without a trailing number (``trot0`` -> ``trot``)."""
    stem = Path(path).stem
    label = _TRAILING.sub("", stem)
    return (label or stem).lower()


def conditioning_layout(labels: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(conditioning names, style names)`` for clip labels: the gait library's 7-D layout when every
    label is one of its gaits, else (vx, vy, yaw rate) and one style per distinct label (sorted)."""
    if labels and set(labels) <= set(GAITS):
        return list(COND_NAMES), list(GAITS)
    styles = sorted(set(labels))
    return ["vx_cmd", "vy_cmd", "yaw_rate_cmd", *(f"style_{s}" for s in styles)], styles


def import_clips(
    paths: Sequence[str | Path],
    profile: RobotProfile,
    seconds: float | None = None,
    labels: Sequence[str] | None = None,
    fps: float | None = None,
    quat_order: str | None = None,
    dt: float = CTRL_DT,
    place: bool = True,
) -> tuple[dict[str, np.ndarray], dict]:
    """Retarget clips into the dataset schema: ``(arrays, summary)``.

    One episode per clip (shorter ones padded with their last state, ``episode_lengths`` set); the
    conditioning of each is the heading-frame (vx, vy, yaw rate) measured on it plus its style one-hot
    (:func:`conditioning_layout`); ``labels`` default to :func:`label_of` the file names."""
    if not paths:
        raise ValueError("no clips given")
    labels = [label_of(p) for p in paths] if labels is None else [str(x).strip().lower() for x in labels]
    if len(labels) != len(paths):
        raise ValueError(f"labels: got {len(labels)} for {len(paths)} clips (give one, or one per clip)")
    names, styles = conditioning_layout(labels)
    ranges = joint_ranges()
    episodes, summaries = [], []
    for path, label in zip(paths, labels, strict=True):
        clip = read_clip(path, profile, fps=fps, quat_order=quat_order)
        with np.errstate(all="ignore"):  # a huge number in a clip is reported below, in one line
            r = retarget(clip, seconds=seconds, dt=dt, place=place, ranges=ranges)
            speed = heading_velocity(r.states, dt)
        _check_float32(path, r.states, dt)
        episodes.append(r.states)
        summaries.append(
            {
                "file": str(path),
                "label": label,
                "speed_vx_vy_yaw_rate": speed.tolist(),
                "heading_speed_m_s": float(np.hypot(speed[0], speed[1])),
                **r.info,
            }
        )
    T = max(len(e) for e in episodes)
    n = len(episodes)
    check_memory(n * T * (STATE_DIM + len(names)) * 12, seconds, f"{n} episode(s) of {T:,} steps")
    states = np.empty((n, T, STATE_DIM))
    cond = np.zeros((n, T, len(names)))
    lengths = np.array([len(e) for e in episodes])
    for i, (e, s) in enumerate(zip(episodes, summaries, strict=True)):
        states[i, : len(e)] = e
        states[i, len(e) :] = e[-1]
        cond[i, :, :3] = s["speed_vx_vy_yaw_rate"]
        cond[i, :, 3 + styles.index(s["label"])] = 1.0
    arrays = {"states": states.astype(np.float32), "conditionings": cond.astype(np.float32)}
    if (lengths != T).any():
        arrays["episode_lengths"] = lengths
    summary = {
        "profile": profile.to_dict(),
        "ctrl_dt": dt,
        "conditioning": names,
        "labels": styles,
        "clips": summaries,
    }
    return arrays, summary
