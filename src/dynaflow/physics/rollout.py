"""The differentiable simulator Φ(x0, U) -> X: a batched, jit-compiled MJX rollout of the Go2's control law.

Control law (50 Hz by default): joint targets ``q* = clip(default_pose + action_scale * u, ctrlrange)`` are
sent to the model's PD position actuators and held for ``n_substeps`` physics steps of
``sim_dt = ctrl_dt / n_substeps``. States follow the 37-D layout of :mod:`dynaflow.robots.go2`.

Physics knows nothing of learning: this package imports only JAX, MuJoCo, MJX and the robot constants.
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from dynaflow.physics.implicit import (
    LS_ALPHA,
    LS_IMPROVED,
    LS_QACC,
    check_implicit_supported,
    legged_step_implicit,
    mjx_step_implicit,
)
from dynaflow.physics.legged import LeggedLayout, legged_layout
from dynaflow.physics.model import home_qpos, load_go2_model, simulation_model
from dynaflow.robots.go2 import ACTION_DIM, JOINTS, NQ, SCENE_XML, STATE_DIM, TRUNK_BODY

with contextlib.redirect_stdout(io.StringIO()):
    # mujoco.mjx prints a notice when the optional Warp backend is missing; we never use Warp.
    from mujoco import mjx

# Each physics substep is rematerialised in the backward pass, saving only its (qpos, qvel) input
# and the line-search results. Storing every MJX intermediate instead costs ~1,400 stacked residual
# writes/reads per control step on the CPU and made the gradient ~1.5x slower (BENCHMARKS.md).
_SUBSTEP_POLICY = jax.checkpoint_policies.save_only_these_names(LS_ALPHA, LS_IMPROVED, LS_QACC)


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


def check_inputs(x0, U) -> tuple[int, bool]:
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
    Cholesky factor, and each substep is rematerialised (see :mod:`dynaflow.physics.implicit`).
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
    scene_xml: str | None = None  # the MJCF it was built from (None: the project's own scene)
    solver: Literal["one-step", "converged"] = "one-step"  # the contact solve (see create_go2_rollout)
    legged: LeggedLayout | None = None  # set: the implicit step runs dynaflow.physics.legged's stages
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

    def _control_step(self, x: jax.Array, u: jax.Array, world=None, u_prev=None) -> jax.Array:
        """One control step of the law from state x (37,) with action u (12,): x_next (37,). Traceable.
        ``world``: one sample's physics changes (:func:`random_worlds`); its ``delay`` physics steps
        still run with the previous action ``u_prev``'s targets (the actuators' latency)."""
        m = self._mjx_model() if world is None else self._perturbed(world)
        step = mjx_step_implicit if self.gradient == "implicit" else mjx.step
        template = mjx.make_data(m, device=local_device())
        dtype = template.qpos.dtype

        def substep(carry, ctrl):
            qpos, qvel = carry
            if self.legged is not None:
                return legged_step_implicit(m, self.legged, template, qpos, qvel, ctrl)
            d = step(m, template.replace(qpos=qpos, qvel=qvel, ctrl=ctrl))
            return (d.qpos, d.qvel)

        substep = jax.checkpoint(substep, policy=_SUBSTEP_POLICY, prevent_cse=False)  # inside scan
        ctrl = self.targets(u).astype(dtype)
        carry = (x[:NQ].astype(dtype), x[NQ:].astype(dtype))
        if world is None:
            carry, _ = jax.lax.scan(
                lambda c, _: (substep(c, ctrl), None), carry, None, length=self.n_substeps
            )
        else:
            late = jnp.arange(self.n_substeps)[:, None] < world["delay"]
            ctrls = jnp.where(late, self.targets(u_prev).astype(dtype), ctrl)
            carry, _ = jax.lax.scan(lambda c, ct: (substep(c, ct), None), carry, ctrls)
        return jnp.concatenate(carry)

    def _perturbed(self, world):
        """The MJX model with one sample's changes: contact friction, trunk mass, inertia and centre of
        mass, PD gains and torque limits (MJX models are pytrees: under vmap each sample has its own)."""
        m = self._mjx_model()
        sim = self.sim_model
        trunk = mujoco.mj_name2id(sim, mujoco.mjtObj.mjOBJ_BODY, TRUNK_BODY)
        touching = np.flatnonzero((sim.geom_contype | sim.geom_conaffinity) != 0)
        dtype = m.body_mass.dtype
        w = {k: jnp.asarray(v, dtype) for k, v in world.items() if k != "delay"}
        return m.replace(
            geom_friction=m.geom_friction.at[touching, 0].set(w["friction"]),
            body_mass=m.body_mass.at[trunk].multiply(w["mass"]),
            body_inertia=m.body_inertia.at[trunk].multiply(w["mass"]),
            body_ipos=m.body_ipos.at[trunk].add(w["com"]),
            actuator_gainprm=m.actuator_gainprm.at[:, 0].multiply(w["gain"]),
            actuator_biasprm=m.actuator_biasprm.at[:, 1:3].multiply(w["gain"]),
            actuator_forcerange=m.actuator_forcerange * w["torque"],
        )

    def _single(self, x0: jax.Array, U: jax.Array, world=None) -> jax.Array:
        """Unbatched rollout: x0 (37,), U (H, 12) -> X (H+1, 37). Traceable."""
        dtype = jnp.float64 if _x64() else jnp.float32
        quat = x0[3:7] / jnp.linalg.norm(x0[3:7])
        x0 = jnp.concatenate([x0[:3], quat, x0[7:]]).astype(dtype)
        U = U.astype(dtype)

        if world is None:

            def control_step(x, u):
                x_next = self._control_step(x, u)
                return x_next, x_next

            xs = U
        else:

            def control_step(x, uu):
                x_next = self._control_step(x, uu[1], world, uu[0])
                return x_next, x_next

            # (previous, current) actions; before the first, the servos hold x0's joint angles (as the
            # MuJoCo C worlds of dynaflow.physics.worlds do)
            hold = (x0[JOINTS] - jnp.asarray(self.default_pose, dtype)) / self.action_scale
            xs = (jnp.concatenate([hold[None], U[:-1]]), U)

        if self.remat:
            control_step = jax.checkpoint(control_step)
        _, xs = jax.lax.scan(control_step, x0, xs)
        return jnp.concatenate([x0[None], xs], axis=0)

    def step(self, x: jax.Array, u: jax.Array) -> jax.Array:
        """One control step, unbatched and traceable (for closed-loop use inside jit/vmap, e.g. RL
        environments): the same computation as one step of :meth:`rollout`. The quaternion is not
        renormalised (the simulator keeps it unit)."""
        with jax.default_matmul_precision("highest"):
            return self._control_step(x, u)

    def _batched(self, x0: jax.Array, U: jax.Array, world=None) -> jax.Array:
        # Full float32 matrix products: GPUs otherwise run f32 matmuls in TF32, which costs the
        # simulation ~3 decimal digits (H200, MJX vs MuJoCo C: max error 8e-2 instead of ~1e-5).
        with jax.default_matmul_precision("highest"):
            return jax.vmap(self._single)(x0, U, world)

    def rollout(self, x0, U, world: dict | None = None) -> jax.Array:
        """Roll the action sequence ``U`` out from ``x0``; see the class docstring for shapes. ``world``:
        per-sample physics changes ``{name: (B, ...)}`` from :func:`random_worlds` (domain randomisation
        during training; batched arguments only); None: the model as it is."""
        dtype = jnp.float64 if _x64() else jnp.float32
        x0 = _as_array(x0, dtype)
        U = _as_array(U, dtype)
        batch, unbatched = check_inputs(x0, U)
        x0b = jnp.broadcast_to(x0, (batch, STATE_DIM)) if x0.ndim == 1 else x0
        Ub = jnp.broadcast_to(U, (batch, *U.shape[-2:])) if U.ndim == 2 else U
        if world is not None:
            missing = sorted(set(WORLD_KEYS) - set(world))
            if missing or unbatched:
                raise ValueError(f"world: expected batched {WORLD_KEYS}, missing {missing}")
        X = self._jitted(x0b, Ub, world)
        return X[0] if unbatched else X

    __call__ = rollout

    def home_state(self) -> np.ndarray:
        """The 37-D state of the ``home`` keyframe (zero velocities)."""
        x = np.zeros(STATE_DIM)
        x[:NQ] = home_qpos(self.mj_model)
        return x


WORLD_KEYS = ("friction", "mass", "com", "gain", "torque", "delay")


def random_worlds(key: jax.Array, batch: int, rollout: Rollout, strength: float | jax.Array = 1.0) -> dict:
    """Per-sample physics changes for domain randomisation, ``{name: (batch, ...)}`` (traceable).

    At ``strength`` 1 they span the transfer suite's worlds (:data:`dynaflow.physics.worlds.TRANSFER_MATRIX`):
    contact friction uniform in [0.4, 1.2], trunk mass and inertia x [0.8, 1.2] with its centre of mass
    moved up to 3 cm in x and 1.5 cm in y, PD gains x [0.8, 1.2], torque limits x [0.8, 1.0] and a latency
    of 0 to one control step (in physics steps: the first ``delay`` substeps still run the previous
    target). ``strength`` shrinks every range towards the nominal model (0: no change)."""
    k = jax.random.split(key, 6)
    a = jnp.asarray(strength, jnp.float32)
    nominal = float(rollout.sim_model.geom_friction[:, 0].max())

    def u(key, lo, hi, shape=()):
        return jax.random.uniform(key, (batch, *shape), jnp.float32, lo, hi)

    return {
        "friction": nominal + a * (u(k[0], 0.4, 1.2) - nominal),
        "mass": 1.0 + a * u(k[1], -0.2, 0.2),
        "com": a * u(k[2], -1.0, 1.0, (3,)) * jnp.array([0.03, 0.015, 0.0]),
        "gain": 1.0 + a * u(k[3], -0.2, 0.2),
        "torque": 1.0 - a * u(k[4], 0.0, 0.2),
        "delay": jnp.floor(a * u(k[5], 0.0, rollout.n_substeps + 1)).astype(jnp.int32),
    }


_ROLLOUTS: dict = {}


def create_go2_rollout(
    xml_path: str | Path | None = None,
    ctrl_dt: float = 0.02,
    n_substeps: int = 4,
    action_scale: float = 0.5,
    remat: bool = False,
    gradient: Literal["implicit", "unrolled"] = "implicit",
    default_pose=None,
    specialised: bool = False,
    solver: Literal["one-step", "converged"] = "one-step",
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
      solver: the contact solve. ``"one-step"`` (default): the MJCF's options, for the project's scene one
        Newton iteration from a cold start with the pyramidal friction cone (fast; its contact forces
        are not the converged ones). ``"converged"``: the elliptic cone and Newton iterations to
        convergence (:data:`CONVERGED_ITERATIONS`, tolerance 1e-8), the contact model of the reference
        simulator at Φ's own step; its gradient comes from the implicit function theorem at the
        solution (:mod:`dynaflow.physics.implicit`), so it needs ``gradient="implicit"``. It applies to
        the MuJoCo C model too (the gait library, the "same" replay).
      specialised: with ``gradient="implicit"``, run the stages of :mod:`dynaflow.physics.legged` (the
        same physics as MJX's stages, written for a floating base with hinge legs and sphere feet on a
        plane, one array per quantity over the legs) when the model has that shape. Off by default: on
        the 2-core CPU it measured no faster than MJX's stages (BENCHMARKS.md, "Update speed").

    Equal arguments return the same :class:`Rollout` object (per process), so every checkpoint, policy
    and command built on it shares its compiled functions (samplers, replanning) instead of compiling
    them again. Treat its models as read-only (``reference_model`` copies).
    """
    args = (xml_path, ctrl_dt, n_substeps, action_scale, remat, gradient, default_pose, specialised, solver)
    try:
        key = (
            None if xml_path is None else str(Path(xml_path).resolve()),
            float(ctrl_dt),
            n_substeps,
            float(action_scale),
            bool(remat),
            gradient,
            None if default_pose is None else tuple(float(v) for v in np.ravel(default_pose)),
            bool(specialised),
            solver,
        )
        hash(key)
    except (TypeError, ValueError):
        return _build_rollout(*args)  # raises the argument's own error
    if key not in _ROLLOUTS:
        _ROLLOUTS[key] = _build_rollout(*args)
    return _ROLLOUTS[key]


