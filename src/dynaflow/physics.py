"""The differentiable simulator Phi(x0, U) -> X, and its MuJoCo C replay.

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

Control law (50 Hz by default): joint targets ``q* = clip(default_pose + action_scale * u,
ctrlrange)`` are sent to the model's PD position actuators and held for ``n_substeps`` physics
steps of ``sim_dt = ctrl_dt / n_substeps``.

Physics knows nothing of learning: this module imports only JAX, MuJoCo and MJX.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from jax.ad_checkpoint import checkpoint_name as _checkpoint_name

with contextlib.redirect_stdout(io.StringIO()):
    # mujoco.mjx prints a notice when the optional Warp backend is missing; we never use Warp.
    from mujoco import mjx
    from mujoco.mjx._src import collision_driver as _mjx_collision
    from mujoco.mjx._src import constraint as _mjx_constraint
    from mujoco.mjx._src import forward as _mjx_forward
    from mujoco.mjx._src import smooth as _mjx_smooth
    from mujoco.mjx._src import solver as _mjx_solver

__all__ = [
    "ACTION_DIM",
    "DEFAULT_XML",
    "JOINT_NAMES",
    "STATE_DIM",
    "STATE_GROUPS",
    "Rollout",
    "check_go2_model",
    "create_go2_rollout",
    "load_go2_model",
    "random_smooth_actions",
    "replay_in_mujoco",
    "simulation_model",
    "stays_up",
    "upright",
]

STATE_DIM = 37
ACTION_DIM = 12
NQ = 19
LEGS = ("FL", "FR", "RL", "RR")
JOINT_NAMES = tuple(f"{leg}_{part}_joint" for leg in LEGS for part in ("hip", "thigh", "calf"))
#: Named slices of the 37-D state (see the module docstring for frames and units).
STATE_GROUPS: dict[str, slice] = {
    "base_pos": slice(0, 3),
    "base_quat": slice(3, 7),
    "joint_pos": slice(7, 19),
    "base_linvel": slice(19, 22),
    "base_angvel": slice(22, 25),
    "joint_vel": slice(25, 37),
}
ROBOT_DIR = Path(__file__).resolve().parent / "robots" / "go2"
DEFAULT_XML = ROBOT_DIR / "scene.xml"
HOME_JOINTS = np.tile(np.array([0.0, 0.9, -1.8]), 4)

# Each physics substep is rematerialised in the backward pass, saving only its (qpos, qvel) input
# and the line-search results. Storing every MJX intermediate instead costs ~1,400 stacked residual
# writes/reads per control step on the CPU and made the gradient ~1.5x slower (BENCHMARKS.md).
_SUBSTEP_POLICY = jax.checkpoint_policies.save_only_these_names(
    "dynaflow_ls_alpha", "dynaflow_ls_improved", "dynaflow_ls_qacc"
)

# The "reference" simulator: a converged solver at a finer step, used to judge transfer.
REFERENCE_MAX_DT = 0.002
REFERENCE_ITERATIONS = 100
REFERENCE_LS_ITERATIONS = 50


def load_go2_model(xml_path: str | Path | None = None) -> mujoco.MjModel:
    """Load the Go2 MJCF (the project's own scene by default) and check its joint/actuator order."""
    path = Path(xml_path) if xml_path is not None else DEFAULT_XML
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
    path = Path(xml_path) if xml_path is not None else DEFAULT_XML
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
    if model.nq != NQ or model.nv != 18 or model.nu != ACTION_DIM:
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


def _x64() -> bool:
    """Whether 64-bit floats are on (the global flag or a ``jax.enable_x64`` context)."""
    return jax.dtypes.canonicalize_dtype(jnp.float64) == jnp.float64


def local_device() -> jax.Device:
    """This process's first device. MJX's ``put_model`` / ``make_data`` default to ``jax.devices()[0]``,
    which in a multi-process run belongs to process 0; every MJX placement here names this one instead."""
    return jax.local_devices()[0]


def _as_array(value, dtype) -> np.ndarray | jax.Array:
    """Array-ify an argument, keeping tracers as they are."""
    if isinstance(value, jax.core.Tracer):
        return value
    return jnp.asarray(value, dtype=dtype)


def _check_finite(name: str, value) -> None:
    if isinstance(value, jax.core.Tracer):
        return
    arr = np.asarray(value)
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name}: contains NaN or inf (first at index {tuple(int(i) for i in bad)})")


