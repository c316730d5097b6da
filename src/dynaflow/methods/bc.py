"""``bc``: flow matching of action chunks conditioned on x0 and c (behaviour cloning with action labels).

Token 0 is the state x0, tokens 1..H the noisy actions U_t = t·A1 + (1 − t)·U0, U0 ~ N(0, σ²I); the
network predicts the clean actions. Sampled actions are rolled out through Φ, so its states are a rollout
of its actions; unlike DynaFlow it needs recorded actions to learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp

from dynaflow.flow import integrate, interpolate, sample_time, sampling_inputs, stored_std_sigma
from dynaflow.methods.base import Method
from dynaflow.methods.dynaflow import action_output
from dynaflow.model import normalise, trunk


@dataclass(frozen=True, repr=False)
class BC(Method):
    name = "bc"
    summary = "flow matching of action chunks on recorded actions (behaviour cloning)"
    needs_actions = True
    states_are_rollout = True

    def forward(self, net, x_t, t, cond, train, mean, std, u_t=None, **inputs):
        batch, n_tok = x_t.shape[:2]
        if u_t is None:
            u_t = jnp.zeros((batch, n_tok - 1, net.action_dim), jnp.float32)
        if u_t.shape != (batch, n_tok - 1, net.action_dim):
            raise ValueError(
                f"u_t: expected shape ({batch}, {n_tok - 1}, {net.action_dim}), got {tuple(u_t.shape)}"
            )
        x = normalise(x_t, mean, std)
        tokens = jnp.concatenate(
            [
                nn.Dense(net.d_model, name="state_embed")(x[:, :1]),
                nn.Dense(net.d_model, name="action_embed")(u_t.astype(jnp.float32)),
            ],
            axis=1,
        )
        return action_output(net, trunk(net, tokens, t, cond, train))

    def loss(self, apply_fn, variables, rollout, X1, cond, rng, weights, time_distribution, train, A1=None):
        _, sigma = stored_std_sigma(variables)
        k_t, k_u, k_drop = jax.random.split(rng, 3)
        t = sample_time(k_t, X1.shape[0], time_distribution)
        U0 = sigma * jax.random.normal(k_u, A1.shape, A1.dtype)
        x0_rows = jnp.broadcast_to(X1[:, :1], X1.shape)  # only row 0 is read: no future state leaks in
        rngs = {"dropout": k_drop} if train else None
        U_hat = apply_fn(variables, x0_rows, t, cond, train=train, rngs=rngs, u_t=interpolate(U0, A1, t))
        mse = jnp.mean(jnp.square(U_hat - A1))
        return mse, {"per_group": {"actions": mse}}

    def sample(self, apply_fn, rollout, horizon, ode_steps):
        def run(params, x0, cond, rng, sigma):
            _, sigma, cond = sampling_inputs(params, x0, cond, sigma)
            batch = x0.shape[0]
            x0_rows = jnp.broadcast_to(x0[:, None], (batch, horizon + 1, x0.shape[-1]))
            Z = sigma * jax.random.normal(rng, (batch, horizon, rollout.mj_model.nu), x0.dtype)

            def predict(U, t):
                return apply_fn(params, x0_rows, jnp.full((batch,), t), cond, u_t=U), None

            U, _ = integrate(predict, Z, ode_steps)
            return rollout(x0, U), U

        return run
