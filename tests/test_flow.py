"""The flow's pieces: source noise anchored on x0, the straight path, time distributions, weights, and the
Euler integrator."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynaflow.flow import integrate, interpolate, sample_time, source_sample, state_weights


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