def _check_inputs(x0, U) -> tuple[int, bool]:
    """Validate (x0, U) shapes and values; return the batch size and whether both are unbatched."""
    if x0.ndim not in (1, 2) or x0.shape[-1] != STATE_DIM:
        raise ValueError(f"x0: expected shape (37,) or (B, 37), got {tuple(x0.shape)}")
    if U.ndim not in (2, 3) or U.shape[-1] != ACTION_DIM or U.shape[-2] < 1:
        raise ValueError(f"U: expected shape (H, 12) or (B, H, 12) with H >= 1, got {tuple(U.shape)}")
    if x0.ndim == 2 and U.ndim == 3 and x0.shape[0] != U.shape[0]:
        raise ValueError(f"x0 and U: batch sizes differ, x0 {tuple(x0.shape)} vs U {tuple(U.shape)}")
    _check_finite("x0", x0)
    _check_finite("U", U)
    batch = max(x0.shape[0] if x0.ndim == 2 else 1, U.shape[0] if U.ndim == 3 else 1)
    return batch, x0.ndim == 1 and U.ndim == 2


@dataclass(frozen=True, eq=False)
class Rollout:
    """Phi(x0, U) -> X: a batched, jit-compiled, reverse-mode differentiable MJX rollout.

    Call ``rollout(x0, U)`` (or the object itself). ``x0`` is ``(B, 37)`` or ``(37,)``, ``U`` is
    ``(B, H, 12)`` or ``(H, 12)``; an unbatched argument is broadcast against a batched one. The
    result ``X`` is ``(B, H + 1, 37)`` with ``X[:, 0] = x0`` (quaternion normalised), or
    ``(H + 1, 37)`` when both arguments are unbatched. Works inside ``jax.jit`` / ``jax.grad`` and
    under ``jax_enable_x64``.

    ``gradient="implicit"`` (default) computes what ``mjx.step`` computes (the same algorithm; the
    values agree to float rounding) with a cheaper backward pass: the constraint solver's line search
    gets its implicit-function derivative instead of being unrolled, linear solves reuse their
    Cholesky factor, and each substep is rematerialised (see :func:`_solve_implicit`).
    ``gradient="unrolled"`` differentiates through ``mjx.step`` as it is (reference / debugging).
    """

    mj_model: mujoco.MjModel
    sim_model: mujoco.MjModel
    default_pose: np.ndarray
    action_scale: float
    ctrl_dt: float
    n_substeps: int
    remat: bool = False
    gradient: Literal["implicit", "unrolled"] = "implicit"
    _mjx_models: dict = field(default_factory=dict, repr=False)
    _jitted: object = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # One jit serves float32 and float64: its cache is keyed on input dtypes and the x64 flag,
        # and _single picks the matching MJX model while tracing.
        object.__setattr__(self, "_jitted", jax.jit(self._batched))

    @property
    def sim_dt(self) -> float:
        """Physics step (s): ``ctrl_dt / n_substeps``."""
        return self.ctrl_dt / self.n_substeps

    @property
    def ctrl_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper joint-target limits (the actuators' ctrlrange)."""
        return self.mj_model.actuator_ctrlrange[:, 0].copy(), self.mj_model.actuator_ctrlrange[:, 1].copy()

    def targets(self, U):
        """Joint targets of the control law: ``clip(default_pose + action_scale * U, ctrlrange)``.

        Works on NumPy and JAX arrays alike (the MuJoCo C replay uses the same function)."""
        lo, hi = self.ctrl_range
        xp = np if isinstance(U, np.ndarray) else jnp
        return xp.clip(xp.asarray(self.default_pose) + self.action_scale * U, lo, hi)

    # ----------------------------------------------------------------------------------------
    def _mjx_model(self):
        x64 = _x64()
        if x64 not in self._mjx_models:
            with jax.ensure_compile_time_eval():  # concrete arrays even when first called under a trace
                self._mjx_models[x64] = mjx.put_model(self.sim_model, device=local_device())
        return self._mjx_models[x64]

    def _control_step(self, x: jax.Array, u: jax.Array) -> jax.Array:
        """One control step of the law from state x (37,) with action u (12,): x_next (37,). Traceable."""
        m = self._mjx_model()
        step = _mjx_step_implicit if self.gradient == "implicit" else mjx.step
        template = mjx.make_data(m, device=local_device())
        dtype = template.qpos.dtype

        def substep(carry, ctrl):
            qpos, qvel = carry
            d = step(m, template.replace(qpos=qpos, qvel=qvel, ctrl=ctrl))
            return (d.qpos, d.qvel)

        substep = jax.checkpoint(substep, policy=_SUBSTEP_POLICY, prevent_cse=False)  # inside scan
        ctrl = self.targets(u).astype(dtype)
        carry = (x[:NQ].astype(dtype), x[NQ:].astype(dtype))
        carry, _ = jax.lax.scan(lambda c, _: (substep(c, ctrl), None), carry, None, length=self.n_substeps)
        return jnp.concatenate(carry)

    def _single(self, x0: jax.Array, U: jax.Array) -> jax.Array:
        """Unbatched rollout: x0 (37,), U (H, 12) -> X (H+1, 37). Traceable."""
        dtype = jnp.float64 if _x64() else jnp.float32
        quat = x0[3:7] / jnp.linalg.norm(x0[3:7])
        x0 = jnp.concatenate([x0[:3], quat, x0[7:]]).astype(dtype)

        def control_step(x, u):
            x_next = self._control_step(x, u)
            return x_next, x_next

        if self.remat:
            control_step = jax.checkpoint(control_step)
        _, xs = jax.lax.scan(control_step, x0, U.astype(dtype))
        return jnp.concatenate([x0[None], xs], axis=0)

    def step(self, x: jax.Array, u: jax.Array) -> jax.Array:
        """One control step, unbatched and traceable (for closed-loop use inside jit/vmap, e.g. RL
        environments): the same computation as one step of :meth:`rollout`. The quaternion is not
        renormalised (the simulator keeps it unit)."""
        with jax.default_matmul_precision("highest"):
            return self._control_step(x, u)

    def _batched(self, x0: jax.Array, U: jax.Array) -> jax.Array:
        # Full float32 matrix products: GPUs otherwise run f32 matmuls in TF32, which costs the
        # simulation ~3 decimal digits (H200, MJX vs MuJoCo C: max error 8e-2 instead of ~1e-5).
        with jax.default_matmul_precision("highest"):
            return jax.vmap(self._single)(x0, U)

    def rollout(self, x0, U) -> jax.Array:
        """Roll the action sequence ``U`` out from ``x0``; see the class docstring for shapes."""
        dtype = jnp.float64 if _x64() else jnp.float32
        x0 = _as_array(x0, dtype)
        U = _as_array(U, dtype)
        batch, unbatched = _check_inputs(x0, U)
        x0b = jnp.broadcast_to(x0, (batch, STATE_DIM)) if x0.ndim == 1 else x0
        Ub = jnp.broadcast_to(U, (batch, *U.shape[-2:])) if U.ndim == 2 else U
        X = self._jitted(x0b, Ub)
        return X[0] if unbatched else X

    __call__ = rollout

    def home_state(self) -> np.ndarray:
        """The 37-D state of the ``home`` keyframe (zero velocities)."""
        x = np.zeros(STATE_DIM)
        x[:NQ] = _home_qpos(self.mj_model)
        return x


def _home_qpos(model: mujoco.MjModel) -> np.ndarray:
    kid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_KEY, "home")
    if kid < 0:
        return np.concatenate([[0.0, 0.0, 0.27, 1.0, 0.0, 0.0, 0.0], HOME_JOINTS])
    return model.key_qpos[kid].copy()


