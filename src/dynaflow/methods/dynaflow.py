"""DynaFlow (the paper's method): noisy states in, an action sequence out, the loss on its rollout.

D_θ(X_t, c, t) = U (H bounded actions, ``max_action · tanh``); training rolls U out through Φ from x0
and compares X̂1 = Φ(x0, U) with the demonstration (Eq. 4, :func:`dynaflow.flow.flow_matching_loss`).
Sampling integrates the flow with X̂1 = Φ(x0, D_θ(X_t, c, t)) as the endpoint prediction, so every
sample is a rollout of its own actions. Needs states only.
"""

from __future__ import annotations

from dataclasses import dataclass

import flax.linen as nn
import jax.numpy as jnp

from dynaflow.flow import flow_matching_loss, integrate, sampling_inputs, source_sample
from dynaflow.methods.base import Method
from dynaflow.model import normalise, trunk


def action_output(net, h):
    """Actions ``max_action · tanh(·)`` from the backbone's tokens 1..H (zero-initialised: an untrained
    model commands the default pose)."""
    u = nn.Dense(net.action_dim, kernel_init=nn.initializers.zeros, name="final")(h)
    return net.max_action * jnp.tanh(u)


@dataclass(frozen=True, repr=False)
class DynaFlow(Method):
    name = "dynaflow"
    summary = "actions from noisy states, trained on their rollout through the simulator (the paper)"
    states_are_rollout = True

    def forward(self, net, x_t, t, cond, train, mean, std, **inputs):
        h = nn.Dense(net.d_model, name="state_embed")(normalise(x_t, mean, std))
        return action_output(net, trunk(net, h, t, cond, train))

    def loss(self, apply_fn, variables, rollout, X1, cond, rng, weights, time_distribution, train, A1=None):
        return flow_matching_loss(
            apply_fn, variables, rollout, X1, cond, rng, weights, time_distribution, train
        )

    def sample(self, apply_fn, rollout, horizon, ode_steps):
        def run(params, x0, cond, rng, sigma):
            std, sigma, cond = sampling_inputs(params, x0, cond, sigma)
            batch = x0.shape[0]

            def predict(X, t):
                U = apply_fn(params, X, jnp.full((batch,), t), cond)
                return rollout(x0, U), U

            return integrate(predict, source_sample(rng, x0, horizon, std, sigma), ode_steps)

        return run
