"""Reading clip files (AMP / motion_imitation JSON, qpos CSV / NPZ) into the Go2's convention."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dynaflow.data.quat import continuous, qconj, qmul, qrotate
from dynaflow.data.sources.clips.profiles import QUAT_TOL, ClipError, RobotProfile
from dynaflow.fileio import read_npz
from dynaflow.robots.go2 import JOINTS, NQ, POS, QUAT

CTRL_DT = 0.02  # s, the rollout's default control step
LOOP_SECONDS = 10.0  # looping clips are tiled to this length unless told otherwise
#: The parts of an AMP frame in order, with their sizes; a pose frame is the first three.
AMP_PARTS = (
    ("root_pos", 3),
    ("root_quat", 4),
    ("joint_pos", 12),
    ("toe_pos", 12),  # body frame
    ("root_linvel", 3),  # body frame
    ("root_angvel", 3),  # body frame
    ("joint_vel", 12),
    ("toe_vel", 12),
)
AMP: dict[str, slice] = {}
_start = 0
for _name, _size in AMP_PARTS:
    AMP[_name] = slice(_start, _start + _size)
    _start += _size
AMP_WIDTH = _start  # 61
POSE_WIDTH = AMP["joint_pos"].stop  # 19
LOOP_MODES = ("Wrap", "Clamp")


# reading clips


@dataclass
class Clip:
    """A clip in the Go2's convention at its own frame times (velocities ``None`` unless given)."""

    name: str
    frame_duration: float
    loop: bool
    offset_position: bool
    offset_rotation: bool
    pos: np.ndarray  # (F, 3) world, scaled to the Go2
    quat: np.ndarray  # (F, 4) w x y z, our body frame, sign-continuous
    joints: np.ndarray  # (F, 12) our order and convention
    linvel: np.ndarray | None = None  # (F, 3) world
    angvel: np.ndarray | None = None  # (F, 3) world (made body-frame after resampling)
    jointvel: np.ndarray | None = None  # (F, 12)
    weight: float | None = None
    ignored_numbers: int = 0  # per frame, numbers beyond the ones used
    source: str = ""

    @property
    def frames(self) -> int:
        return len(self.pos)

    @property
    def duration(self) -> float:
        return (self.frames - 1) * self.frame_duration