@jax.custom_vjp
def _spd_solve(a: jax.Array, b: jax.Array) -> jax.Array:
    """x = A^-1 b for a symmetric positive definite A (Cholesky, as MJX does for dense M).

    The custom VJP reuses the factor: b_bar = A^-1 x_bar, A_bar = -b_bar x^T. Differentiating the
    Cholesky factorisation itself (what autodiff of ``cho_factor`` does) costs several batched
    triangular solves per step and dominated the rollout gradient.
    """
    return _spd_solve_fwd(a, b)[0]


def _spd_solve_fwd(a, b):
    factor = jax.scipy.linalg.cho_factor(a)[0]
    x = jax.scipy.linalg.cho_solve((factor, False), b)
    return x, (factor, x)


def _spd_solve_bwd(res, x_bar):
    factor, x = res
    b_bar = jax.scipy.linalg.cho_solve((factor, False), x_bar)
    return -jnp.outer(b_bar, x), b_bar


_spd_solve.defvjp(_spd_solve_fwd, _spd_solve_bwd)


def _solve_implicit(m, d):
    """One Newton iteration of MJX's constraint solver, with a cheap exact-at-the-step gradient.

    Forward: the same computation as ``mjx`` with ``opt.iterations == 1`` and warm start disabled:
    start from qacc_smooth, Newton direction s = -H^-1 grad with H = M + J' D_active J, MJX's own
    line search along s. Backward:

    * the line search (a scan of conditional bracketing steps) is not differentiated. The step
      alpha* minimises the piecewise-quadratic cost f along s, so g(alpha*) = f'(alpha*) = 0 and
      d alpha* = -dg / g'. Differentiating one Newton correction alpha* - g(alpha*) / g'(alpha*),
      whose value is dropped, gives exactly that;
    * the SPD solves use :func:`_spd_solve`'s factor-reusing VJP instead of differentiating the
      Cholesky factorisation;
    * only qacc is produced: with one iteration the solver's post-step bookkeeping (constraint
      forces, next gradient and Hessian) does not feed the Euler integrator.
    Valid for the features :func:`_check_implicit_supported` checks (pyramidal cone, no friction
    loss, Newton or CG is irrelevant here: the Newton direction is always used).
    """
    impl = d._impl
    sg = jax.lax.stop_gradient
    mass = impl.M
    qacc0 = d.qacc_smooth
    jac, efc_d = impl.efc_J, impl.efc_D
    ma = mass @ qacc0
    jaref = jac @ qacc0 - impl.efc_aref
    active = (jaref < 0).at[: impl.ne + impl.nf].set(True)
    efc_force = -efc_d * jaref * active
    qfrc_constraint = jac.T @ efc_force
    grad = ma - d.qfrc_smooth - qfrc_constraint
    hess = mass + (jac.T * (efc_d * active)) @ jac
    search = -_spd_solve(0.5 * (hess + hess.T), grad)
    gauss = 0.5 * jnp.dot(ma - d.qfrc_smooth, qacc0 - d.qacc_smooth)
    cost = 0.5 * jnp.sum(efc_d * jaref * jaref * active) + gauss
    zero = jnp.zeros((), qacc0.dtype)
    ctx = _mjx_solver.Context(
        qacc=qacc0,
        qfrc_constraint=qfrc_constraint,
        Jaref=jaref,
        efc_force=efc_force,
        Ma=ma,
        grad=grad,
        Mgrad=-search,
        search=search,
        gauss=gauss,
        cost=cost,
        prev_cost=zero,
        solver_niter=0,
        active=active,
        fri=zero,
        dm=zero,
        u=zero,
        h=zero,
    )
    ls = _mjx_solver._linesearch(m, sg(d), sg(ctx))
    step = sg(ls.qacc - qacc0)
    alpha = sg(jnp.dot(step, search) / jnp.maximum(jnp.dot(search, search), mujoco.mjMINVAL))
    improved = sg(jnp.any(step != 0))
    alpha = _checkpoint_name(alpha, "dynaflow_ls_alpha")
    improved = _checkpoint_name(improved, "dynaflow_ls_improved")
    # f(a) = gauss(qacc0 + a s) + sum_active 0.5 D (Jaref + a J s)^2, pyramidal cone
    mv = mass @ search
    jv = jac @ search
    x = jaref + alpha * jv
    act = (x < 0).at[: impl.ne + impl.nf].set(True)
    g = jnp.dot(search, ma - d.qfrc_smooth) + alpha * jnp.dot(search, mv) + jnp.sum(act * efc_d * x * jv)
    h = jnp.dot(search, mv) + jnp.sum(act * efc_d * jv * jv)
    newton = g / jnp.maximum(h, mujoco.mjMINVAL)
    q = qacc0 + improved * search * (alpha - (newton - sg(newton)))
    return sg(_checkpoint_name(ls.qacc, "dynaflow_ls_qacc")) + (q - sg(q))


