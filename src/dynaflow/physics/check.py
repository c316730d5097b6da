"""``dynaflow physics``: check Φ on this machine (standing, MJX vs MuJoCo C, one gradient) in one call.

The thresholds live here, so a Python user gets the same verdict as the command:

* standing 5 s with zero action keeps the trunk within 3 cm of 0.27 m and upright (body z · world z > 0.95);
* MJX and MuJoCo C ("same" fidelity) agree on positions to 1e-3 over random smooth action sequences;
* the gradient of the final base position with respect to the actions is finite.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from dynaflow.physics.replay import random_smooth_actions, replay_in_mujoco, upright
from dynaflow.physics.rollout import create_go2_rollout

STAND_SECONDS = 5.0
STAND_HEIGHT, STAND_TOLERANCE = 0.27, 0.03  # m
STAND_UPRIGHT = 0.95
AGREEMENT = 1e-3  # max |MJX - C| on positions, "same" fidelity


_GRADIENTS: dict = {}


def final_position_gradients(rollout, x0, U) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of the summed final base position (x, y, z) with respect to the actions ``U (B, H, 12)``
    and the initial states ``x0 (B, 37)``, in float32 (jit-compiled once per rollout and shapes). A trunk's
    position responds to the actions only through the feet, so these are gradients through contacts."""
    import jax
    import jax.numpy as jnp

    if rollout not in _GRADIENTS:

        def loss(u, x):
            return jnp.sum(rollout(x, u)[:, -1, :3])

        _GRADIENTS[rollout] = jax.jit(jax.grad(loss, argnums=(0, 1)))
    gU, gx = _GRADIENTS[rollout](jnp.asarray(U, jnp.float32), jnp.asarray(x0, jnp.float32))
    return np.asarray(gU), np.asarray(gx)


@dataclass
class PhysicsCheck:
    """The figures :func:`self_check` measured, the verdict, and the lines the command prints."""

    ok: bool
    lines: list[str] = field(default_factory=list)
    figures: dict = field(default_factory=dict)


def self_check(
    batch: int = 32, horizon: int = 16, substeps: int = 4, fidelity: str = "same", seed: int = 0
) -> PhysicsCheck:
    """Standing, MJX vs MuJoCo C on ``batch`` random smooth action sequences of ``horizon`` steps, and a
    gradient through contacts; see the module docstring for the thresholds."""
    import jax

    if batch < 1 or horizon < 1:
        raise ValueError(f"--batch and --horizon must be >= 1, got {batch}, {horizon}")
    if fidelity not in ("same", "reference"):
        raise ValueError(f"--fidelity: expected same or reference, got {fidelity!r}")
    rollout = create_go2_rollout(n_substeps=substeps)
    x0 = rollout.home_state()
    lines = [
        f"Go2 model: {rollout.mj_model.nbody - 1} bodies, {rollout.mj_model.nu} PD actuators, "
        f"ctrl_dt {rollout.ctrl_dt} s, {rollout.n_substeps} substeps of {rollout.sim_dt * 1e3:.1f} ms, "
        f"action_scale {rollout.action_scale} rad; JAX on {jax.devices()[0].platform}"
    ]
    # Standing 5 s, run as chained windows of the same shape as the comparison below (one compile for both)
    t0 = time.perf_counter()
    steps = int(round(STAND_SECONDS / rollout.ctrl_dt))
    x, stand = np.tile(x0, (batch, 1)), [x0[None]]
    for _ in range(-(-steps // horizon)):
        window = np.asarray(rollout(x, np.zeros((batch, horizon, rollout.mj_model.nu))))
        stand.append(window[0, 1:])
        x = window[:, -1]
    stand = np.concatenate(stand)[: steps + 1]
    lines.append(
        f"standing {STAND_SECONDS:g} s (MJX, compile included {time.perf_counter() - t0:.1f} s): base z "
        f"{stand[:, 2].min():.3f}..{stand[:, 2].max():.3f} m, min uprightness {upright(stand).min():.4f}"
    )
    U = random_smooth_actions(np.random.default_rng(seed), batch, horizon, 1.0, rollout.ctrl_dt)
    xb = np.tile(x0, (batch, 1))
    t0 = time.perf_counter()
    X = np.asarray(rollout(xb, U))
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    X = np.asarray(rollout(xb, U))
    run_s = time.perf_counter() - t0
    err = np.abs(X - replay_in_mujoco(rollout, x0, U, fidelity=fidelity))
    steps = batch * horizon * rollout.n_substeps
    lines.append(
        f"MJX rollout B={batch} H={horizon}: {run_s * 1e3:.1f} ms "
        f"({steps / run_s:,.0f} physics steps/s; first call {compile_s:.1f} s)"
    )
    lines.append(
        f"MJX vs MuJoCo C ({fidelity}): max |error| base pos {err[..., :3].max():.2e} m, "
        f"quat {err[..., 3:7].max():.2e}, joints {err[..., 7:19].max():.2e} rad, "
        f"velocities {err[..., 19:].max():.2e}"
    )

    t0 = time.perf_counter()
    g, _ = final_position_gradients(rollout, xb, U)
    lines.append(
        f"gradient d(final base position)/dU: finite {bool(np.isfinite(g).all())}, "
        f"max |g| {np.abs(g).max():.3g} (first call {time.perf_counter() - t0:.1f} s)"
    )
    figures = {
        "stand_height_error_max": float(np.abs(stand[:, 2] - STAND_HEIGHT).max()),
        "stand_upright_min": float(upright(stand).min()),
        "agreement_max": float(err[..., :19].max()),
        "gradient_finite": bool(np.isfinite(g).all()),
    }
    ok = (
        figures["stand_height_error_max"] <= STAND_TOLERANCE
        and figures["stand_upright_min"] > STAND_UPRIGHT
        and (fidelity != "same" or figures["agreement_max"] <= AGREEMENT)
        and figures["gradient_finite"]
    )
    lines.append("physics check: " + ("OK" if ok else "FAILED"))
    return PhysicsCheck(ok, lines, figures)