def _is_number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _frames_array(path: str, frames) -> np.ndarray:
    if not isinstance(frames, list) or len(frames) < 2:
        n = len(frames) if isinstance(frames, list) else type(frames).__name__
        raise ClipError(f"{path}: key 'Frames': expected a list of at least 2 frames, got {n}")
    width = None
    for i, f in enumerate(frames):
        if not isinstance(f, list) or not all(_is_number(x) for x in f):
            raise ClipError(f"{path}: key 'Frames': frame {i} is not a list of numbers")
        if width is None:
            width = len(f)
            if width < POSE_WIDTH:
                raise ClipError(
                    f"{path}: key 'Frames': frame 0 has {width} numbers; expected at least {POSE_WIDTH} "
                    "(root position 3, quaternion x y z w 4, joint angles 12)"
                )
        elif len(f) != width:
            raise ClipError(f"{path}: key 'Frames': frame {i} has {len(f)} numbers, frame 0 has {width}")
    arr = np.asarray(frames, np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise ClipError(f"{path}: key 'Frames': frame {i}, number {j} is not finite")
    _check_range(path, "key 'Frames': frame {}, number {}", arr)
    return arr


def _check_range(path: str, where: str, arr: np.ndarray) -> None:
    """Numbers beyond a float32's range (the dataset's type) are refused, by position, in one line."""
    big = np.abs(arr) > np.finfo(np.float32).max
    if big.any():
        i, j = (int(v) for v in np.argwhere(big)[0])
        raise ClipError(
            f"{path}: {where.format(i, j)} is {arr[i, j]:.3g}, beyond a float32's range (3.4e38): not a "
            "position, angle or velocity"
        )


def _unit_quats(path: str, what: str, q: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(q, axis=-1)
    off = np.abs(norm - 1.0) > QUAT_TOL
    if off.any():
        i = int(np.argmax(off))
        raise ClipError(
            f"{path}: {what} {i}: root quaternion {np.round(q[i], 4).tolist()} has norm {norm[i]:.4f}, "
            "expected a unit quaternion (is the layout position 3, quaternion 4, joints 12?)"
        )
    return q / norm[:, None]


def _to_go2(
    path: str,
    profile: RobotProfile,
    pos: np.ndarray,
    quat_file: np.ndarray,
    joints: np.ndarray,
    quat_order: str,
    what: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Go2-convention (pos, quat, joints) and the source's own quaternion (w x y z)."""
    q_src = quat_file[:, [3, 0, 1, 2]] if quat_order == "xyzw" else quat_file
    q_src = _unit_quats(path, what, q_src)
    quat = continuous(qmul(q_src, qconj(np.asarray(profile.base_rotation))))
    return pos * profile.scale, quat, profile.joints_to_go2(joints), q_src


def read_clip(
    path: str | Path,
    profile: RobotProfile,
    fps: float | None = None,
    quat_order: str | None = None,
    loop: bool | None = None,
) -> Clip:
    """Read a JSON clip, or a CSV / NPZ of qpos rows (``fps`` required), into the Go2's convention.

    ``quat_order`` is the file's quaternion order (``"xyzw"`` by default for JSON clips, ``"wxyz"`` for
    qpos rows); ``loop`` overrides the clip's ``LoopMode`` (qpos rows do not loop unless told)."""
    path = Path(path)
    spath = str(path)
    if not path.is_file():
        raise ClipError(f"{spath}: no such clip file")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".npz"):
        return _read_rows(path, profile, fps, quat_order or "wxyz", bool(loop))
    try:
        raw = json.loads(path.read_text())
    except UnicodeDecodeError:
        raise ClipError(
            f"{spath}: not a text clip (expected AMP/motion_imitation JSON, CSV or NPZ)"
        ) from None
    except json.JSONDecodeError as e:
        raise ClipError(f"{spath}: not JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    if not isinstance(raw, dict):
        raise ClipError(f"{spath}: expected a JSON object with keys LoopMode, FrameDuration, Frames")
    for key in ("Frames", "FrameDuration"):
        if key not in raw:
            raise ClipError(f"{spath}: key '{key}': missing (found {', '.join(sorted(raw)) or 'nothing'})")
    fd = raw["FrameDuration"]
    if isinstance(fd, bool) or not isinstance(fd, int | float) or not (math.isfinite(fd) and fd > 0):
        raise ClipError(f"{spath}: key 'FrameDuration': expected a positive number of seconds, got {fd!r}")
    mode = raw.get("LoopMode", "Clamp")
    if mode not in LOOP_MODES:
        raise ClipError(f"{spath}: key 'LoopMode': expected one of {', '.join(LOOP_MODES)}, got {mode!r}")
    flags = {}
    for key in ("EnableCycleOffsetPosition", "EnableCycleOffsetRotation"):
        v = raw.get(key, False)
        if not isinstance(v, bool | int) or v not in (0, 1):
            raise ClipError(f"{spath}: key '{key}': expected true or false, got {v!r}")
        flags[key] = bool(v)
    weight = raw.get("MotionWeight")
    if weight is not None and (isinstance(weight, bool) or not isinstance(weight, int | float)):
        raise ClipError(f"{spath}: key 'MotionWeight': expected a number, got {weight!r}")
    frames = _frames_array(spath, raw["Frames"])
    order = quat_order or "xyzw"
    pos, quat, joints, q_src = _to_go2(
        spath, profile, *(frames[:, AMP[k]] for k in ("root_pos", "root_quat", "joint_pos")), order, "frame"
    )
    clip = Clip(
        name=path.stem,
        frame_duration=float(fd),
        loop=(mode == "Wrap") if loop is None else loop,
        offset_position=flags["EnableCycleOffsetPosition"],
        offset_rotation=flags["EnableCycleOffsetRotation"],
        pos=pos,
        quat=quat,
        joints=joints,
        weight=None if weight is None else float(weight),
        source=spath,
    )
    if frames.shape[1] == AMP_WIDTH:
        clip.linvel = qrotate(q_src, frames[:, AMP["root_linvel"]]) * profile.scale
        clip.angvel = qrotate(q_src, frames[:, AMP["root_angvel"]])
        clip.jointvel = profile.velocities_to_go2(frames[:, AMP["joint_vel"]])
    else:
        clip.ignored_numbers = frames.shape[1] - POSE_WIDTH
    return clip


def _read_rows(path: Path, profile: RobotProfile, fps: float | None, quat_order: str, loop: bool) -> Clip:
    spath = str(path)
    if fps is None:
        raise ClipError(f"{spath}: qpos rows carry no frame rate; give it (--fps)")
    if not (math.isfinite(fps) and fps > 0):
        raise ClipError(f"{spath}: expected a positive frame rate, got {fps!r}")
    if path.suffix.lower() == ".npz":
        arrays = read_npz(path, "clip file")
        if "qpos" in arrays:
            rows, key = arrays["qpos"], "qpos"
        elif len(arrays) == 1:
            key, rows = next(iter(arrays.items()))
        else:
            found = ", ".join(sorted(arrays))
            raise ClipError(f"{spath}: expected a key 'qpos' (or a single array), found {found}")
    else:
        key = "rows"
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise ClipError(f"{spath}: cannot read the CSV ({e})") from None
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if lines and re.search(r"[A-Za-df-z_]", lines[0]):  # a header row
            lines = lines[1:]
        try:
            rows = np.asarray([[float(x) for x in ln.split(",")] for ln in lines])
        except ValueError as e:
            raise ClipError(f"{spath}: not a CSV of numbers ({e})") from None
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[1] != NQ or rows.shape[0] < 2:
        raise ClipError(
            f"{spath}: key '{key}': expected at least 2 qpos rows of {NQ} numbers, got shape {rows.shape}"
        )
    if not np.issubdtype(rows.dtype, np.number) or not np.isfinite(rows).all():
        raise ClipError(f"{spath}: key '{key}': expected finite numbers")
    rows = rows.astype(np.float64)
    _check_range(spath, f"key '{key}': row {{}}, number {{}}", rows)
    pos, quat, joints, _ = _to_go2(
        spath, profile, rows[:, POS], rows[:, QUAT], rows[:, JOINTS], quat_order, "row"
    )
    return Clip(path.stem, 1.0 / fps, loop, loop, loop, pos, quat, joints, source=spath)
