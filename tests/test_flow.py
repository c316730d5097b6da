"""The flow's pieces: source noise anchored on x0, the straight path, time distributions, weights (per step
and the trunk's window means), chained windows re-anchored where the rollout arrived, and the Euler
integrator."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynaflow.data.quat import qmul, qrotate, qyaw
from dynaflow.flow import (
    ease_in,
    flow_matching_loss,
    integrate,
    interpolate,
    loss_weights,
    reanchor,
    sample_time,
    source_sample,
    state_weights,
    weighted_state_error,
)
from dynaflow.robots.go2 import ANGVEL, LINVEL, STATE_GROUPS


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


def test_integrate_lands_on_the_prediction():
    """Euler steps of (Z1_hat - Z)/(1 - t) reach the endpoint prediction exactly, whatever the step count:
    a constant prediction is reached from any start, and the aux of the last step is returned."""
    target = jnp.full((2, 3), 4.0)

    def predict(Z, t):
        return target, t

    for steps in (1, 2, 5):
        Z_hat, t_last = integrate(predict, jnp.zeros((2, 3)), steps)
        np.testing.assert_allclose(Z_hat, target)
        assert float(t_last) == pytest.approx(1.0 - 1.0 / steps)
    with pytest.raises(ValueError, match="ode_steps must be >= 1"):
        integrate(predict, jnp.zeros((2, 3)), 0)


def _windows(rng, batch=3, steps=9):
    """Random state windows with unit quaternions (a tilted, turned trunk)."""
    X = rng.normal(size=(batch, steps, 37))
    q = rng.normal(size=(batch, steps, 4))
    X[..., 3:7] = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return X


def test_window_rule_compares_trunk_velocities_by_their_mean():
    """``trunk="window"`` moves the trunk's velocities from the per-step weights to the window-mean
    weights: an oscillation about the right mean costs nothing there, a wrong mean costs what a constant
    error of that size costs per step; other groups are unchanged."""
    H = 8
    w = loss_weights(H, {"joint_pos": 2.0}, "window")
    assert w["step"].shape == (H + 1, 37) and w["window"].shape == (37,)
    assert np.all(w["step"][:, LINVEL] == 0) and np.all(w["window"][ANGVEL] == 1) and w["step"][1, 7] == 2
    assert np.array_equal(loss_weights(H)["step"], state_weights(H)) and not loss_weights(H)["window"].any()
    with pytest.raises(ValueError, match="trunk loss"):
        loss_weights(H, trunk="steps")
    X1 = np.zeros((1, H + 1, 37), np.float32)
    std = np.ones(37, np.float32)
    wobble = X1.copy()
    wobble[0, 1:, 21] = np.tile([0.3, -0.3], H // 2)  # vertical velocity oscillating about 0
    per_step, _ = weighted_state_error(jnp.asarray(wobble), X1, std, loss_weights(H, trunk="step"))
    window, _ = weighted_state_error(jnp.asarray(wobble), X1, std, loss_weights(H, trunk="window"))
    assert float(per_step) > 0 and float(window) == pytest.approx(0.0, abs=1e-7)
    offset = X1.copy()
    offset[0, 1:, 21] = 0.3  # a constant error: the same cost under both rules
    a, _ = weighted_state_error(jnp.asarray(offset), X1, std, loss_weights(H, trunk="step"))
    b, _ = weighted_state_error(jnp.asarray(offset), X1, std, loss_weights(H, trunk="window"))
    assert float(a) == pytest.approx(float(b), rel=1e-5)


def test_reanchor_moves_a_window_to_a_start_state():
    """A window moved to start where another state is keeps its shape: positions relative to the start
    and velocities turned by the heading difference, joints, heights and body-frame rates untouched, and
    row 0 becomes the start state itself. Moving a window to its own first state changes nothing."""
    rng = np.random.default_rng(0)
    X = _windows(rng)
    Xj = jnp.asarray(X)
    np.testing.assert_allclose(reanchor(Xj, Xj[:, 0]), X, atol=1e-5)
    # the same window, turned by yaw d about the vertical and moved by (dx, dy): reanchor undoes it
    d = rng.uniform(-3, 3, size=3)
    qz = qyaw(d)[:, None]
    Y = X.copy()
    Y[..., 3:7] = qmul(np.broadcast_to(qz, X[..., 3:7].shape), X[..., 3:7])
    rot = np.broadcast_to(qz, X[..., 3:7].shape)
    Y[..., 0:3] = qrotate(rot, X[..., 0:3]) + np.array([1.0, -2.0, 0.0])
    Y[..., LINVEL] = qrotate(rot, X[..., LINVEL])
    back = np.asarray(reanchor(jnp.asarray(Y), Xj[:, 0]))
    np.testing.assert_allclose(back[:, 1:], X[:, 1:], atol=1e-5)
    np.testing.assert_allclose(back[:, 0], X[:, 0])
    start = jnp.asarray(_windows(rng, steps=1)[:, 0])
    moved = np.asarray(reanchor(Xj, start))
    np.testing.assert_allclose(moved[:, 0], start, atol=1e-6)
    for group in ("joint_pos", "base_angvel", "joint_vel"):
        np.testing.assert_allclose(
            moved[:, 1:, STATE_GROUPS[group]], X[:, 1:, STATE_GROUPS[group]], atol=1e-6
        )
    np.testing.assert_allclose(moved[:, 1:, 2], X[:, 1:, 2], atol=1e-6)
    np.testing.assert_allclose(  # the path's length and the speeds are kept
        np.linalg.norm(np.diff(moved[:, 1:, :2], axis=1), axis=-1),
        np.linalg.norm(np.diff(X[:, 1:, :2], axis=1), axis=-1),
        atol=1e-5,
    )


def test_chained_windows_start_where_the_rollout_arrived():
    """On K·H + 1 states the loss is the mean over K windows, the second starting at the first rollout's
    last state with the demonstration re-anchored there (a stand-in Φ that drifts 0.1 m in x per step).
    One window of H + 1 states is the single-window loss."""
    H, B = 4, 2

    def rollout(x0, U):
        steps = jnp.arange(1, U.shape[1] + 1, dtype=x0.dtype)[None, :, None]
        return jnp.concatenate([x0[:, None], x0[:, None] + steps * jnp.eye(37)[0] * 0.1], axis=1)

    def apply_fn(params, Xt, t, cond, train=True, rngs=None):
        return jnp.zeros((Xt.shape[0], Xt.shape[1] - 1, 12))

    X = jnp.asarray(_windows(np.random.default_rng(1), B, 2 * H + 1), jnp.float32)
    params = {"normalizer": {"std": jnp.ones(37), "sigma": jnp.float32(1.0)}}
    w = loss_weights(H, trunk="window")
    key = jax.random.key(0)
    one, _ = flow_matching_loss(apply_fn, params, rollout, X[:, : H + 1], None, key, w)
    both, aux = flow_matching_loss(apply_fn, params, rollout, X, None, key, w)
    assert set(aux["per_group"]) == set(STATE_GROUPS)
    end = rollout(X[:, 0], jnp.zeros((B, H, 12)))[:, -1]  # where window 1 arrived: 0.4 m further in x
    second = weighted_state_error(
        rollout(end, jnp.zeros((B, H, 12))), reanchor(X[:, H:], end), jnp.ones(37), w
    )[0]
    assert float(both) == pytest.approx((float(one) + float(second)) / 2, rel=1e-4)
    assert float(second) != pytest.approx(float(one), rel=1e-2)
    # starts from rest: every sample (fraction 1) starts its first window at the standing state
    rest = jnp.asarray(_windows(np.random.default_rng(2), 1, 1)[0, 0], jnp.float32)
    at_rest = {**w, "rest": rest, "rest_fraction": np.float32(1.0)}
    got, _ = flow_matching_loss(apply_fn, params, rollout, X[:, : H + 1], None, key, at_rest)
    x_rest = jnp.broadcast_to(rest, (B, 37))
    want = weighted_state_error(
        rollout(x_rest, jnp.zeros((B, H, 12))), reanchor(X[:, : H + 1], x_rest), jnp.ones(37), w
    )[0]
    assert float(got) == pytest.approx(float(want), rel=1e-4)
    never, _ = flow_matching_loss(apply_fn, params, rollout, X, None, key, {**at_rest, "rest_fraction": 0.0})
    assert float(never) == pytest.approx(float(both), rel=1e-5)
    # eased in over 3 steps: the rest samples' targets are ease_in of the moved demonstration, with
    # the ramp running on across the chained windows (window 2 starts at step H = 4 > 3: fully in)
    eased = {**at_rest, "ease_steps": np.float32(3.0)}
    got, _ = flow_matching_loss(apply_fn, params, rollout, X, None, key, eased)
    s = jnp.broadcast_to(jnp.clip(jnp.arange(H + 1) / 3.0, 0, 1), (B, H + 1))
    first = weighted_state_error(
        rollout(x_rest, jnp.zeros((B, H, 12))), ease_in(reanchor(X[:, : H + 1], x_rest), s), jnp.ones(37), w
    )[0]
    end = rollout(x_rest, jnp.zeros((B, H, 12)))[:, -1]
    second = weighted_state_error(
        rollout(end, jnp.zeros((B, H, 12))), reanchor(X[:, H:], end), jnp.ones(37), w
    )[0]
    assert float(got) == pytest.approx((float(first) + float(second)) / 2, rel=1e-4)
    plain, _ = flow_matching_loss(apply_fn, params, rollout, X, None, key, {**eased, "ease_steps": 0.0})
    assert float(plain) == pytest.approx(
        float(flow_matching_loss(apply_fn, params, rollout, X, None, key, at_rest)[0]), rel=1e-6
    )
    assert float(got) != pytest.approx(float(plain), rel=1e-3)
    with pytest.raises(ValueError, match="K·4 \\+ 1"):
        flow_matching_loss(apply_fn, params, rollout, X[:, :7], None, key, w)


def test_ease_in_blends_from_the_start_to_the_demonstration():
    """Eased in, a window keeps row 0 (where the rollout starts), reaches the demonstration's height,
    joints and velocities once s = 1, is s of the way there before, and advances its planar position by
    s times each step of the demonstration (so position and velocity agree); s = 1 changes nothing."""
    rng = np.random.default_rng(3)
    T = 9
    X = _windows(rng, 2, T)
    X[:, 1:, 19] = 1.5  # the demonstration runs at 1.5 m/s in x, 8 cm higher than the start
    X[:, 1:, 2] = X[:, 0:1, 2] + 0.08
    X[:, :, 0] = X[:, 0:1, 0] + 1.5 * 0.02 * np.arange(T)
    Xj = jnp.asarray(X)
    np.testing.assert_allclose(ease_in(Xj, jnp.ones((2, T))), X, atol=1e-6)
    s = jnp.broadcast_to(jnp.clip(jnp.arange(T) / 4.0, 0, 1), (2, T))
    Y = np.asarray(ease_in(Xj, s))
    np.testing.assert_allclose(Y[:, 0], X[:, 0])
    np.testing.assert_allclose(Y[:, 4:, 7:], X[:, 4:, 7:], atol=1e-5)  # joints and velocities: all in
    np.testing.assert_allclose(Y[:, 2, 2], X[:, 0, 2] + 0.5 * 0.08, atol=1e-6)  # half way up at s = 0.5
    np.testing.assert_allclose(Y[:, 2, 19], 0.75, atol=1e-6)
    np.testing.assert_allclose(np.diff(Y[:, :, 0], axis=1), 1.5 * 0.02 * np.asarray(s)[:, 1:], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(Y[..., 3:7], axis=-1), 1.0, atol=1e-5)