def _build_rollout(
    xml_path,
    ctrl_dt,
    n_substeps,
    action_scale,
    remat,
    gradient,
    default_pose,
    specialised=False,
    solver="one-step",
) -> Rollout:
    if not (ctrl_dt > 0 and math.isfinite(ctrl_dt)):
        raise ValueError(f"ctrl_dt: expected a positive number of seconds, got {ctrl_dt!r}")
    if int(n_substeps) != n_substeps or n_substeps < 1:
        raise ValueError(f"n_substeps: expected a positive integer, got {n_substeps!r}")
    if not (action_scale > 0 and math.isfinite(action_scale)):
        raise ValueError(f"action_scale: expected a positive number, got {action_scale!r}")
    if gradient not in ("implicit", "unrolled"):
        raise ValueError(f"gradient: expected 'implicit' or 'unrolled', got {gradient!r}")
    if solver not in SOLVERS:
        raise ValueError(f"solver: expected one of {', '.join(SOLVERS)}, got {solver!r}")
    if solver == "converged" and gradient != "implicit":
        raise ValueError("solver='converged' needs gradient='implicit' (MJX cannot differentiate its loop)")
    model = load_go2_model(xml_path)
    sim = simulation_model(xml_path)
    for m in (model, sim):
        m.opt.timestep = ctrl_dt / n_substeps
        if solver == "converged":
            use_converged_solver(m)
    if gradient == "unrolled" and model.opt.iterations != 1:
        raise ValueError(
            f"{xml_path or SCENE_XML}: opt.iterations must be 1 for reverse-mode gradients "
            f"through MJX, got {model.opt.iterations}"
        )
    if gradient == "implicit":
        check_implicit_supported(model)
    pose = home_qpos(model)[7:] if default_pose is None else np.asarray(default_pose, dtype=np.float64)
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
        scene_xml=None if xml_path is None else str(Path(xml_path).resolve()),
        legged=legged_layout(sim) if gradient == "implicit" and specialised else None,
        solver=solver,
    )


SOLVERS = ("one-step", "converged")
CONVERGED_ITERATIONS = 20  # Newton iterations at most; 2-5 usually reach the tolerance
CONVERGED_LS_ITERATIONS = 20


def use_converged_solver(model: mujoco.MjModel) -> None:
    """Give ``model`` (in place) the converged contact solve of ``solver="converged"``: Newton with the
    elliptic friction cone, up to :data:`CONVERGED_ITERATIONS` iterations to a 1e-8 tolerance, warm
    start off (the solution does not depend on it; Φ's state carries no previous acceleration)."""
    opt = model.opt
    opt.solver = mujoco.mjtSolver.mjSOL_NEWTON
    opt.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    opt.iterations = CONVERGED_ITERATIONS
    opt.ls_iterations = CONVERGED_LS_ITERATIONS
    opt.tolerance = 1e-8
    opt.ls_tolerance = 0.01
    opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_WARMSTART)
