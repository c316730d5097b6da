"""The Unitree Go2 as DynaFlow sees it: the one place that defines its state layout, names and paths.

Every other module takes these from here; nobody else writes 37, 12 or the leg names.

State layout (37-D, the same everywhere in DynaFlow) is MuJoCo's own ``[qpos, qvel]``:

====================  =====  ==============================================================
slice                 size   meaning (MuJoCo free-joint convention)
====================  =====  ==============================================================
``[0:3]``             3      base position, world frame (m)
``[3:7]``             4      base orientation quaternion (w, x, y, z), body -> world
``[7:19]``            12     joint positions, FL/FR/RL/RR x (hip, thigh, calf) (rad)
``[19:22]``           3      base linear velocity, **world** frame (m/s)
``[22:25]``           3      base angular velocity, **body** (local) frame (rad/s)
``[25:37]``           12     joint velocities (rad/s)
====================  =====  ==============================================================

Actions are 12-D, one per joint in the same order (the control law is in :mod:`dynaflow.physics`).
The figures below (link offsets and lengths) are the published ones the MJCF was written from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROBOT_DIR = Path(__file__).resolve().parent
SCENE_XML = ROBOT_DIR / "scene.xml"  # the robot on a floor: what DynaFlow simulates
ROBOT_XML = ROBOT_DIR / "go2.xml"

NQ = 19  # free joint (7) + 12 hinges
NV = 18
STATE_DIM = NQ + NV  # 37
ACTION_DIM = 12

LEGS = ("FL", "FR", "RL", "RR")
JOINT_PARTS = ("hip", "thigh", "calf")
JOINT_NAMES = tuple(f"{leg}_{part}_joint" for leg in LEGS for part in JOINT_PARTS)
FOOT_SITES = tuple(f"{leg}_foot" for leg in LEGS)
TRUNK_BODY = "base"

#: Named slices of the 37-D state (see the module docstring for frames and units).
STATE_GROUPS: dict[str, slice] = {
    "base_pos": slice(0, 3),
    "base_quat": slice(3, 7),
    "joint_pos": slice(7, 19),
    "base_linvel": slice(19, 22),
    "base_angvel": slice(22, 25),
    "joint_vel": slice(25, 37),
}
#: The physical unit of each state group (for tables and plots).
GROUP_UNITS: dict[str, str] = {
    "base_pos": "m",
    "base_quat": "",
    "joint_pos": "rad",
    "base_linvel": "m/s",
    "base_angvel": "rad/s",
    "joint_vel": "rad/s",
}
POS = STATE_GROUPS["base_pos"]
QUAT = STATE_GROUPS["base_quat"]
JOINTS = STATE_GROUPS["joint_pos"]
LINVEL = STATE_GROUPS["base_linvel"]
ANGVEL = STATE_GROUPS["base_angvel"]
JOINT_VEL = STATE_GROUPS["joint_vel"]

HOME_HEIGHT = 0.27
HOME_JOINTS = np.tile(np.array([0.0, 0.9, -1.8]), 4)  # (hip, thigh, calf) x 4: the home keyframe
HOME_QPOS = np.concatenate([[0.0, 0.0, HOME_HEIGHT, 1.0, 0.0, 0.0, 0.0], HOME_JOINTS])

FOOT_RADIUS = 0.022  # m, the foot spheres (the only geoms that touch the floor)
# Kinematic figures (m): hip joint at (±HIP_X, ±HIP_Y) from the trunk origin, thigh joint THIGH_Y further
# out, thigh and calf of equal length; the foot centre is FOOT_X behind the calf's axis.
HIP_X, HIP_Y, THIGH_Y = 0.1934, 0.0465, 0.0955
L_THIGH, L_CALF = 0.213, 0.213
FOOT_X = -0.002
SIGN_X = np.array([1.0, 1.0, -1.0, -1.0])  # FL, FR, RL, RR: front (+) or rear (-)
SIGN_Y = np.array([1.0, -1.0, 1.0, -1.0])  # left (+) or right (-)


def leg_of(joint: int) -> str:
    """The leg ('FL', ...) of joint index 0..11."""
    return LEGS[joint // 3]
