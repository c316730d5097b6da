"""The shape of model :mod:`dynaflow.physics.legged`'s stages support: a floating base with K identical
hinge chains (legs) whose last links carry sphere feet on a plane. :func:`legged_layout` checks a MuJoCo
model and returns its static indices (:class:`LeggedLayout`), or None when the model has another shape.
NumPy and MuJoCo only."""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

_FREE, _HINGE = mujoco.mjtJoint.mjJNT_FREE, mujoco.mjtJoint.mjJNT_HINGE


@dataclass(frozen=True, eq=False)
class LeggedLayout:
    """Static indices of a floating base (body 1) with ``legs`` chains of ``links`` hinge bodies.

    ``body[k, l]``, ``dof[k, l]``, ``qpos[k, l]``: body, dof and qpos addresses of leg k's link l;
    ``foot[k]``: the sphere geom on the last link; ``plane``: the floor geom; ``limited``: the hinge
    joints with limits, in MJX's row order."""

    body: np.ndarray
    dof: np.ndarray
    qpos: np.ndarray
    jnt: np.ndarray
    foot: np.ndarray
    plane: int
    limited: np.ndarray  # (n,) joint ids (MJX order), each a leg joint
    limited_kl: np.ndarray  # (n, 2) their (leg, link)
    frame: np.ndarray  # (3, 3) contact frame rows: floor normal, two tangents
    plane_normal: np.ndarray
    plane_pos: np.ndarray
    nv: int

    @property
    def legs(self) -> int:
        return self.body.shape[0]

    @property
    def links(self) -> int:
        return self.body.shape[1]


def legged_layout(model: mujoco.MjModel) -> LeggedLayout | None:
    """The layout of ``model`` when it has the supported shape (see the module docstring), else None.

    Required: body 1 is the only child of the world and carries a free joint; every other body hangs in
    one of K chains of equal length from body 1, with one hinge each (no springs, no joint friction
    loss); the only contacts are between one sphere on each chain's last body and a plane on the world
    body (no pairs or excludes); position-style actuators on the hinges with joint transmission; no
    tendons, equality constraints, sensors, activations, gravity compensation or fluid forces; the
    pyramidal friction cone."""
    m = model
    if not _supported_tree_and_options(m):
        return None
    chains = _chains(m)
    if chains is None:
        return None
    body = np.array(chains)
    jnt = m.body_jntadr[body]
    dof, qpos = m.jnt_dofadr[jnt], m.jnt_qposadr[jnt]
    if not (np.array_equal(dof.ravel(), np.arange(6, m.nv)) and np.array_equal(qpos, dof + 1)):
        return None
    contacts = _feet_on_a_plane(m, chains)
    if contacts is None or not _supported_actuators(m, jnt):
        return None
    plane, foot = contacts
    limited = np.flatnonzero(m.jnt_limited[1:]) + 1
    kl = np.argwhere(np.isin(jnt, limited))
    order = np.argsort(jnt[kl[:, 0], kl[:, 1]])
    normal, frame = _contact_frame(m, plane)
    return LeggedLayout(
        body=body,
        dof=dof,
        qpos=qpos,
        jnt=jnt,
        foot=np.array(foot),
        plane=plane,
        limited=limited,
        limited_kl=kl[order],
        frame=frame,
        plane_normal=normal,
        plane_pos=m.geom_pos[plane].copy(),
        nv=m.nv,
    )


def _supported_tree_and_options(m: mujoco.MjModel) -> bool:
    """Body 1 is the world's only child, with a free joint; every other body has one hinge; none of
    the model elements or forces the stages leave out."""
    if m.nbody < 3 or m.njnt != m.nbody - 1 or m.body_jntnum[1] != 1 or m.jnt_type[0] != _FREE:
        return False
    if m.body_jntadr[1] != 0 or m.body_parentid[1] != 0 or np.any(m.body_parentid[2:] == 0):
        return False
    if np.any(m.body_jntnum[1:] != 1) or np.any(m.jnt_type[1:] != _HINGE):
        return False
    if m.ntendon or m.neq or m.npair or m.nexclude or m.nsensor or m.na or m.nmocap or m.nflex:
        return False
    if np.any(m.jnt_stiffness != 0) or np.any(m.dof_frictionloss != 0) or np.any(m.body_gravcomp != 0):
        return False
    if np.any(m.opt.wind != 0) or m.opt.density != 0 or m.opt.viscosity != 0:
        return False
    if m.opt.cone != mujoco.mjtCone.mjCONE_PYRAMIDAL:  # the stages write pyramid edges
        return False
    return not np.any(m.jnt_margin != 0)


