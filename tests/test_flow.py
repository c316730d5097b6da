"""The DiT action predictor, the flow pieces, and sampling (shapes, admissibility, policy)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynaflow.flow import interpolate, sample_time, sample_trajectory, source_sample, state_weights
from dynaflow.model import create_action_predictor
from dynaflow.physics import replay_in_mujoco


@pytest.fixture(scope="module")
def tiny_model():
    return create_action_predictor(d_model=32, n_heads=2, depth=1, cond_dim=4, horizon=4, dropout=0.1)


def test_model_shapes_bounds_and_zero_init(tiny_model):
    model, params = tiny_model
    x = jnp.zeros((3, 7, 37)).at[..., 3].set(1.0)
    u = model.apply(params, x, jnp.array([0.0, 0.5, 0.9]), jnp.ones((3, 4)))
    assert u.shape == (3, 6, 12)  # any horizon: 7 states -> 6 actions
    assert float(jnp.abs(u).max()) == 0.0  # adaLN-Zero: a fresh model commands the default pose
    p2 = jax.tree.map(lambda a: a + 0.3, params)
    u = model.apply(p2, x, 0.5, jnp.ones((3, 4)), train=True, rngs={"dropout": jax.random.PRNGKey(0)})
    assert float(jnp.abs(u).max()) <= model.max_action
    with pytest.raises(ValueError, match=r"cond: this model was built with cond_dim=4, got None"):
        model.apply(params, x, 0.5, None)
    with pytest.raises(ValueError, match=r"x_t: expected shape \(B, H\+1, 37\)"):
        model.apply(params, x[..., :30], 0.5, jnp.ones((3, 4)))


def test_flow_pieces():
    key = jax.random.PRNGKey(0)
    x0 = jnp.arange(37.0)[None].repeat(2, 0)
    X0 = source_sample(key, x0, 5, jnp.ones(37), 0.5)
    assert (
        X0.shape == (2, 6, 37)
        and jnp.array_equal(X0[:, 0], x0)
        and float(jnp.std(X0[:, 1:] - x0[:, None])) > 0.3
    )
    X1 = X0 + 1.0
    np.testing.assert_allclose(interpolate(X0, X1, jnp.array([0.0, 1.0])), jnp.stack([X0[0], X1[1]]))
    t = sample_time(key, 1000, "logit_normal")
    assert 0 < float(t.min()) and float(t.max()) < 1 and abs(float(t.mean()) - 0.5) < 0.05
    W = state_weights(4, {"joint_pos": 2.0})
    assert W.shape == (5, 37) and W[0].sum() == 0 and W[1, 7] == 2.0 and W[1, 0] == 1.0
    with pytest.raises(ValueError, match="unknown state group"):
        state_weights(4, {"joints": 1.0})


@pytest.fixture(scope="module")
def policy(trained_run, rollout):
    from dynaflow.policy import DynaFlowPolicy

    return DynaFlowPolicy.from_checkpoint(trained_run.run_dir / "best", rollout=rollout)


def test_sampling_accepts_every_x0_shape(policy):
    x0 = policy.rollout.home_state().astype(np.float32)
    cond = np.array([0.3, 0.5, 0.0, 1.0], np.float32)
    B = 4
    shapes = {
        "(37,)": (x0, cond, 1),
        "(B, 37)": (np.tile(x0, (B, 1)), np.tile(cond, (B, 1)), B),
        "(B, 1, 37)": (np.tile(x0, (B, 1, 1)), cond[None], B),
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
        sample_trajectory(policy.model.apply, policy.params, policy.rollout, np.zeros((2, 2, 37)), cond=cond)


def test_samples_are_admissible_and_multi_step_works(policy, synthetic_npz):
    """SAE: the generated states are MuJoCo C's replay of the generated actions (<= 1e-3)."""
    from dynaflow.data import load_dataset

    ds = load_dataset(synthetic_npz)
    x0, cond = ds.states[:4, 10], ds.conditionings[:4, 10]
    for steps in (1, 3):
        X, U = policy.sample(x0, cond, rng=7, ode_steps=steps)
        Xc = replay_in_mujoco(policy.rollout, X[:, 0], U, "same")
        assert np.abs(X - Xc).max() <= 1e-3, steps
        assert np.abs(U).max() > 0.05  # a trained model moves
    X2, U2 = policy.sample(x0, cond, rng=7, ode_steps=3)
    np.testing.assert_array_equal(U, U2)  # deterministic for a seed
    with pytest.raises(ValueError, match="cond: this policy was trained with cond_dim=4"):
        policy.sample(x0)


def test_long_horizon_chaining_is_one_rollout(policy, synthetic_npz):
    """Chained windows are a single admissible motion: MuJoCo C replays the whole action sequence into it."""
    from dynaflow.data import load_dataset
    from dynaflow.evaluate import long_horizon_metrics

    ds = load_dataset(synthetic_npz)
    x0, cond = ds.states[:4, 10], ds.conditionings[:4, 10]
    X, U = policy.generate_open_loop(x0, cond, seconds=1.0)
    assert X.shape == (4, 51, 37) and U.shape == (4, 50, 12)
    np.testing.assert_allclose(X[:, 0], x0, atol=1e-6)
    replay = replay_in_mujoco(policy.rollout, X[:, 0], U, "same")
    assert np.abs(replay[..., :19] - X[..., :19]).max() < 1e-2  # 50 steps of float32 vs float64 chaos
    m, plots = long_horizon_metrics(policy, ds, np.arange(4), seconds=1.0, per_group=4)
    assert m["long_same_success"] == 1.0 and m["long_same_drift_mean"] < 1e-2
    assert plots["long_drift"].shape == (51,) and plots["contacts"].shape[1] == 4
