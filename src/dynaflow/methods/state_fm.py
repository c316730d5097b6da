"""The states-only baselines, in the same harness as DynaFlow.

* ``state-fm`` — flow matching on states: D_θ(X_t, c, t) predicts the clean states X̂1 directly (same DiT,
  path and loss, no simulator). It has no actions, so nothing guarantees its states are reachable.
* ``state-fm-id`` — ``state-fm`` plus an inverse-dynamics MLP ``(x_k, x_{k+1}) -> a_k`` trained on recorded
  actions in the same step (Decision-Diffuser style); its actions are scored by replaying them.
"""

from __future__ import annotations

from dataclasses import dataclass

import flax.linen as nn
import jax.numpy as jnp

from dynaflow.flow import (
    integrate,
    noisy_states,
    sampling_inputs,
    source_sample,
    stored_std_sigma,
    weighted_state_error,
)
from dynaflow.methods.base import Method
from dynaflow.model import InverseDynamics, normalise, trunk


def state_output(net, h, x_t, mean, std):
    """Clean states in physical units from the backbone's tokens 1..H: x, y back relative to x0, and row 0
    is x0 itself."""
    z = nn.Dense(net.state_dim, kernel_init=nn.initializers.zeros, name="final")(h)
    X = z * std + mean
    X = X.at[..., 0:2].add(x_t[:, :1, 0:2].astype(jnp.float32))
    return jnp.concatenate([x_t[:, :1].astype(jnp.float32), X], axis=1)


@dataclass(frozen=True, repr=False)
class StateFM(Method):
    name = "state-fm"
    summary = "flow matching on states (no simulator, no actions)"
    has_actions = False

    def forward(self, net, x_t, t, cond, train, mean, std, **inputs):
        h = nn.Dense(net.d_model, name="state_embed")(normalise(x_t, mean, std))
        return state_output(net, trunk(net, h, t, cond, train), x_t, mean, std)

    def loss(self, apply_fn, variables, rollout, X1, cond, rng, weights, time_distribution, train, A1=None):
        std, _ = stored_std_sigma(variables)
        t, Xt, k_drop = noisy_states(variables, X1, rng, time_distribution)
        X_hat = apply_fn(variables, Xt, t, cond, train=train, rngs={"dropout": k_drop} if train else None)
        return weighted_state_error(X_hat, X1, std, weights)

    def sample(self, apply_fn, rollout, horizon, ode_steps):
        def run(params, x0, cond, rng, sigma):
            std, sigma, cond = sampling_inputs(params, x0, cond, sigma)
            batch = x0.shape[0]

            def predict(Z, t):
                return apply_fn(params, Z, jnp.full((batch,), t), cond), None

            X, _ = integrate(predict, source_sample(rng, x0, horizon, std, sigma), ode_steps)
            return X, self.actions(apply_fn, params, X, cond)

        return run

    def actions(self, apply_fn, params, X, cond):
        return None


@dataclass(frozen=True, repr=False)
class StateFMID(StateFM):
    name = "state-fm-id"
    summary = "state-fm plus an inverse-dynamics MLP trained on recorded actions"
    needs_actions = True
    has_actions = True

    def forward(self, net, x_t, t, cond, train, mean, std, id_states=None, **inputs):
        idm = InverseDynamics(net.action_dim, max_action=net.max_action, name="idm")
        if id_states is not None:  # the inverse-dynamics actions of a trajectory (B, T-1, action_dim)
            return idm(normalise(id_states, mean, std))
        if net.is_initializing():
            idm(normalise(x_t, mean, std))
        return super().forward(net, x_t, t, cond, train, mean, std)

    def loss(self, apply_fn, variables, rollout, X1, cond, rng, weights, time_distribution, train, A1=None):
        loss, aux = super().loss(
            apply_fn, variables, rollout, X1, cond, rng, weights, time_distribution, train
        )
        batch = X1.shape[0]
        A_hat = apply_fn(variables, X1, jnp.zeros((batch,)), cond, id_states=X1)
        id_mse = jnp.mean(jnp.square(A_hat - A1))
        aux["per_group"]["idm_actions"] = id_mse
        return loss + id_mse, aux

    def actions(self, apply_fn, params, X, cond):
        return apply_fn(params, X, jnp.zeros((X.shape[0],)), cond, id_states=X)
