"""MuJoCo's smooth dynamics written for one shape of robot: a floating base with K identical hinge chains
(legs) whose last links carry sphere feet on a plane. The Go2 is K = 4 chains of 3 hinges.

MJX computes kinematics, composite inertia, bias forces and constraint Jacobians body by body (a scan over
the tree with gathers at every level). For the batch sizes DynaFlow trains at on a CPU that costs far more
in XLA operations, each a few microseconds of dispatch, than in arithmetic. Here every quantity of the K
legs is one array with a leading leg axis, so each algorithm is a handful of fused element-wise operations;
the dense mass matrix, the constraint rows (joint limits, then four pyramid edges per foot) and the
integrator are assembled in MJX's layout and order, from the fields of an ``mjx.Model`` (so the per-sample
models of domain randomisation flow through unchanged).

The functions compute what ``mjx.step``'s stages compute for such a model, term by term (values agree to
float rounding; ``tests/test_physics.py`` checks every stage against MJX in float64).
:func:`~dynaflow.physics.legged_shape.legged_layout` says whether a model has the supported shape (its
:class:`~dynaflow.physics.legged_shape.LeggedLayout`, re-exported here); :mod:`dynaflow.physics.implicit`
runs the constraint solver.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from dynaflow.physics.legged_shape import LeggedLayout, legged_layout  # noqa: F401 - re-exported
from dynaflow.physics.spatial import (
    axis_angle,
    barrier,
    cross,
    dot,
    inert_add,
    inert_mul,
    motion_cross,
    motion_cross_force,
    normalize,
    outer_sum,
    qmat,
    qmul,
    rotate,
    suffix_sum,
)

# ------------------------------------------------------------------------------------------------
# The stages


def smooth(m, lay: LeggedLayout, qpos: jax.Array, qvel: jax.Array, ctrl: jax.Array) -> dict:
    """Everything ``mjx.step`` computes before the constraint solver, for one sample.

    Returns ``qpos`` (its base quaternion normalised, as MJX's kinematics writes it back), the dense mass
    matrix ``M``, ``qfrc_smooth`` (passive - bias + actuator forces), and the constraint rows ``efc_J``,
    ``efc_D`` and ``efc_aref`` (joint limits, then each foot's four pyramid edges)."""
    qpos, kin = _kinematics(m, lay, qpos)
    frame = _com_frame(m, lay, kin, qpos.dtype)
    mass_matrix = _mass_matrix(m, lay, frame, qpos.dtype)
    bias = _bias_forces(m, lay, frame, qvel, qpos.dtype)
    passive = -m.dof_damping * qvel
    qfrc_smooth = passive - bias + _actuator_forces(m, qpos, qvel, ctrl)
    rows = [_joint_limit_rows(m, lay, kin.q)] if len(lay.limited) else []
    rows.append(_contact_rows(m, lay, kin, frame, qpos.dtype))
    return {"qpos": qpos, "M": mass_matrix, "qfrc_smooth": qfrc_smooth, **_constraints(m, rows, qvel)}


class _Kinematics(NamedTuple):
    """Where every body is: the base (``pos0``, ``quat0``, ``xmat0``; its inertial frame ``xipos0``,
    ``ximat0``) and the legs' links ``(K, L, ...)`` with their joint anchors and axes; ``q`` the joint
    angles ``(K, L)``."""

    pos0: jax.Array
    quat0: jax.Array
    q: jax.Array
    xpos: jax.Array
    xquat: jax.Array
    anchor: jax.Array
    axis: jax.Array
    xmat0: jax.Array
    xipos0: jax.Array
    ximat0: jax.Array
    xipos: jax.Array
    ximat: jax.Array


class _ComFrame(NamedTuple):
    """The robot's centre of mass, each body's inertia about it (``(I, m c, m)``) and the dofs' motion
    axes about it (``cdof_free`` (6, 6): rows are the free joint's dofs; ``cdof`` (K, L, 6))."""

    com: jax.Array
    inert0: tuple
    inert: tuple
    cdof_free: jax.Array
    cdof: jax.Array


class _Rows(NamedTuple):
    """Constraint rows of one kind: Jacobian, distances (for aref: zero when inactive; for the
    impedance), inverse weights, solref and solimp."""

    jac: jax.Array
    pos_aref: jax.Array
    pos: jax.Array
    invweight: jax.Array
    solref: jax.Array
    solimp: jax.Array


def _kinematics(m, lay: LeggedLayout, qpos: jax.Array) -> tuple[jax.Array, _Kinematics]:
    """Forward kinematics down each leg, the base quaternion normalised (``qpos`` written back)."""
    K, L = lay.legs, lay.links
    body = lay.body
    quat0, _ = normalize(qpos[3:7])
    qpos = qpos.at[3:7].set(quat0)
    pos0 = qpos[:3]
    q = qpos[7:].reshape(K, L)
    angle = q - m.qpos0[7:].reshape(K, L)
    jnt_pos = m.jnt_pos[lay.jnt]
    jnt_axis = m.jnt_axis[lay.jnt]
    bpos, bquat = m.body_pos[body], m.body_quat[body]
    xpos, xquat, anchor, axis = [], [], [], []
    ppos, pquat = jnp.broadcast_to(pos0, (K, 3)), jnp.broadcast_to(quat0, (K, 4))
    for link in range(L):
        pos = ppos + rotate(bpos[:, link], pquat)
        quat = qmul(pquat, bquat[:, link])
        anc = rotate(jnt_pos[:, link], quat) + pos
        axis.append(rotate(jnt_axis[:, link], quat))
        quat = qmul(quat, axis_angle(jnt_axis[:, link], angle[:, link]))
        pos = anc - rotate(jnt_pos[:, link], quat)
        anchor.append(anc)
        xpos.append(pos)
        xquat.append(quat)
        ppos, pquat = pos, quat
    xpos, xquat = jnp.stack(xpos, 1), jnp.stack(xquat, 1)  # (K, L, 3), (K, L, 4)
    anchor, axis = jnp.stack(anchor, 1), jnp.stack(axis, 1)
    xmat0 = qmat(quat0)
    xipos0 = pos0 + rotate(m.body_ipos[1], quat0)
    ximat0 = qmat(qmul(quat0, m.body_iquat[1]))
    xipos = xpos + rotate(m.body_ipos[body], xquat)
    ximat = qmat(qmul(xquat, m.body_iquat[body]))
    xpos, xquat, anchor, axis, xmat0, xipos0, ximat0, xipos, ximat = barrier(
        xpos, xquat, anchor, axis, xmat0, xipos0, ximat0, xipos, ximat
    )
    return qpos, _Kinematics(pos0, quat0, q, xpos, xquat, anchor, axis, xmat0, xipos0, ximat0, xipos, ximat)


def _com_frame(m, lay: LeggedLayout, kin: _Kinematics, dtype) -> _ComFrame:
    """MJX's ``com_pos``: the centre of mass, the inertias and motion axes about it."""
    body = lay.body
    mass0, mass = m.body_mass[1], m.body_mass[body]
    com = (mass0 * kin.xipos0 + jnp.sum(mass[..., None] * kin.xipos, axis=(0, 1))) / jnp.maximum(
        mass0 + jnp.sum(mass), mujoco.mjMINVAL
    )
    inert0 = _cinert(kin.ximat0, m.body_inertia[1], kin.xipos0 - com, mass0, dtype)
    inert = _cinert(kin.ximat, m.body_inertia[body], kin.xipos - com, mass, dtype)  # (K, L, ...)
    off0 = com - kin.pos0
    cdof_free = jnp.concatenate(
        [
            jnp.eye(3, 6, 3, dtype=dtype),
            jnp.concatenate([kin.xmat0.T, cross(kin.xmat0.T, off0)], axis=-1),
        ]
    )  # (6, 6): rows are dofs
    cdof = jnp.concatenate([kin.axis, cross(kin.axis, com - kin.anchor)], axis=-1)  # (K, L, 6)
    return _ComFrame(*barrier(com, inert0, inert, cdof_free, cdof))


def _cinert(ximat, inertia, off, mass, dtype):
    """A body's inertia about the centre of mass as ``(I, m c, m)``, ``c`` its offset ``off``."""
    rot = outer_sum(ximat * inertia[..., None, :], ximat)  # R diag(I) R^T
    h = dot(off, off)[..., None, None] * jnp.eye(3, dtype=dtype) - off[..., :, None] * off[..., None, :]
    return rot + h * mass[..., None, None], off * mass[..., None], mass


def _leg_blocks(x: jax.Array, dtype) -> jax.Array:
    """``(K, A, L)`` per-leg columns placed on the leg's own block: ``(K, A, K, L)``."""
    eye_k = jnp.eye(x.shape[0], dtype=dtype)
    return x[:, :, None, :] * eye_k[:, None, :, None]


def _mass_matrix(m, lay: LeggedLayout, f: _ComFrame, dtype) -> jax.Array:
    """MJX's ``crb`` and ``make_m``: composite inertias and the dense mass matrix (with armature)."""
    K, L = lay.legs, lay.links
    crb = tuple(suffix_sum(x) for x in f.inert)  # subtree sums along each leg
    crb0 = inert_add(f.inert0, tuple(jnp.sum(x[:, 0], axis=0) for x in crb))
    f_free = inert_mul(crb0, f.cdof_free)  # (6, 6)
    m_ff = jnp.tril(outer_sum(f_free, f.cdof_free))
    m_ff = m_ff + jnp.tril(m_ff, -1).T
    f_leg = inert_mul(crb, f.cdof)  # (K, L, 6)
    m_lf = outer_sum(f_leg, f.cdof_free)  # (K, L, 6)
    m_ll = outer_sum(f_leg, f.cdof) * jnp.tril(jnp.ones((L, L), dtype))  # (K, L, L), l' <= l
    m_ll = m_ll + jnp.swapaxes(m_ll, -1, -2) * (1 - jnp.eye(L, dtype=dtype))
    m_legs = _leg_blocks(m_ll, dtype).reshape(K * L, K * L)
    m_lf = m_lf.reshape(K * L, 6)
    m_ff, m_lf, m_legs = barrier(m_ff, m_lf, m_legs)
    return jnp.concatenate(
        [jnp.concatenate([m_ff, m_lf.T], axis=1), jnp.concatenate([m_lf, m_legs], axis=1)]
    ) + jnp.diag(m.dof_armature)


def _bias_forces(m, lay: LeggedLayout, f: _ComFrame, qvel: jax.Array, dtype) -> jax.Array:
    """Velocities down each leg and the bias forces: recursive Newton-Euler without acceleration."""
    K, L = lay.legs, lay.links
    qd = qvel[6:].reshape(K, L)
    cvel0 = jnp.sum(f.cdof_free[:3] * qvel[:3, None], axis=0)
    cdof_dot_free = motion_cross(cvel0, f.cdof_free[3:])
    cvel0 = cvel0 + jnp.sum(f.cdof_free[3:] * qvel[3:6, None], axis=0)
    gravity = jnp.concatenate([jnp.zeros(3, dtype), -m.opt.gravity.astype(dtype)])
    cacc0 = gravity + jnp.sum(cdof_dot_free * qvel[3:6, None], axis=0)
    cvel, cacc = [], []
    pvel, pacc = jnp.broadcast_to(cvel0, (K, 6)), jnp.broadcast_to(cacc0, (K, 6))
    for link in range(L):
        cdof_dot = motion_cross(pvel, f.cdof[:, link])
        pvel = pvel + f.cdof[:, link] * qd[:, link, None]
        pacc = pacc + cdof_dot * qd[:, link, None]
        cvel.append(pvel)
        cacc.append(pacc)
    cvel, cacc = barrier(jnp.stack(cvel, 1), jnp.stack(cacc, 1))
    frc = _body_force(f.inert, cacc, cvel)
    cfrc = suffix_sum(frc)  # (K, L, 6) subtree sums
    cfrc0 = _body_force(f.inert0, cacc0, cvel0) + jnp.sum(cfrc[:, 0], axis=0)
    return jnp.concatenate([dot(f.cdof_free, cfrc0), dot(f.cdof, cfrc).ravel()])


def _body_force(inert, cacc, cvel):
    return inert_mul(inert, cacc) + motion_cross_force(cvel, inert_mul(inert, cvel))


def _actuator_forces(m, qpos: jax.Array, qvel: jax.Array, ctrl: jax.Array) -> jax.Array:
    """Position-style actuators on the hinges (control and force clamped when limited), in dof space."""
    ctrl = jnp.where(
        m.actuator_ctrllimited,
        jnp.clip(ctrl, m.actuator_ctrlrange[:, 0], m.actuator_ctrlrange[:, 1]),
        ctrl,
    )
    gear = m.actuator_gear[:, 0]
    length, velocity = gear * qpos[7:], gear * qvel[6:]
    force = m.actuator_gainprm[:, 0] * ctrl + (
        m.actuator_biasprm[:, 0] + m.actuator_biasprm[:, 1] * length + m.actuator_biasprm[:, 2] * velocity
    )
    force = jnp.where(
        m.actuator_forcelimited,
        jnp.clip(force, m.actuator_forcerange[:, 0], m.actuator_forcerange[:, 1]),
        force,
    )
    return jnp.concatenate([jnp.zeros(6, qpos.dtype), gear * force])


def _joint_limit_rows(m, lay: LeggedLayout, q: jax.Array) -> _Rows:
    """One row per limited joint (MJX's order), active when the joint is past its range."""
    dtype = q.dtype
    lk, ll = lay.limited_kl[:, 0], lay.limited_kl[:, 1]
    jr = m.jnt_range[lay.limited]
    ql = q[lk, ll]
    dmin, dmax = ql - jr[:, 0], jr[:, 1] - ql
    pos = jnp.minimum(dmin, dmax) - m.jnt_margin[lay.limited]
    active = pos < 0
    sign = jnp.where(dmin < dmax, 1.0, -1.0).astype(dtype)
    cols = lay.dof[lk, ll]
    jac = jnp.zeros((len(cols), lay.nv), dtype).at[jnp.arange(len(cols)), cols].set(sign * active)
    return _Rows(
        jac, pos * active, pos, m.dof_invweight0[cols], m.jnt_solref[lay.limited], m.jnt_solimp[lay.limited]
    )


def _contact_rows(m, lay: LeggedLayout, kin: _Kinematics, f: _ComFrame, dtype) -> _Rows:
    """Each foot's four pyramid edges against the plane, active when the sphere penetrates it."""
    K, L = lay.legs, lay.links
    foot = lay.foot
    radius = m.geom_size[foot, 0]
    sphere = kin.xpos[:, -1] + rotate(m.geom_pos[foot], kin.xquat[:, -1])  # (K, 3)
    normal = jnp.asarray(lay.plane_normal, dtype)
    dist = dot(sphere - jnp.asarray(lay.plane_pos, dtype), normal) - radius
    point = sphere - normal * (radius + 0.5 * dist)[:, None]
    offset = point - f.com  # (K, 3)
    frame = jnp.asarray(lay.frame, dtype)
    # Jacobian of each contact point: the free dofs, then its own leg's dofs
    jp_free = f.cdof_free[None, :, 3:] + cross(f.cdof_free[None, :, :3], offset[:, None])  # (K, 6, 3)
    jp_leg = f.cdof[:, :, 3:] + cross(f.cdof[:, :, :3], offset[:, None])  # (K, L, 3)
    d_free = jnp.swapaxes(outer_sum(jp_free, frame), -1, -2)  # (K, 3, 6)
    d_leg = jnp.swapaxes(outer_sum(jp_leg, frame), -1, -2)  # (K, 3, L)
    d_leg = _leg_blocks(d_leg, dtype).reshape(K, 3, K * L)
    d_free, d_leg = barrier(d_free, d_leg)
    diff = jnp.concatenate([d_free, d_leg], axis=-1)  # (K, 3, nv)
    # the pair's parameters as MJX's collision driver mixes them: (plane, foot), priority first
    friction, solref, solimp = _contact_params(m, lay.plane, foot)
    mu = friction[:, 0]
    sgn = jnp.asarray([1.0, -1.0, 1.0, -1.0], dtype)
    fri = mu[:, None] * sgn  # (K, 4)
    edges = diff[:, :1] + diff[:, jnp.array([1, 1, 2, 2])] * fri[..., None]  # (K, 4, nv)
    pos = dist
    active = pos < 0
    iw = m.body_invweight0[lay.body[:, -1], 0] + m.body_invweight0[0, 0]
    iw = iw + mu * mu * iw
    iw = iw * 2 * mu * mu / m.opt.impratio
    return _Rows(
        (edges * active[:, None, None]).reshape(4 * K, lay.nv),
        jnp.repeat(pos * active, 4),
        jnp.repeat(pos, 4),
        jnp.repeat(iw, 4),
        jnp.repeat(solref, 4, axis=0),
        jnp.repeat(solimp, 4, axis=0),
    )


def _constraints(m, rows: list[_Rows], qvel: jax.Array) -> dict:
    """The rows stacked, with their impedance: ``efc_J``, ``efc_D`` and ``efc_aref``."""
    efc_j = jnp.concatenate(barrier(*[x.jac for x in rows]))
    pos_aref, pos_imp = jnp.concatenate([x.pos_aref for x in rows]), jnp.concatenate([x.pos for x in rows])
    solref, solimp = jnp.concatenate([x.solref for x in rows]), jnp.concatenate([x.solimp for x in rows])
    k, b, imp = _kbi(m, solref, solimp, pos_imp)
    r = jnp.maximum(jnp.concatenate([x.invweight for x in rows]) * (1 - imp) / imp, mujoco.mjMINVAL)
    aref = -b * dot(efc_j, qvel) - k * imp * pos_aref
    return {"efc_J": efc_j, "efc_D": 1 / r, "efc_aref": aref}


def _contact_params(m, plane: int, foot: np.ndarray):
    """Friction, solref and solimp of the (plane, foot) pairs, as MJX's collision driver mixes them."""
    eps = mujoco.mjMINVAL
    s1, s2 = m.geom_solmix[plane], m.geom_solmix[foot]
    mix = s1 / (s1 + s2)
    mix = jnp.where((s1 < eps) & (s2 < eps), 0.5, mix)
    mix = jnp.where((s1 < eps) & (s2 >= eps), 0.0, mix)
    mix = jnp.where((s1 >= eps) & (s2 < eps), 1.0, mix)[:, None]
    friction = jnp.maximum(m.geom_friction[plane], m.geom_friction[foot])
    r1, r2 = m.geom_solref[plane], m.geom_solref[foot]
    standard = mix * r1 + (1 - mix) * r2
    solref = jnp.where((r1[..., :1] > 0) & (r2[:, :1] > 0), standard, jnp.minimum(r1, r2))
    solimp = mix * m.geom_solimp[plane] + (1 - mix) * m.geom_solimp[foot]
    p1, p2 = np.asarray(m.geom_priority)[plane], np.asarray(m.geom_priority)[foot]
    take = np.where(p1 > p2, plane, foot)
    differ = jnp.asarray(p1 != p2)[:, None]
    friction = jnp.where(differ, m.geom_friction[take], friction)
    solref = jnp.where(differ, m.geom_solref[take], solref)
    solimp = jnp.where(differ, m.geom_solimp[take], solimp)
    return friction, solref, solimp


def _kbi(m, solref, solimp, pos):
    """Stiffness, damping and impedance of each row (MJX's ``constraint._kbi``, vectorised)."""
    timeconst, dampratio = solref[:, 0], solref[:, 1]
    if not m.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_REFSAFE:
        timeconst = jnp.maximum(timeconst, 2 * m.opt.timestep)
    dmin = jnp.clip(solimp[:, 0], mujoco.mjMINIMP, mujoco.mjMAXIMP)
    dmax = jnp.clip(solimp[:, 1], mujoco.mjMINIMP, mujoco.mjMAXIMP)
    width = jnp.maximum(mujoco.mjMINVAL, solimp[:, 2])
    mid = jnp.clip(solimp[:, 3], mujoco.mjMINIMP, mujoco.mjMAXIMP)
    power = jnp.maximum(1, solimp[:, 4])
    k = 1 / (dmax * dmax * timeconst * timeconst * dampratio * dampratio)
    b = 2 / (dmax * timeconst)
    k = jnp.where(solref[:, 0] <= 0, -solref[:, 0] / (dmax * dmax), k)
    b = jnp.where(solref[:, 1] <= 0, -solref[:, 1] / dmax, b)
    x = jnp.abs(pos) / width
    imp_a = (1.0 / jnp.power(mid, power - 1)) * jnp.power(x, power)
    imp_b = 1 - (1.0 / jnp.power(1 - mid, power - 1)) * jnp.power(1 - x, power)
    imp = dmin + jnp.where(x < mid, imp_a, imp_b) * (dmax - dmin)
    imp = jnp.clip(imp, dmin, dmax)
    return k, b, jnp.where(x > 1.0, dmax, imp)


def advance(m, qpos: jax.Array, qvel: jax.Array, qacc: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Semi-implicit Euler (MJX's ``_advance`` for a free joint and hinges): velocities first, then
    positions with the new velocities; the base quaternion is integrated and normalised."""
    dt = m.opt.timestep
    qvel = qvel + qacc * dt
    pos = qpos[:3] + dt * qvel[:3]
    axis, norm = normalize(qvel[3:6])
    quat, _ = normalize(qmul(qpos[3:7], axis_angle(axis, dt * norm)))
    return jnp.concatenate([pos, quat, qpos[7:] + dt * qvel[6:]]), qvel
