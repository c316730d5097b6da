"""MJX's physics step with a cheaper reverse-mode gradient (the only module that reaches into MJX's
private ``mujoco.mjx._src``; ``tests/test_physics.py`` checks it against ``mjx.step``).

:func:`mjx_step_implicit` computes what ``mjx.step`` computes for DynaFlow's model (the same algorithm;
values agree to float rounding) and differs only in its backward pass:

* the constraint solver's line search is not unrolled: its step gets the implicit-function derivative;
* linear solves with the mass matrix and the Newton Hessian reuse their Cholesky factor (a custom VJP)
  instead of differentiating the factorisation.

:func:`check_implicit_supported` lists what the model must look like for this to hold.
"""

from __future__ import annotations

import contextlib
import io

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from jax.ad_checkpoint import checkpoint_name

from dynaflow.physics import legged as _legged

with contextlib.redirect_stdout(io.StringIO()):
    # mujoco.mjx prints a notice when the optional Warp backend is missing; we never use Warp.
    from mujoco.mjx._src import collision_driver as _mjx_collision
    from mujoco.mjx._src import constraint as _mjx_constraint
    from mujoco.mjx._src import forward as _mjx_forward
    from mujoco.mjx._src import smooth as _mjx_smooth
    from mujoco.mjx._src import solver as _mjx_solver

# Names of the line-search results a rematerialised substep saves for its backward pass
# (see dynaflow.physics.rollout: everything else is recomputed).
LS_ALPHA = "dynaflow_ls_alpha"
LS_IMPROVED = "dynaflow_ls_improved"
LS_QACC = "dynaflow_ls_qacc"


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
    alpha = checkpoint_name(alpha, LS_ALPHA)
    improved = checkpoint_name(improved, LS_IMPROVED)
    # f(a) = gauss(qacc0 + a s) + sum_active 0.5 D (Jaref + a J s)^2, pyramidal cone
    mv = mass @ search
    jv = jac @ search
    x = jaref + alpha * jv
    act = (x < 0).at[: impl.ne + impl.nf].set(True)
    g = jnp.dot(search, ma - d.qfrc_smooth) + alpha * jnp.dot(search, mv) + jnp.sum(act * efc_d * x * jv)
    h = jnp.dot(search, mv) + jnp.sum(act * efc_d * jv * jv)
    newton = g / jnp.maximum(h, mujoco.mjMINVAL)
    q = qacc0 + improved * search * (alpha - (newton - sg(newton)))
    return sg(checkpoint_name(ls.qacc, LS_QACC)) + (q - sg(q))


def _solve_converged(m, d):
    """MJX's constraint solver run to convergence, with its derivative by the implicit function theorem.

    Forward: ``mjx``'s own solver (Newton, ``opt.iterations`` / ``opt.tolerance``, either friction cone) on
    stop-gradient inputs: its ``while_loop`` is never differentiated, and nothing else is computed.
    Derivative (a custom JVP, so reverse mode transposes it): at the converged qacc* the cost's gradient
    r(qacc*, theta) = M qacc* - qfrc_smooth - qfrc_constraint(qacc*) vanishes, so with the active set (and
    cone zones) held, dqacc* = -H^-1 dr/dtheta with H = dr/dqacc the Newton Hessian (by forward mode, so
    it is exact for either cone). Valid where :func:`check_implicit_supported` says (no friction loss)."""
    fixed = jax.lax.stop_gradient(d)
    qstar = jax.lax.stop_gradient(checkpoint_name(_mjx_solver.solve(m, fixed).qacc, LS_QACC))

    return _at_solution(qstar, m, d)


def _residual(qacc, m, d):
    """The gradient of the constraint solver's cost at ``qacc``: M qacc - qfrc_smooth - qfrc_constraint."""
    ctx = _mjx_solver.Context.create(m, d.replace(qacc=qacc), grad=False)
    return ctx.Ma - d.qfrc_smooth - ctx.qfrc_constraint


@jax.custom_jvp
def _at_solution(qstar, m, d):
    """``qstar`` (the converged solution for ``m``, ``d``), differentiated by the implicit function theorem.
    Everything is an argument, nothing closed over: the rule runs inside scans and rematerialisation."""
    return qstar


@_at_solution.defjvp
def _at_solution_jvp(primals, tangents):
    qstar, m, d = primals
    _, m_dot, d_dot = tangents  # qstar is the stopped solver's output: no tangent of its own
    _, r_dot = jax.jvp(lambda mm, dd: _residual(qstar, mm, dd), (m, d), (m_dot, d_dot))
    hess = jax.jacfwd(_residual)(qstar, m, d)
    factor = jax.scipy.linalg.cho_factor(0.5 * (hess + hess.T))
    return qstar, -jax.scipy.linalg.cho_solve(factor, r_dot)


def _solve(m, d):
    """The constraint solve of DynaFlow's step: one cold Newton iteration with the pyramidal cone (the
    fast default, :func:`_solve_implicit`), otherwise the converged solve (:func:`_solve_converged`)."""
    if int(m.opt.iterations) == 1 and int(m.opt.cone) == int(mujoco.mjtCone.mjCONE_PYRAMIDAL):
        return _solve_implicit(m, d)
    return _solve_converged(m, d)


def mjx_step_implicit(m, d):
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
        qacc = _solve(m, d)
    return _mjx_forward._advance(m, d.replace(qacc=qacc), d.act_dot, qacc)


def legged_step_implicit(m, lay, template, qpos: jax.Array, qvel: jax.Array, ctrl: jax.Array):
    """:func:`mjx_step_implicit` for a model of :func:`~dynaflow.physics.legged.legged_layout`'s shape:
    the smooth dynamics and constraint rows of :mod:`dynaflow.physics.legged` (a few fused operations
    per quantity instead of MJX's per-body scans), MJX's own constraint solver step, the same gradient.
    ``template`` is ``mjx.make_data(m)``. Returns the next ``(qpos, qvel)``."""
    s = _legged.smooth(m, lay, qpos, qvel, ctrl)
    qacc_smooth = _spd_solve(s["M"], s["qfrc_smooth"])
    d = template.replace(qpos=s["qpos"], qvel=qvel, qfrc_smooth=s["qfrc_smooth"], qacc_smooth=qacc_smooth)
    d = d.tree_replace({f"_impl.{k}": s[k] for k in ("M", "efc_J", "efc_D", "efc_aref")})
    qacc = _solve(m, d)
    return _legged.advance(m, s["qpos"], qvel, qacc)


def check_implicit_supported(model: mujoco.MjModel) -> None:
    """The implicit-gradient step covers exactly the model features DynaFlow's MJCF uses: one Newton
    iteration with the pyramidal cone, differentiated as such, or a solve of several iterations with either
    cone, differentiated as if converged (the implicit function theorem at its result)."""
    opt = model.opt
    problems = []
    if opt.integrator != mujoco.mjtIntegrator.mjINT_EULER:
        problems.append("integrator must be Euler")
    if not opt.disableflags & mujoco.mjtDisableBit.mjDSBL_EULERDAMP:
        problems.append("eulerdamp must be disabled")
    if opt.cone == mujoco.mjtCone.mjCONE_ELLIPTIC and opt.iterations < 2:
        # one iteration is differentiated as such for the pyramidal cone only; more are taken as converged
        problems.append("the elliptic cone needs a converged solve (opt.iterations > 1)")
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