def _mjx_step_implicit(m, d):
    """``mjx.step`` for DynaFlow's model (Euler, eulerdamp off, pyramidal cone, 1 solver iteration,
    no warm start, no tendons, sensors or external forces) with a cheaper backward pass:
    :func:`_spd_solve` for M^-1 and :func:`_solve_implicit` for the constraint solver. The forward
    values are MJX's (up to float rounding); cameras and lights are not updated."""
    d = _mjx_smooth.kinematics(m, d)
    d = _mjx_smooth.com_pos(m, d)
    d = _mjx_smooth.crb(m, d)
    d = _mjx_collision.collision(m, d)
    d = _mjx_constraint.make_constraint(m, d)
    d = _mjx_smooth.transmission(m, d)
    d = _mjx_forward.fwd_velocity(m, d)
    d = _mjx_forward.fwd_actuation(m, d)
    qfrc_smooth = d.qfrc_passive - d.qfrc_bias + d.qfrc_actuator
    d = d.replace(qfrc_smooth=qfrc_smooth, qacc_smooth=_spd_solve(d._impl.M, qfrc_smooth))
    if d._impl.efc_J.size == 0:
        qacc = d.qacc_smooth
    else:
        qacc = _solve_implicit(m, d)
    return _mjx_forward._advance(m, d.replace(qacc=qacc), d.act_dot, qacc)


