"""Loading the Go2 MJCF, checking the layout DynaFlow relies on, and the lighter model MJX simulates."""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np

from dynaflow.robots.go2 import ACTION_DIM, HOME_QPOS, JOINT_NAMES, NQ, NV, SCENE_XML


def load_go2_model(xml_path: str | Path | None = None) -> mujoco.MjModel:
    """Load the Go2 MJCF (the project's own scene by default) and check its joint/actuator order."""
    path = Path(xml_path) if xml_path is not None else SCENE_XML
    if not path.is_file():
        raise FileNotFoundError(f"xml_path: no such MJCF file: {path}")
    model = mujoco.MjModel.from_xml_path(str(path))
    check_go2_model(model, source=str(path))
    return model


def simulation_model(xml_path: str | Path | None = None) -> mujoco.MjModel:
    """The model MJX simulates: the MJCF without visual geoms, sites, cameras and lights.

    MJX computes the pose of every geom and site at every step (and their gradients), although
    only the four feet and the floor take part in the dynamics. Visual geoms are massless and
    never collide, so removing them leaves the dynamics unchanged (the MuJoCo C replay runs the
    full model and the agreement test checks it) while the step and its gradient get cheaper.
    """
    path = Path(xml_path) if xml_path is not None else SCENE_XML
    spec = mujoco.MjSpec.from_file(str(path))
    for geom in list(spec.geoms):
        if geom.contype == 0 and geom.conaffinity == 0:
            spec.delete(geom)
    for item in [*spec.sites, *spec.cameras, *spec.lights]:
        spec.delete(item)
    model = spec.compile()
    check_go2_model(model, source=str(path))
    return model


def check_go2_model(model: mujoco.MjModel, source: str = "model") -> None:
    """Assert the layout DynaFlow relies on: one free joint, then 12 hinges in JOINT_NAMES order,
    and actuator i driving hinge i (so an FR/FL swap in an actuator list can never slip in)."""
    if model.nq != NQ or model.nv != NV or model.nu != ACTION_DIM:
        raise ValueError(
            f"{source}: expected nq=19, nv=18, nu=12 for a Go2, got nq={model.nq}, "
            f"nv={model.nv}, nu={model.nu}"
        )
    if model.jnt_type[0] != mujoco.mjtJoint.mjJNT_FREE:
        raise ValueError(f"{source}: joint 0 must be the free joint of the base")
    for i, name in enumerate(JOINT_NAMES):
        jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
        if jid != i + 1:
            raise ValueError(f"{source}: joint {name!r} must be joint {i + 1}, found id {jid}")
        if model.actuator_trntype[i] != mujoco.mjtTrn.mjTRN_JOINT or model.actuator_trnid[i, 0] != jid:
            driven = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, int(model.actuator_trnid[i, 0]))
            raise ValueError(f"{source}: actuator {i} must drive {name!r}, it drives {driven!r}")
        if not model.actuator_ctrllimited[i]:
            raise ValueError(
                f"{source}: actuator {i} ({name}) needs a ctrlrange (joint targets are clipped to it)"
            )


def home_qpos(model: mujoco.MjModel) -> np.ndarray:
    """The ``home`` keyframe's qpos (19,) of ``model`` (the documented home pose when it has none)."""
    kid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_KEY, "home")
    if kid < 0:
        return HOME_QPOS.copy()
    return model.key_qpos[kid].copy()
