"""The compiled update: AdamW on a warmup/cosine schedule, global-norm clipping, EMA, the non-finite guard.

The step is a pure function of a small :class:`TrainState` pytree (Brax style); ``jax.jit`` sits at the
edge. The run's numbers (learning rate, schedule lengths, decay, clipping, loss weights) are *arguments*
of the compiled step, not constants in it: one compiled step serves every run of the same model, method
and data shapes, however long and at whatever learning rate (and JAX's persistent cache recognises it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dynaflow.config import TrainConfig
from dynaflow.flow import loss_weights
from dynaflow.physics import Rollout
from dynaflow.physics.rollout import random_worlds


@flax.struct.dataclass
class TrainState:
    """The whole mutable state of a run; a pytree, replicated over devices."""

    step: jax.Array  # updates attempted (int32)
    params: dict  # trainable parameters (the "params" collection)
    ema: dict  # their exponential moving average
    opt_state: Any
    key: jax.Array  # the run's base PRNG key; step keys are fold_in(key, step)
    nonfinite: jax.Array  # consecutive non-finite updates
    skipped: jax.Array  # total skipped updates


# --------------------------------------------------------------------------------------------
# Optimiser: hyperparameters as arrays, so they are arguments of the compiled step


def hyperparameters(
    config: TrainConfig, total_steps: int, rest_state: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The step's runtime numbers: peak lr, warmup and decay lengths (updates), weight decay, clipping,
    EMA decay and the loss weights (:func:`~dynaflow.flow.loss_weights`; with ``--rest-starts``, also
    the standing state ``rest_state``, the fraction and ``--ease-in`` in steps)."""
    warmup = config.optim.warmup_steps
    if warmup is None:
        warmup = min(1000, max(1, total_steps // 20))
    warmup = max(0, min(warmup, total_steps - 1))
    f = np.float32
    weights = loss_weights(config.horizon, config.flow.weights, config.flow.trunk)
    if config.rest_starts > 0:
        if rest_state is None:
            raise ValueError("--rest-starts needs the standing state to start from (rest_state)")
        weights.update(
            rest=np.asarray(rest_state, f),
            rest_fraction=f(config.rest_starts),
            ease_steps=f(config.ease_in / config.sim.ctrl_dt),
        )
    return {
        "lr": f(config.optim.lr),
        "warmup": f(warmup),
        "decay_steps": f(max(total_steps, warmup + 1)),
        "weight_decay": f(config.optim.weight_decay),
        "grad_clip": f(config.optim.grad_clip),
        "ema_decay": f(config.optim.ema_decay),
        "weights": weights,
        "randomise": f(config.sim.randomise),
    }


def learning_rate(count, hyper, xp=jnp):
    """Linear warmup from 0 to ``lr`` over ``warmup`` updates, then cosine to 1 % of ``lr`` at
    ``decay_steps`` (NumPy with ``xp=np`` for logging; the same numbers as the compiled step)."""
    lr, warmup, decay = hyper["lr"], hyper["warmup"], hyper["decay_steps"]
    c = xp.asarray(count, xp.float32)
    warm = xp.where(warmup > 0, lr * xp.clip(c, 0, warmup) / xp.maximum(warmup, 1), lr)
    span = decay - warmup
    k = xp.clip(c - warmup, 0, span)
    decayed = lr * (0.99 * 0.5 * (1 + xp.cos(math.pi * k / span)) + 0.01)
    return xp.where(c < warmup, warm, decayed)


def make_optimizer(hyper: dict) -> optax.GradientTransformation:
    """AdamW on :func:`learning_rate`, after global-norm clipping (``hyper`` may hold traced arrays)."""
    return optax.chain(
        optax.clip_by_global_norm(hyper["grad_clip"]),
        optax.adamw(lambda count: learning_rate(count, hyper), weight_decay=hyper["weight_decay"]),
    )


_PLACEHOLDER = {k: np.float32(1.0) for k in ("lr", "warmup", "decay_steps", "weight_decay", "grad_clip")}


def init_opt_state(params) -> Any:
    """The optimiser state for ``params`` (its structure does not depend on the hyperparameters)."""
    return make_optimizer(_PLACEHOLDER).init(params)


# --------------------------------------------------------------------------------------------
# The step


def make_train_step(
    model, rollout: Rollout, time_distribution: str = "uniform", randomise: bool = False
) -> Callable:
    """``step(state, X1, cond, norm, hyper, A1=None) -> (state, metrics)``: one update, skipping any whose
    loss, gradient or resulting weights are not finite.

    ``norm`` is the model's ``normalizer`` collection and ``hyper`` the run's :func:`hyperparameters`: both
    arguments, so one compiled step serves every dataset and run length of the same shapes. ``A1`` are the
    windows' recorded actions, used only by the methods that learn from them. ``randomise``: each window
    rolls out in its own perturbed physics (:func:`~dynaflow.physics.rollout.random_worlds` at strength
    ``hyper["randomise"]``): domain randomisation."""
    method = model.method

    def step(state: TrainState, X1, cond, norm, hyper, A1=None):
        key = jax.random.fold_in(state.key, state.step)
        tx = make_optimizer(hyper)

        phi = rollout
        if randomise:
            worlds = random_worlds(jax.random.fold_in(key, 0x5EED), X1.shape[0], rollout, hyper["randomise"])

            def phi(x0, U):
                return rollout.rollout(x0, U, world=worlds)

        def loss_fn(params):
            variables = {"params": params, "normalizer": norm}
            return method.loss(
                model.apply, variables, phi, X1, cond, key, hyper["weights"], time_distribution, True, A1
            )

        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        gnorm = optax.tree_utils.tree_norm(grads)
        ok = jnp.isfinite(loss) & jnp.isfinite(gnorm)
        grads = jax.tree.map(lambda g: jnp.where(ok, g, 0.0), grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ok = ok & jnp.isfinite(optax.tree_utils.tree_norm(params))  # never keep non-finite weights
        n = state.step - state.skipped  # successful updates so far
        decay = jnp.minimum(hyper["ema_decay"], (1.0 + n) / (10.0 + n))
        ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema, params)

        def keep(new, old):
            return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)

        new_state = state.replace(
            step=state.step + 1,
            params=keep(params, state.params),
            ema=keep(ema, state.ema),
            opt_state=keep(opt_state, state.opt_state),
            nonfinite=jnp.where(ok, 0, state.nonfinite + 1),
            skipped=state.skipped + jnp.where(ok, 0, 1),
        )
        metrics = {
            "loss": loss,
            "grad_norm": gnorm,
            "ok": ok,
            **{f"mse_{k}": v for k, v in aux["per_group"].items()},
        }
        return new_state, metrics

    return step


_COMPILED: dict = {}


def _cached(kind: str, model, rollout: Rollout, time_distribution: str, make: Callable, extra=None):
    """One jitted function per (kind, model configuration, rollout, time distribution) in this process:
    a second run of the same configuration (a resume, the demo's, a notebook's) neither traces nor
    compiles again."""
    key = (kind, type(model), repr(model), rollout, time_distribution, extra)
    if key not in _COMPILED:
        if len(_COMPILED) > 32:
            _COMPILED.clear()
        _COMPILED[key] = make()
    return _COMPILED[key]


def compiled_step(model, rollout: Rollout, time_distribution: str, randomise: bool = False):
    """The jitted :func:`make_train_step` (state donated), cached."""
    return _cached(
        "step",
        model,
        rollout,
        time_distribution,
        lambda: jax.jit(make_train_step(model, rollout, time_distribution, randomise), donate_argnums=0),
        extra=bool(randomise),
    )


def compiled_val_loss(model, rollout: Rollout, time_distribution: str):
    """The jitted validation loss (fixed noise, no dropout) on given parameters, cached."""

    def make():
        def val_loss(params, X1, cond, key, norm, weights, A1=None):
            variables = {"params": params, "normalizer": norm}
            return model.method.loss(
                model.apply, variables, rollout, X1, cond, key, weights, time_distribution, False, A1
            )[0]

        return jax.jit(val_loss)

    return _cached("val_loss", model, rollout, time_distribution, make)
