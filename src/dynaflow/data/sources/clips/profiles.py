"""Source-robot profiles: leg geometry, forward kinematics, and how a clip's numbers become the Go2's."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dynaflow.data.quat import qrotate
from dynaflow.fileio import FileProblem
from dynaflow.robots.go2 import FOOT_X, HIP_X, HIP_Y, JOINTS, L_CALF, L_THIGH, LEGS, POS, QUAT, THIGH_Y

QUAT_TOL = 1e-2  # | |q| - 1 | above this is a wrong layout, not rounding


class ClipError(FileProblem):
    """A clip or profile that cannot be read; the message names file, key or frame, and the problem."""


# leg geometry and forward kinematics (Unitree convention, our joint order FL FR RL RR)


@dataclass(frozen=True)
class LegGeometry:
    """Where a quadruped's legs are (m): hip joints at (±hip_x, ±hip_y) from the trunk origin (rear
    hips at -hip_x_rear when the trunk is not symmetric), the thigh joint ``hip_offset`` further out,
    then thigh and calf of the given lengths; the foot centre ``foot_x`` ahead of the calf's axis."""

    hip_x: float
    hip_y: float
    hip_offset: float
    thigh: float
    calf: float
    hip_x_rear: float | None = None
    foot_x: float = 0.0

    @property
    def leg_length(self) -> float:
        return self.thigh + self.calf


GO2_GEOMETRY = LegGeometry(HIP_X, HIP_Y, THIGH_Y, L_THIGH, L_CALF, foot_x=FOOT_X)
_SIGN_X = np.array([1.0, 1.0, -1.0, -1.0])  # FL FR RL RR
_SIGN_Y = np.array([1.0, -1.0, 1.0, -1.0])


def feet_in_body(joints: np.ndarray, geom: LegGeometry = GO2_GEOMETRY) -> np.ndarray:
    """Foot centres ``(..., 4, 3)`` in the trunk frame for joint angles ``(..., 12)`` in our order and
    convention (hip about x, thigh and calf about y, all zero = legs straight down)."""
    j = np.asarray(joints, np.float64).reshape(joints.shape[:-1] + (4, 3))
    a, t, k = j[..., 0], j[..., 1], j[..., 2]
    rear = geom.hip_x if geom.hip_x_rear is None else geom.hip_x_rear
    hx = np.where(_SIGN_X > 0, geom.hip_x, -rear)
    hy = _SIGN_Y * geom.hip_y
    tk = t + k
    x = -geom.thigh * np.sin(t) - geom.calf * np.sin(tk) + geom.foot_x * np.cos(tk)
    z = -geom.thigh * np.cos(t) - geom.calf * np.cos(tk) - geom.foot_x * np.sin(tk)
    y = _SIGN_Y * geom.hip_offset
    ca, sa = np.cos(a), np.sin(a)
    return np.stack([hx + x, hy + ca * y - sa * z, sa * y + ca * z], axis=-1)


def feet_in_world(qpos: np.ndarray, geom: LegGeometry = GO2_GEOMETRY) -> np.ndarray:
    """Foot centres ``(T, 4, 3)`` in the world for qpos rows ``(T, 19)`` (w x y z quaternion)."""
    body = feet_in_body(qpos[:, JOINTS], geom)
    q = np.repeat(qpos[:, None, QUAT], 4, axis=1)
    return qpos[:, None, POS] + qrotate(q, body)


# profiles


@dataclass(frozen=True)
class RobotProfile:
    """How a source robot's clip numbers map onto the Go2 (see the module docstring)."""

    name: str
    legs: tuple[str, ...]  # the legs' order in the file, e.g. ("FR", "FL", "RR", "RL")
    joint_sign: tuple[float, ...]  # 12, in the file's order: go2 = sign * clip + offset
    joint_offset: tuple[float, ...]  # 12, rad
    base_rotation: tuple[float, float, float, float]  # (w, x, y, z): the source base in our body frame
    geometry: LegGeometry
    source: str = ""  # where the figures come from

    @property
    def scale(self) -> float:
        """Go2 leg length over the source's: root translations and speeds are scaled by it."""
        return GO2_GEOMETRY.leg_length / self.geometry.leg_length

    def permutation(self) -> np.ndarray:
        """``perm`` with ``go2_joints = mapped_clip_joints[..., perm]``."""
        return np.concatenate([np.arange(3) + 3 * self.legs.index(leg) for leg in LEGS])

    def joints_to_go2(self, joints: np.ndarray) -> np.ndarray:
        mapped = np.asarray(self.joint_sign) * joints + np.asarray(self.joint_offset)
        return mapped[..., self.permutation()]

    def joints_from_go2(self, joints: np.ndarray) -> np.ndarray:
        inv = np.argsort(self.permutation())
        return (joints[..., inv] - np.asarray(self.joint_offset)) / np.asarray(self.joint_sign)

    def velocities_to_go2(self, jvel: np.ndarray) -> np.ndarray:
        return (np.asarray(self.joint_sign) * jvel)[..., self.permutation()]

    def velocities_from_go2(self, jvel: np.ndarray) -> np.ndarray:
        return jvel[..., np.argsort(self.permutation())] / np.asarray(self.joint_sign)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["geometry"] = {k: v for k, v in d["geometry"].items() if v is not None}
        return d


_UNITREE_ORDER = ("FR", "FL", "RR", "RL")
_IDENTITY = (1.0, 0.0, 0.0, 0.0)