def _check_implicit_supported(model: mujoco.MjModel) -> None:
    """The implicit-gradient step covers exactly the model features DynaFlow's MJCF uses."""
    opt = model.opt
    problems = []
    if opt.integrator != mujoco.mjtIntegrator.mjINT_EULER:
        problems.append("integrator must be Euler")
    if not opt.disableflags & mujoco.mjtDisableBit.mjDSBL_EULERDAMP:
        problems.append("eulerdamp must be disabled")
    if opt.cone != mujoco.mjtCone.mjCONE_PYRAMIDAL:
        problems.append("cone must be pyramidal")
    if opt.iterations != 1:
        problems.append("opt.iterations must be 1")
    if np.any(model.dof_frictionloss > 0):
        problems.append("dof frictionloss is not supported")
    if model.nsensor:
        problems.append("sensors are not computed by the rollout")
    if model.na:
        problems.append("actuator activations are not supported")
    if model.ntendon:
        problems.append("tendons are not supported")
    if problems:
        raise ValueError(
            "gradient='implicit' needs: " + "; ".join(problems) + " (or use gradient='unrolled')"
        )


_ROLLOUTS: dict = {}


def create_go2_rollout(
    xml_path: str | Path | None = None,
    ctrl_dt: float = 0.02,
    n_substeps: int = 4,
    action_scale: float = 0.5,
    remat: bool = False,
    gradient: Literal["implicit", "unrolled"] = "implicit",
    default_pose=None,
) -> Rollout:
    """Build Phi for the Go2: ``rollout(x0, U) -> X`` (see :class:`Rollout`).

    Args:
      xml_path: MJCF scene; the project's own Go2 scene when ``None``.
      ctrl_dt: control period (s); 0.02 = 50 Hz.
      n_substeps: physics steps per control step (``sim_dt = ctrl_dt / n_substeps``).
      action_scale: joint-target offset (rad) per unit action.
      remat: wrap each control step in ``jax.checkpoint`` (memory ~linear in H, ~1.3x compute).
      gradient: ``"implicit"`` (fast, default) or ``"unrolled"`` (plain ``mjx.step``).
      default_pose: 12 joint angles the actions are offsets from; the ``home`` keyframe's by default.

    Equal arguments return the same :class:`Rollout` object (per process), so every checkpoint, policy
    and command built on it shares its compiled functions (samplers, replanning) instead of compiling
    them again. Treat its models as read-only (``reference_model`` copies).
    """
    args = (xml_path, ctrl_dt, n_substeps, action_scale, remat, gradient, default_pose)
    try:
        key = (
            None if xml_path is None else str(Path(xml_path).resolve()),
            float(ctrl_dt),
            n_substeps,
            float(action_scale),
            bool(remat),
            gradient,
            None if default_pose is None else tuple(float(v) for v in np.ravel(default_pose)),
        )
        hash(key)
    except (TypeError, ValueError):
        return _build_rollout(*args)  # raises the argument's own error
    if key not in _ROLLOUTS:
        _ROLLOUTS[key] = _build_rollout(*args)
    return _ROLLOUTS[key]


