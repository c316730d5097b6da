"""Φ's control law in MuJoCo C (float64): the admissibility check, the "reference" simulator that judges
transfer, and the upright checks every evaluation uses."""

from __future__ import annotations

import copy
import math
from typing import Literal

import mujoco
import numpy as np

from dynaflow.physics.rollout import Rollout, check_inputs
from dynaflow.robots.go2 import ACTION_DIM, NQ, STATE_DIM

# The "reference" simulator: a converged solver at a finer step, used to judge transfer.
REFERENCE_MAX_DT = 0.002
REFERENCE_ITERATIONS = 100
REFERENCE_LS_ITERATIONS = 50


def reference_model(rollout: Rollout) -> tuple[mujoco.MjModel, int]:
    """A copy of the rollout's model with a converged solver at ``sim_dt <= 2 ms``.

    Newton, 100 iterations, 50 line-search iterations, tight tolerances, elliptic friction cone,
    warm start on. Returns the model and the number of physics steps per control step.
    """
    model = copy.deepcopy(rollout.mj_model)
    return model, use_reference_solver(model, rollout)


def use_reference_solver(model: mujoco.MjModel, rollout: Rollout) -> int:
    """Give ``model`` (in place) the reference simulator's solver options for the rollout's control
    period (see :func:`reference_model`); returns the physics steps per control step."""
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
    return n_sub


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
    if fidelity == "same":
        model, n_sub = rollout.mj_model, rollout.n_substeps
    else:
        model, n_sub = reference_model(rollout)
    return replay_in_model(rollout, model, n_sub, x0, U)


def replay_in_model(rollout: Rollout, model: mujoco.MjModel, n_sub: int, x0, U) -> np.ndarray:
    """:func:`replay_in_mujoco` in a given ``model`` (e.g. the rollout's with some solver options changed,
    ``benchmarks/solver_gap.py``), each control step held for ``n_sub`` physics steps."""
    x0 = np.asarray(x0, dtype=np.float64)
    U = np.asarray(U, dtype=np.float64)
    batch, unbatched = check_inputs(x0, U)
    x0b = np.broadcast_to(x0, (batch, STATE_DIM))
    Ub = np.broadcast_to(U, (batch, *U.shape[-2:]))
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