PROFILES: dict[str, RobotProfile] = {
    "go2": RobotProfile(
        "go2", LEGS, (1.0,) * 12, (0.0,) * 12, _IDENTITY, GO2_GEOMETRY,
        "DynaFlow's own Go2 (its MJCF's joint order FL FR RL RR)",
    ),
    "go1": RobotProfile(
        "go1", _UNITREE_ORDER, (1.0,) * 12, (0.0,) * 12, _IDENTITY,
        LegGeometry(0.1881, 0.04675, 0.08, 0.213, 0.213),
        "Unitree Go1 URDF (Unitree convention), legs FR FL RR RL as in PyBullet/AMP clips",
    ),
    "a1": RobotProfile(
        "a1", _UNITREE_ORDER, (1.0,) * 12, (0.0,) * 12, _IDENTITY,
        LegGeometry(0.183, 0.047, 0.08505, 0.2, 0.2),
        "Unitree A1 URDF (Unitree convention), legs FR FL RR RL as in AMP_for_hardware's clips",
    ),
    # Laikago (motion_imitation): URDF base x left, y up, z forward; hip abduction axes -z (right legs)
    # and +z (left legs); the thigh link points 0.5989 rad behind its joint's zero, the calf 0.0877.
    "laikago": RobotProfile(
        "laikago", _UNITREE_ORDER,
        (-1.0, 1.0, 1.0, 1.0, 1.0, 1.0, -1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
        (0.0, 0.5989, -0.5112) * 4,
        (0.5, 0.5, 0.5, 0.5),
        LegGeometry(0.2429, 0.0817, 0.0547, 0.25223, 0.25097, hip_x_rear=0.1944),
        "Laikago URDF (pybullet_data laikago_toes.urdf) as motion_imitation's clips use it",
    ),
}  # fmt: skip


def load_profile(name_or_path: str | Path) -> RobotProfile:
    """A built-in profile by name, or a JSON profile file with :class:`RobotProfile`'s fields
    (``joint_sign`` / ``joint_offset`` as 12 numbers or 3 for every leg; ``base_rotation`` w x y z,
    default identity; ``geometry`` with hip_x, hip_y, hip_offset, thigh, calf)."""
    key = str(name_or_path)
    if key in PROFILES:
        return PROFILES[key]
    path = Path(key)
    if path.suffix.lower() != ".json" or not path.exists():
        raise ClipError(
            f"unknown robot profile {key!r}: expected one of {', '.join(PROFILES)} or a JSON profile file"
        )
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise ClipError(f"{path}: cannot read the profile ({e})") from None
    except json.JSONDecodeError as e:
        raise ClipError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(raw, dict):
        raise ClipError(f"{path}: expected a JSON object with the profile's fields")

    def fail(k: str, msg: str) -> ClipError:
        return ClipError(f"{path}: key '{k}': {msg}")

    def numbers(k: str, n: int, default=None, per_leg: bool = False) -> tuple[float, ...]:
        v = raw.get(k, default)
        if v is None:
            raise fail(k, "missing")
        try:
            arr = np.asarray(v, np.float64)
        except (TypeError, ValueError):
            raise fail(k, f"expected {n} numbers, got {v!r}") from None
        if per_leg and arr.shape == (3,):
            arr = np.tile(arr, 4)
        if arr.shape != (n,) or not np.isfinite(arr).all():
            alt = " (or 3 for every leg)" if per_leg else ""
            raise fail(k, f"expected {n} finite numbers{alt}, got {v!r}")
        return tuple(float(x) for x in arr)

    legs = raw.get("legs")
    if not isinstance(legs, list) or sorted(legs) != sorted(LEGS):
        example = list(_UNITREE_ORDER)
        raise fail("legs", f"expected the four legs in the file's order, e.g. {example}, got {legs!r}")
    sign = numbers("joint_sign", 12, (1.0,) * 3, per_leg=True)
    if any(abs(s) < 1e-9 for s in sign):
        raise fail("joint_sign", "a sign of 0 loses the joint")
    offset = numbers("joint_offset", 12, (0.0,) * 3, per_leg=True)
    rot = np.asarray(numbers("base_rotation", 4, _IDENTITY))
    if abs(np.linalg.norm(rot) - 1) > QUAT_TOL:
        norm = np.linalg.norm(rot)
        raise fail("base_rotation", f"expected a unit quaternion (w, x, y, z), norm is {norm:.3f}")
    g = raw.get("geometry")
    if not isinstance(g, dict):
        raise fail("geometry", "expected an object with hip_x, hip_y, hip_offset, thigh, calf (m)")
    fields_ = ("hip_x", "hip_y", "hip_offset", "thigh", "calf", "hip_x_rear", "foot_x")
    unknown = sorted(set(g) - set(fields_))
    if unknown:
        raise fail("geometry", f"unknown field {unknown[0]!r}; expected {', '.join(fields_)}")
    geo = {}
    for k in fields_:
        if k not in g:
            if k in fields_[:5]:
                raise fail(f"geometry.{k}", "missing")
            continue
        v = g[k]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise fail(f"geometry.{k}", f"expected a number, got {v!r}")
        geo[k] = float(v)
    if geo["thigh"] <= 0 or geo["calf"] <= 0:
        raise fail("geometry", "thigh and calf lengths must be positive")
    rot = rot / np.linalg.norm(rot)
    return RobotProfile(
        str(raw.get("name", path.stem)), tuple(legs), sign, offset, tuple(float(x) for x in rot),
        LegGeometry(**geo), str(path),
    )  # fmt: skip
