"""Synthetic conditioned demonstrations: periodic joint motions in MuJoCo C, for tests and the quickstart.

Each episode draws an amplitude, a frequency f and a phase offset and drives all twelve joints with
``u_t = amplitude · sin(θ_t + φ_leg)``, ``θ_t = 2π f t + offset`` (legs in trot pairs, φ = 0 or π), plus a
little smooth noise, through the project's own control law, starting from the settled home pose. The
per-step conditioning is ``c_t = (amplitude, f / 3 Hz, sin θ_t, cos θ_t)``: commands plus a gait-phase
clock, as locomotion controllers use. The states are what MuJoCo C produces for those actions, so the
data is admissible in the project's model, and the motion is a learnable function of (x0, c).
"""

from __future__ import annotations

import numpy as np

from dynaflow.physics import Rollout, random_smooth_actions, replay_in_mujoco
from dynaflow.robots.go2 import ACTION_DIM

COND_NAMES = ("amplitude", "frequency / 3 Hz", "sin phase", "cos phase")


def settled_state(rollout: Rollout, seconds: float = 0.5) -> np.ndarray:
    """The home pose after ``seconds`` of zero action in MuJoCo C (the keyframe starts 1.8 cm deep)."""
    steps = max(1, int(round(seconds / rollout.ctrl_dt)))
    X = replay_in_mujoco(rollout, rollout.home_state(), np.zeros((steps, ACTION_DIM)))
    x = X[-1].copy()
    x[0:2] = 0.0
    return x


def synthetic_demos(
    rollout: Rollout,
    episodes: int = 16,
    steps: int = 50,
    seed: int = 0,
    noise: float = 0.02,
) -> dict[str, np.ndarray]:
    """``states (N, T, 37)``, ``actions (N, T, 12)`` and ``conditionings (N, T, 4)``, T = ``steps`` + 1.

    The action at step ``T - 1`` (after the last state) is repeated from ``T - 2`` so every key has T rows."""
    rng = np.random.default_rng(seed)
    x0 = settled_state(rollout)
    amp = rng.uniform(0.1, 0.6, episodes)
    freq = rng.uniform(1.0, 3.0, episodes)
    offset = rng.uniform(-1.0, 1.0, episodes)
    leg_phase = np.repeat(np.array([0.0, np.pi, np.pi, 0.0]), 3)  # FL, FR, RL, RR: trot pairs
    t_all = np.arange(steps + 1) * rollout.ctrl_dt
    theta = 2 * np.pi * freq[:, None] * t_all[None, :] + np.pi * offset[:, None]  # (N, T)
    U = amp[:, None, None] * np.sin(theta[:, :steps, None] + leg_phase)
    U = U + random_smooth_actions(rng, episodes, steps, noise, rollout.ctrl_dt)
    X = replay_in_mujoco(rollout, x0, U)
    cond = np.stack(
        [
            np.repeat(amp[:, None], steps + 1, 1),
            np.repeat(freq[:, None] / 3.0, steps + 1, 1),
            np.sin(theta),
            np.cos(theta),
        ],
        axis=-1,
    )
    actions = np.concatenate([U, U[:, -1:]], axis=1)
    return {
        "states": X.astype(np.float32),
        "actions": actions.astype(np.float32),
        "conditionings": cond.astype(np.float32),
    }
