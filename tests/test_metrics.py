"""Evaluation metrics on hand-made cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from dynaflow.data.sources.gaits import SPECS, simulate_episode, start_state
from dynaflow.evaluate import metrics as M


@pytest.fixture(scope="module")
def episodes(rollout):
    """Two true trot episodes (float64 MuJoCo C simulation) of 2 s with known commands."""
    x0 = start_state(rollout)
    cmds = np.array([[0.4, 0.0, 0.0], [0.0, 0.1, 0.3]])
    runs = [simulate_episode(rollout, "trot", c, 100, x0) for c in cmds]
    X = np.stack([r[0] for r in runs])
    U = np.stack([r[1] for r in runs])
    return X, U, cmds


def test_sae_is_zero_on_true_demonstrations_and_large_with_a_teleport(rollout, episodes):
    X, U, _ = episodes
    assert M.sae_rollout(rollout, X, U)["sae_rollout_max"] < 1e-9
    assert M.sae_one_step(rollout, X, U)["sae_one_step_max"] < 1e-9
    Xt = X.copy()
    Xt[:, 50:, 0] += 0.5  # the trunk jumps 0.5 m forward at step 50 and carries on from there
    one = M.sae_one_step(rollout, Xt, U)
    assert one["sae_one_step_max"] == pytest.approx(0.5, abs=0.05)
    assert one["sae_one_step_mean"] < 0.01  # one bad step in a hundred
    assert M.sae_rollout(rollout, Xt, U)["sae_rollout_max"] >= 0.45  # every later state is off


def test_executability_standing_vs_fallen(rollout):
    x0 = start_state(rollout)
    X = M.replay_in_mujoco(rollout, x0, np.zeros((50, 12)))[None]
    ok = M.executability(rollout, X, np.zeros((1, 50, 12)), fidelity="same")
    assert ok["exec_same_success"] == 1.0 and ok["exec_same_drift_max"] < 1e-9
    fallen = x0.copy()
    fallen[2] = 0.3
    fallen[3:7] = [0.0, 1.0, 0.0, 0.0]  # upside down
    Xf = np.repeat(fallen[None, None], 51, axis=1)
    assert M.executability(rollout, Xf, np.zeros((1, 50, 12)), fidelity="same")["exec_same_success"] == 0.0


def test_command_tracking(rollout, episodes):
    X, _, cmds = episodes
    good = M.command_tracking(X[:, 50:], cmds, rollout.ctrl_dt)
    assert good["track_vx_err"] < 0.15 and good["track_vy_err"] < 0.1
    bad = M.command_tracking(X[:, 50:], cmds + np.array([0.5, 0.0, 0.0]), rollout.ctrl_dt)
    assert bad["track_vx_err"] >= 0.5 - good["track_vx_err"]


def test_contact_phases_and_gait_accuracy(rollout, episodes):
    t = np.arange(200) * 0.02
    period = 0.4
    known = np.array([0.0, 0.25, 0.5, 0.75])
    signal = (((t[:, None] / period) - known) % 1.0) < 0.5  # each leg lags FL by `known` cycles
    np.testing.assert_allclose(M.contact_phases(signal[None], period, 0.02)[0], known, atol=0.03)
    X, _, _ = episodes
    phases = M.contact_phases(
        M.contacts(M.foot_positions(rollout.mj_model, X[:, 50:])), SPECS["trot"].period, rollout.ctrl_dt
    )
    assert M.gait_accuracy(phases, SPECS["trot"].offsets) == 1.0
    assert M.gait_accuracy(phases, SPECS["pace"].offsets) == 0.0


def test_mmd_and_diversity():
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(200, 5)), rng.normal(size=(200, 5))
    assert abs(M.mmd_rbf(A, B)) < 0.02
    assert M.mmd_rbf(A, B + 2.0) > 0.3
    assert M.diversity(np.ones((5, 3))) == 0.0
    assert M.diversity(np.array([[0.0], [3.0]])) == 3.0


def test_plausibility(rollout, episodes):
    X, _, _ = episodes
    clean = M.plausibility(rollout.mj_model, X, rollout.ctrl_dt)
    # soft foot contacts: ~1.5 mm standing, up to ~1.4 cm at trot touchdowns in this model
    assert clean["foot_penetration_max"] < 0.02 and clean["joint_limit_violation_max"] == 0.0
    assert (
        clean["quat_norm_error_max"] < 1e-9 and clean["foot_sliding_mean"] < 0.2
    )  # this trot slips a little
    glide = X.copy()
    glide[:, :, 0] += 0.5 * rollout.ctrl_dt * np.arange(X.shape[1])  # the whole robot dragged at 0.5 m/s
    assert M.plausibility(rollout.mj_model, glide, rollout.ctrl_dt)["foot_sliding_mean"] > 0.35
    bad = X.copy()
    bad[:, :, 2] -= 0.05  # trunk (and feet) 5 cm lower: feet sink into the floor
    bad[0, 3, 9] = -3.0  # FL knee beyond its range (-2.7227)
    bad[1, 4, 3:7] *= 1.1
    worse = M.plausibility(rollout.mj_model, bad, rollout.ctrl_dt)
    assert worse["foot_penetration_max"] > clean["foot_penetration_max"] + 0.035
    assert worse["joint_limit_violation_max"] == pytest.approx(3.0 - 2.7227, abs=1e-3)
    assert worse["quat_norm_error_max"] == pytest.approx(0.1, abs=1e-6)


def test_best_action_sae_explains_true_transitions_and_not_a_teleport(rollout, episodes):
    """The best-action one-step SAE scores states alone: ~0 on a true demonstration (started from its own
    actions), large where no action can explain a transition (a 0.5 m jump of the trunk)."""
    X, U, _ = episodes
    X, U = X[:, 40:61], U[:, 40:60]  # 2 x 20 transitions through foot contacts
    std = np.ones(37)
    true, _ = M.sae_best_action(rollout, X, std, iters=20, U0=U)
    assert true["sae_best_action_max"] < 1e-3
    zero, _ = M.sae_best_action(rollout, X, std, iters=20)  # from zero actions: searched
    unsearched = M.error_stats(M.one_step_errors(rollout, X, np.zeros_like(U)), "x")["x_mean"]
    assert zero["sae_best_action_mean"] < 0.5 * unsearched
    Xt = X.copy()
    Xt[:, 10:, 0] += 0.5
    jump, errors = M.sae_best_action(rollout, Xt, std, iters=20, U0=U)
    assert jump["sae_best_action_max"] > 0.4 and errors[:, 9, 0].min() > 0.4