def _chains(m: mujoco.MjModel) -> list[list[int]] | None:
    """The legs: chains of bodies from each child of body 1, one child per level, all of one length and
    together every body but the world and the base; None otherwise."""
    starts = [b for b in range(2, m.nbody) if m.body_parentid[b] == 1]
    chains = []
    for b in starts:
        chain = [b]
        while True:
            kids = [c for c in range(2, m.nbody) if m.body_parentid[c] == chain[-1]]
            if not kids:
                break
            if len(kids) > 1:
                return None
            chain.append(kids[0])
        chains.append(chain)
    if not chains or len({len(c) for c in chains}) != 1 or sum(map(len, chains)) != m.nbody - 2:
        return None
    return chains


def _feet_on_a_plane(m: mujoco.MjModel, chains: list[list[int]]) -> tuple[int, list[int]] | None:
    """``(plane, feet)`` when the only contacts are one sphere (condim 3) on each chain's last body
    against one plane on the world body, in MJX's contact order; None otherwise."""
    colliding = [g for g in range(m.ngeom) if m.geom_contype[g] or m.geom_conaffinity[g]]
    planes = [g for g in colliding if m.geom_type[g] == mujoco.mjtGeom.mjGEOM_PLANE and m.geom_bodyid[g] == 0]
    spheres = [g for g in colliding if g not in planes]
    if len(planes) != 1 or len(spheres) != len(chains):
        return None
    plane = planes[0]
    foot = []
    for chain in chains:
        on = [g for g in spheres if m.geom_bodyid[g] == chain[-1]]
        if len(on) != 1 or m.geom_type[on[0]] != mujoco.mjtGeom.mjGEOM_SPHERE or m.geom_condim[on[0]] != 3:
            return None
        foot.append(on[0])
    if m.geom_condim[plane] != 3 or np.any(m.geom_margin[colliding] != 0) or np.any(m.geom_gap[colliding]):
        return None

    def collide(a, b):
        ct, ca = m.geom_contype, m.geom_conaffinity
        return bool(ct[a] & ca[b]) or bool(ct[b] & ca[a])

    if not all(collide(plane, f) for f in foot) or any(collide(a, b) for a in foot for b in foot if a < b):
        return None
    if foot != sorted(foot) or plane > min(foot):  # MJX orders contacts (plane, foot) by geom id
        return None
    return plane, foot


def _supported_actuators(m: mujoco.MjModel, jnt: np.ndarray) -> bool:
    """One actuator per hinge, in order: joint transmission, fixed gain, affine bias, no dynamics, no
    actuator force limits on the joints."""
    if m.nu != m.nv - 6 or np.any(m.actuator_trntype != mujoco.mjtTrn.mjTRN_JOINT):
        return False
    if not np.array_equal(m.actuator_trnid[:, 0], jnt.ravel()):
        return False
    if np.any(m.actuator_gaintype != mujoco.mjtGain.mjGAIN_FIXED) or np.any(m.actuator_dyntype != 0):
        return False
    return not (np.any(m.actuator_biastype != mujoco.mjtBias.mjBIAS_AFFINE) or np.any(m.jnt_actfrclimited))


def _contact_frame(m: mujoco.MjModel, plane: int) -> tuple[np.ndarray, np.ndarray]:
    """The plane's normal (world body: fixed) and MJX's contact frame for it (rows: normal, two
    tangents)."""
    mat = np.zeros(9)
    mujoco.mju_quat2Mat(mat, m.geom_quat[plane])
    normal = mat.reshape(3, 3)[:, 2] / np.linalg.norm(mat.reshape(3, 3)[:, 2])
    b = np.array([0.0, 1.0, 0.0]) if -0.5 < normal[1] < 0.5 else np.array([0.0, 0.0, 1.0])
    b = b - normal * normal.dot(b)
    b = b / np.linalg.norm(b)
    return normal, np.stack([normal, b, np.cross(normal, b)])
