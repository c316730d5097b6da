"""Motion clips from other pipelines (motion capture retargeted to a robot, AMP / motion_imitation
clips) onto DynaFlow's Go2, and generated motion back out as clips.

**Clip files.** The AMP / motion_imitation JSON format: ``LoopMode`` (``"Wrap"`` or ``"Clamp"``),
``FrameDuration`` (s), ``EnableCycleOffsetPosition``, ``EnableCycleOffsetRotation``, optional
``MotionWeight`` and ``Frames``, a list of equally long frames of at least 19 numbers::

    root position (3, world, m) | root quaternion (4, x y z w) | 12 joint angles (rad, the profile's order)

AMP frames of 61 numbers go on with toe positions (12, body frame), base linear and angular velocity
(3 + 3, body frame), joint velocities (12) and toe velocities (12); their velocities are used. Other
extra numbers are ignored (and counted in the summary). Plain qpos rows are read too: a CSV or an NPZ
(key ``qpos``, or its only array) of ``T x 19`` rows in MuJoCo's order (quaternion **w x y z**), at a
frame rate the caller gives.

**Profiles** (:class:`RobotProfile`) say how a source robot's numbers become the Go2's: the legs' order in
the file, a sign and an offset per joint (``go2 = sign * clip + offset`` in the file's order), the fixed
rotation of the source's base frame (Laikago's URDF base is y-up, z-forward), and its leg geometry, whose
leg length scales root translations. Built in: ``go2``, ``go1``, ``a1`` (Unitree's convention, legs
FR FL RR RL as PyBullet and Unitree's SDK order them; our Go2's own order is FL FR RL RR) and
``laikago`` (motion_imitation's clips); any other robot through a JSON file with the same fields.

**Retargeting** (:func:`retarget`): resample to the control step (linear, slerp for the base
rotation), tile looping clips with their cycle offsets of position and heading (as motion_imitation
does), clamp joints to the Go2's ranges (counted; with 0.02 rad of slack for what its soft limits
allow), shift the trunk so that the lowest foot touches the floor in the median frame (the penetration
and float left are reported), and take velocities from the frames or from finite differences
(world-frame linear, body-frame angular: the state layout's).
"""

from __future__ import annotations

from dynaflow.data.quat import heading, qconj, qmul, qrotate, qyaw, slerp
from dynaflow.data.sources.clips.export import check_actions, check_motion, export_clip, motion_clip
from dynaflow.data.sources.clips.frames import (
    AMP,
    AMP_WIDTH,
    CTRL_DT,
    LOOP_MODES,
    LOOP_SECONDS,
    POSE_WIDTH,
    Clip,
    read_clip,
)
from dynaflow.data.sources.clips.profiles import (
    GO2_GEOMETRY,
    PROFILES,
    ClipError,
    LegGeometry,
    RobotProfile,
    feet_in_body,
    feet_in_world,
    load_profile,
)
from dynaflow.data.sources.clips.retarget import (
    LIMIT_SLACK,
    Retargeted,
    conditioning_layout,
    import_clips,
    joint_ranges,
    label_of,
    retarget,
)

__all__ = [
    "AMP",
    "AMP_WIDTH",
    "CTRL_DT",
    "GO2_GEOMETRY",
    "LIMIT_SLACK",
    "LOOP_MODES",
    "LOOP_SECONDS",
    "POSE_WIDTH",
    "PROFILES",
    "Clip",
    "ClipError",
    "LegGeometry",
    "Retargeted",
    "RobotProfile",
    "check_actions",
    "check_motion",
    "conditioning_layout",
    "export_clip",
    "feet_in_body",
    "feet_in_world",
    "heading",
    "import_clips",
    "joint_ranges",
    "label_of",
    "load_profile",
    "motion_clip",
    "qconj",
    "qmul",
    "qrotate",
    "qyaw",
    "read_clip",
    "retarget",
    "slerp",
]
