"""Sampling a trained model: every x0 shape, admissibility (the states are a rollout of the actions),
multi-step ODE, determinism, bad input named, and long-horizon chaining as one rollout."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from dynaflow.physics import replay_in_mujoco
from dynaflow.sampling import sample_trajectory

TROT = np.array([0.3, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0], np.float32)  # (vx, vy, yaw rate) + gait one-hot


def test_sampling_accepts_every_x0_shape(policy):
    x0 = policy.rollout.home_state().astype(np.float32)
    B = 4
    shapes = {
        "(37,)": (x0, TROT, 1),
        "(B, 37)": (np.tile(x0, (B, 1)), np.tile(TROT, (B, 1)), B),
        "(B, 1, 37)": (np.tile(x0, (B, 1, 1)), TROT[None], B),
    }
    for name, (x, c, b) in shapes.items():
        X, U = sample_trajectory(
            policy.model.apply, policy.params, policy.rollout, x, horizon=8, cond=c, rng=jax.random.PRNGKey(1)
        )
        assert X.shape == (b, 9, 37) and U.shape == (b, 8, 12), name
        np.testing.assert_allclose(np.asarray(X[:, 0, 7:]), np.broadcast_to(x0[7:], (b, 30)), atol=1e-6)
    with pytest.raises(
        ValueError, match=r"x0: expected shape \(B, 37\), \(B, 1, 37\) or \(37,\), got \(2, 2, 37\)"
    ):
        sample_trajectory(policy.model.apply, policy.params, policy.rollout, np.zeros((2, 2, 37)), cond=TROT)


def test_bad_sampling_input_is_named(policy):
    x0 = policy.rollout.home_state().astype(np.float32)
    bad = x0.copy()
    bad[3:7] = 0.0
    with pytest.raises(ValueError, match=r"x0: initial state 0 has a zero base quaternion"):
        policy.sample(bad, TROT)
    bad = x0.copy()
    bad[20] = np.nan
    with pytest.raises(ValueError, match=r"x0: contains NaN or inf \(first at index \(0, 20\)"):
        policy.sample(bad, TROT)
    with pytest.raises(ValueError, match=r"cond: contains NaN or inf"):
        policy.sample(x0, np.full(7, np.nan, np.float32))
    with pytest.raises(ValueError, match="horizon: expected a positive integer, got 0"):
        sample_trajectory(policy.model.apply, policy.params, policy.rollout, x0, horizon=0, cond=TROT)


def test_samples_are_admissible_and_multi_step_works(policy, trot_npz):
    """SAE: the generated states are MuJoCo C's replay of the generated actions (<= 1e-3)."""
    from dynaflow.data import load_dataset

    ds = load_dataset(trot_npz)
    x0, cond = ds.states[:4, 10], ds.conditionings[:4, 10]
    for steps in (1, 3):
        X, U = policy.sample(x0, cond, rng=7, ode_steps=steps)
        Xc = replay_in_mujoco(policy.rollout, X[:, 0], U, "same")
        assert np.abs(X - Xc).max() <= 1e-3, steps
        assert np.abs(U).max() > 0.05  # a trained model moves
    X2, U2 = policy.sample(x0, cond, rng=7, ode_steps=3)
    np.testing.assert_array_equal(U, U2)  # deterministic for a seed
    X3, U3 = policy.sample(x0[:3], cond[:3], rng=7, ode_steps=3)  # padded to 8 inside, as 4 is: same noise
    np.testing.assert_array_equal(U3, U2[:3])
    with pytest.raises(ValueError, match="cond: this policy was trained with cond_dim=7"):
        policy.sample(x0)


def test_long_horizon_chaining_is_one_rollout(policy, trot_npz):
    """Chained windows are a single admissible motion: MuJoCo C replays the whole action sequence into it."""
    from dynaflow.data import load_dataset
    from dynaflow.evaluate import long_horizon_metrics

    ds = load_dataset(trot_npz)
    x0, cond = ds.states[:4, 10], ds.conditionings[:4, 10]
    X, U = policy.generate_open_loop(x0, cond, seconds=1.0)
    assert X.shape == (4, 51, 37) and U.shape == (4, 50, 12)
    np.testing.assert_allclose(X[:, 0], x0, atol=1e-6)
    replay = replay_in_mujoco(policy.rollout, X[:, 0], U, "same")
    assert np.abs(replay[..., :19] - X[..., :19]).max() < 1e-2  # 50 steps of float32 vs float64 chaos
    m, plots = long_horizon_metrics(policy, ds, np.arange(4), seconds=1.0, per_group=4)
    # what executes is what was generated: a run is upright in the replay exactly when it is upright as
    # generated, and the replay ends where the generation ends
    assert m["long_same_success"] == m["long_generated_upright"] and m["long_same_drift_mean"] < 1e-2
    assert plots["long_drift"].shape == (51,) and plots["contacts"].shape[1] == 4