def _build_rollout(xml_path, ctrl_dt, n_substeps, action_scale, remat, gradient, default_pose) -> Rollout:
    if not (ctrl_dt > 0 and math.isfinite(ctrl_dt)):
        raise ValueError(f"ctrl_dt: expected a positive number of seconds, got {ctrl_dt!r}")
    if int(n_substeps) != n_substeps or n_substeps < 1:
        raise ValueError(f"n_substeps: expected a positive integer, got {n_substeps!r}")
    if not (action_scale > 0 and math.isfinite(action_scale)):
        raise ValueError(f"action_scale: expected a positive number, got {action_scale!r}")
    if gradient not in ("implicit", "unrolled"):
        raise ValueError(f"gradient: expected 'implicit' or 'unrolled', got {gradient!r}")
    model = load_go2_model(xml_path)
    model.opt.timestep = ctrl_dt / n_substeps
    sim = simulation_model(xml_path)
    sim.opt.timestep = ctrl_dt / n_substeps
    if model.opt.iterations != 1:
        raise ValueError(
            f"{xml_path or DEFAULT_XML}: opt.iterations must be 1 for reverse-mode gradients "
            f"through MJX, got {model.opt.iterations}"
        )
    if gradient == "implicit":
        _check_implicit_supported(model)
    pose = _home_qpos(model)[7:] if default_pose is None else np.asarray(default_pose, dtype=np.float64)
    if pose.shape != (ACTION_DIM,):
        raise ValueError(f"default_pose: expected shape (12,), got {pose.shape}")
    return Rollout(
        mj_model=model,
        sim_model=sim,
        default_pose=pose,
        action_scale=float(action_scale),
        ctrl_dt=float(ctrl_dt),
        n_substeps=int(n_substeps),
        remat=bool(remat),
        gradient=gradient,
    )


# ---------------------------------------------------------------------------------------------
# MuJoCo C replay: the admissibility check.


def reference_model(rollout: Rollout) -> tuple[mujoco.MjModel, int]:
    """A copy of the rollout's model with a converged solver at ``sim_dt <= 2 ms``.

    Newton, 100 iterations, 50 line-search iterations, tight tolerances, elliptic friction cone,
    warm start on. Returns the model and the number of physics steps per control step.
    """
    model = copy.deepcopy(rollout.mj_model)
    n_sub = max(rollout.n_substeps, math.ceil(rollout.ctrl_dt / REFERENCE_MAX_DT - 1e-9))
    opt = model.opt
    opt.timestep = rollout.ctrl_dt / n_sub
    opt.solver = mujoco.mjtSolver.mjSOL_NEWTON
    opt.iterations = REFERENCE_ITERATIONS
    opt.ls_iterations = REFERENCE_LS_ITERATIONS
    opt.tolerance = 1e-10
    opt.ls_tolerance = 1e-6
    opt.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    opt.disableflags &= ~int(mujoco.mjtDisableBit.mjDSBL_WARMSTART)
    return model, n_sub


def replay_in_mujoco(
    rollout: Rollout,
    x0,
    U,
    fidelity: Literal["same", "reference"] = "same",
) -> np.ndarray:
    """Run the rollout's control law in MuJoCo C (float64) and return the states it produces.

    ``fidelity="same"`` uses the rollout's own model and options (MJX should agree to ~1e-4);
    ``"reference"`` uses :func:`reference_model`, the higher-fidelity simulator that judges
    whether generated actions transfer. Shapes as for :meth:`Rollout.rollout`.
    """
    if fidelity not in ("same", "reference"):
        raise ValueError(f"fidelity: expected 'same' or 'reference', got {fidelity!r}")
    x0 = np.asarray(x0, dtype=np.float64)
    U = np.asarray(U, dtype=np.float64)
    batch, unbatched = _check_inputs(x0, U)
    x0b = np.broadcast_to(x0, (batch, STATE_DIM))
    Ub = np.broadcast_to(U, (batch, *U.shape[-2:]))
    if fidelity == "same":
        model, n_sub = rollout.mj_model, rollout.n_substeps
    else:
        model, n_sub = reference_model(rollout)
    data = mujoco.MjData(model)
    H = Ub.shape[1]
    out = np.empty((batch, H + 1, STATE_DIM))
    for b in range(batch):
        mujoco.mj_resetData(model, data)
        x = x0b[b].copy()
        norm = np.linalg.norm(x[3:7])
        # a degenerate quaternion (a states-only generator can output one) starts upright instead of NaN
        x[3:7] = x[3:7] / norm if norm > 1e-9 else (1.0, 0.0, 0.0, 0.0)
        data.qpos[:] = x[:NQ]
        data.qvel[:] = x[NQ:]
        out[b, 0] = x
        targets = rollout.targets(Ub[b])
        for k in range(H):
            data.ctrl[:] = targets[k]
            mujoco.mj_step(model, data, nstep=n_sub)
            out[b, k + 1, :NQ] = data.qpos
            out[b, k + 1, NQ:] = data.qvel
    return out[0] if unbatched else out


def random_smooth_actions(
    rng: np.random.Generator, batch: int, horizon: int, amplitude: float = 1.0, ctrl_dt: float = 0.02
) -> np.ndarray:
    """Random smooth action sequences ``(batch, horizon, 12)`` for tests and benchmarks: per joint,
    the mean of three sinusoids of 0.5-3 Hz with random amplitudes and phases, so ``|u| <= amplitude``."""
    t = np.arange(horizon) * ctrl_dt
    a = rng.uniform(-1, 1, (batch, ACTION_DIM, 3, 1))
    f = rng.uniform(0.5, 3.0, (batch, ACTION_DIM, 3, 1))
    ph = rng.uniform(0, 2 * np.pi, (batch, ACTION_DIM, 3, 1))
    u = (a * np.sin(2 * np.pi * f * t + ph)).sum(axis=2) / 3.0
    return amplitude * np.transpose(u, (0, 2, 1))


def upright(X) -> np.ndarray:
    """Body z-axis . world z for each state (1 = upright), from the base quaternion."""
    q = np.asarray(X)[..., 3:7]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    # third row, third column of the rotation matrix: 1 - 2 (x^2 + y^2)
    return 1.0 - 2.0 * (q[..., 1] ** 2 + q[..., 2] ** 2)


UPRIGHT_MIN = 0.8  # body z . world z below this counts as tipped over
HEIGHT_MIN = 0.15  # m: a trunk lower than this counts as fallen


def stays_up(X, min_height: float = HEIGHT_MIN, min_upright: float = UPRIGHT_MIN) -> np.ndarray:
    """Whether each trajectory ``(..., T, 37)`` keeps its trunk upright and above ``min_height``
    throughout (a NaN state counts as a fall)."""
    X = np.asarray(X)
    with np.errstate(invalid="ignore"):
        up = np.all(upright(X) >= min_upright, axis=-1)
        high = np.all(X[..., 2] >= min_height, axis=-1)
    return up & high & np.all(np.isfinite(X), axis=(-2, -1))
