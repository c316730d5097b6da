"""The flow: probability path, the dynamics-embedded loss (paper Eq. 4) and the Euler ODE sampler.

Small pieces with one job each:

* :func:`source_sample` — X0 ~ N(x0, σ²I) in normalised units, its first row pinned to x0;
* :func:`interpolate` — X_t = t·X1 + (1 − t)·X0;
* :func:`sample_time` — t ~ U(0, 1) or logit-normal;
* :func:`state_weights` — W, per state group, x0 masked;
* :func:`flow_matching_loss` — ‖W ⊙ (Φ(x0, D_θ(X_t, c, t)) − X1)‖² in normalised units;
* :func:`sample_trajectory` — Euler steps of the velocity (X̂1 − X_t)/(1 − t); returns (Φ(x0, U), U).

All trajectories here are in physical units; "normalised units" means divided by the normaliser's
per-dimension std (the model normalises its own input). The loss weights the squared error,
``mean_w w · ((X̂1 − X1)/std)²``, i.e. W = √w in the paper's notation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dynaflow.data import Normalizer
from dynaflow.model import DEFAULT_SIGMA, set_normalizer
from dynaflow.physics import STATE_DIM, STATE_GROUPS, Rollout

TIME_DISTRIBUTIONS = ("uniform", "logit_normal")


def source_sample(rng: jax.Array, x0: jax.Array, horizon: int, std: jax.Array, sigma: float) -> jax.Array:
    """X0 (B, H+1, 37): x0 repeated, plus σ·std·ε on rows 1..H (row 0 is x0 exactly)."""
    eps = jax.random.normal(rng, (x0.shape[0], horizon + 1, x0.shape[-1]), x0.dtype)
    eps = eps.at[:, 0].set(0.0)
    return x0[:, None, :] + sigma * std * eps


def interpolate(X0: jax.Array, X1: jax.Array, t: jax.Array) -> jax.Array:
    """The straight path X_t = t·X1 + (1 − t)·X0, with ``t`` of shape (B,)."""
    t = t[:, None, None]
    return t * X1 + (1.0 - t) * X0


def sample_time(rng: jax.Array, batch: int, distribution: str = "uniform") -> jax.Array:
    """t in [0, 1): uniform, or logit-normal (sigmoid of a standard normal: more weight mid-path)."""
    if distribution == "uniform":
        return jax.random.uniform(rng, (batch,))
    if distribution == "logit_normal":
        return jax.nn.sigmoid(jax.random.normal(rng, (batch,)))
    raise ValueError(f"time distribution: expected one of {TIME_DISTRIBUTIONS}, got {distribution!r}")


def state_weights(horizon: int, groups: Mapping[str, float] | None = None) -> np.ndarray:
    """W as squared-error weights (H+1, 37): row 0 (x0, given) is 0; other rows equal, per group.

    ``groups`` maps state group names (``base_pos``, ``base_quat``, ``joint_pos``, ``base_linvel``,
    ``base_angvel``, ``joint_vel``) to weights; unnamed groups weigh 1."""
    groups = dict(groups or {})
    unknown = set(groups) - set(STATE_GROUPS)
    if unknown:
        raise ValueError(f"weights: unknown state group(s) {sorted(unknown)}; known: {list(STATE_GROUPS)}")
    w = np.ones(STATE_DIM, np.float32)
    for name, value in groups.items():
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"weights: group {name!r} needs a finite weight >= 0, got {value}")
        w[STATE_GROUPS[name]] = value
    if w.sum() == 0:
        raise ValueError("weights: all state groups weigh 0")
    W = np.tile(w, (horizon + 1, 1))
    W[0] = 0.0
    return W


def _stored_std_sigma(params: Mapping) -> tuple[jax.Array, jax.Array]:
    """The normaliser std and σ stored in a model's variables (identity and the default when absent)."""
    stored = params.get("normalizer", {}) if isinstance(params, Mapping) else {}
    std = jnp.asarray(stored["std"], jnp.float32) if "std" in stored else jnp.ones(STATE_DIM, jnp.float32)
    sigma = jnp.asarray(stored.get("sigma", DEFAULT_SIGMA), jnp.float32)
    return std, sigma


def flow_matching_loss(
    apply_fn: Callable,
    params: Mapping,
    rollout: Rollout,
    X1: jax.Array,
    cond: jax.Array | None,
    rng: jax.Array,
    weights: jax.Array | np.ndarray,
    time_distribution: str = "uniform",
    train: bool = True,
) -> tuple[jax.Array, dict]:
    """Eq. 4: E_t,X0 ‖W ⊙ (Φ(x0, D_θ(X_t, c, t)) − X1)‖², in normalised units.

    ``X1`` (B, H+1, 37) are demonstration windows, ``cond`` (B, C) or None, ``weights`` (H+1, 37) from
    :func:`state_weights`. ``params`` is the model's full variable dict (its ``normalizer`` collection
    gives the std and σ). Returns the loss and per-group mean squared normalised errors."""
    std, _ = _stored_std_sigma(params)
    t, Xt, k_drop = _noisy_states(params, X1, rng, time_distribution)
    U = apply_fn(params, Xt, t, cond, train=train, rngs={"dropout": k_drop} if train else None)
    X_hat = rollout(X1[:, 0], U)
    return _weighted_state_error(X_hat, X1, std, weights)


def _noisy_states(params: Mapping, X1: jax.Array, rng: jax.Array, time_distribution: str):
    """t, X_t on the straight path from X0 ~ N(x0, σ²) to the windows X1, and a dropout key."""
    std, sigma = _stored_std_sigma(params)
    k_t, k_x0, k_drop = jax.random.split(rng, 3)
    t = sample_time(k_t, X1.shape[0], time_distribution)
    X0 = source_sample(k_x0, X1[:, 0], X1.shape[1] - 1, std, sigma)
    return t, interpolate(X0, X1, t), k_drop


def _weighted_state_error(X_hat, X1, std, weights) -> tuple[jax.Array, dict]:
    err2 = jnp.square((X_hat - X1) / std)  # (B, H+1, 37)
    W = jnp.asarray(weights, err2.dtype)
    loss = jnp.mean(jnp.sum(W * err2, axis=(1, 2)) / jnp.sum(W))
    per_group = {name: jnp.mean(err2[:, 1:, sl]) for name, sl in STATE_GROUPS.items()}
    return loss, {"per_group": per_group}


def baseline_loss(
    method: str,
    apply_fn: Callable,
    params: Mapping,
    X1: jax.Array,
    cond: jax.Array | None,
    rng: jax.Array,
    weights: jax.Array | np.ndarray,
    time_distribution: str = "uniform",
    train: bool = True,
    A1: jax.Array | None = None,
) -> tuple[jax.Array, dict]:
    """The baselines' objectives, same path, time distribution and units as :func:`flow_matching_loss`.

    * ``state-fm``: ‖W ⊙ (D_θ(X_t, c, t) − X1)‖², the network predicting the clean states directly;
    * ``state-fm-id``: that plus the inverse-dynamics regression mean ‖ID(x_k, x_{k+1}) − a_k‖² on the
      demonstration pairs (``A1`` (B, H, 12), the recorded actions);
    * ``bc``: mean ‖D_θ(x0, U_t, c, t) − A1‖² with U_t = t·A1 + (1 − t)·U0, U0 ~ N(0, σ²I): flow
      matching of action chunks conditioned on x0 and c."""
    std, sigma = _stored_std_sigma(params)
    rngs = None
    if method in ("state-fm", "state-fm-id"):
        t, Xt, k_drop = _noisy_states(params, X1, rng, time_distribution)
        rngs = {"dropout": k_drop} if train else None
        X_hat = apply_fn(params, Xt, t, cond, train=train, rngs=rngs)
        loss, aux = _weighted_state_error(X_hat, X1, std, weights)
        if method == "state-fm-id":
            A_hat = apply_fn(params, X1, t, cond, id_states=X1)
            id_mse = jnp.mean(jnp.square(A_hat - A1))
            loss = loss + id_mse
            aux["per_group"]["idm_actions"] = id_mse
        return loss, aux
    if method == "bc":
        k_t, k_u, k_drop = jax.random.split(rng, 3)
        t = sample_time(k_t, X1.shape[0], time_distribution)
        U0 = sigma * jax.random.normal(k_u, A1.shape, A1.dtype)
        Ut = interpolate(U0, A1, t)
        x0_rows = jnp.broadcast_to(X1[:, :1], X1.shape)  # only row 0 is read: no future state leaks in
        rngs = {"dropout": k_drop} if train else None
        U_hat = apply_fn(params, x0_rows, t, cond, train=train, rngs=rngs, u_t=Ut)
        mse = jnp.mean(jnp.square(U_hat - A1))
        return mse, {"per_group": {"actions": mse}}
    raise ValueError(f"method: expected state-fm, state-fm-id or bc, got {method!r}")


def trajectory_errors(X_gen: np.ndarray, X_ref: np.ndarray, std: np.ndarray) -> dict[str, float]:
    """TRE: mean per-step error of generated vs reference states over steps 1..H.

    ``tre`` is the RMS over all dimensions in normalised units; ``tre_<group>`` is the mean Euclidean
    norm of that state group's error, in physical units (m, rad, m/s, rad/s)."""
    diff = np.asarray(X_gen, np.float64)[:, 1:] - np.asarray(X_ref, np.float64)[:, 1:]
    out = {"tre": float(np.sqrt(np.mean(np.square(diff / std))))}
    for name, sl in STATE_GROUPS.items():
        out[f"tre_{name}"] = float(np.mean(np.linalg.norm(diff[..., sl], axis=-1)))
    return out


# --------------------------------------------------------------------------------------------
# Sampling


def _fn_key(apply_fn: Callable):
    owner = getattr(apply_fn, "__self__", None)
    if isinstance(owner, nn.Module):  # a Linen module's bound ``apply``: equal configs behave the same
        return (type(owner), repr(owner), apply_fn.__func__)
    return apply_fn


_SAMPLERS: dict = {}


def method_of(apply_fn: Callable) -> str:
    """The ``method`` of the Linen module whose ``apply`` this is (``"dynaflow"`` for anything else)."""
    return getattr(getattr(apply_fn, "__self__", None), "method", "dynaflow")


def make_sampler(apply_fn: Callable, rollout: Rollout, horizon: int, ode_steps: int) -> Callable:
    """A jit-compiled ``f(params, x0 (B,37), cond (B|1, C) or None, rng, sigma) -> (X, U)``, cached.

    ``sigma`` NaN means the σ stored in ``params``; the normaliser std always comes from ``params``.
    A baseline model (its ``method``) gets its own sampler: ``state-fm`` returns ``U = None``;
    ``state-fm-id`` the inverse-dynamics actions of its states; ``bc`` X = Φ(x0, U)."""
    if horizon < 1 or ode_steps < 1:
        raise ValueError(f"horizon and ode_steps must be >= 1, got {horizon}, {ode_steps}")
    method = method_of(apply_fn)
    key = (_fn_key(apply_fn), rollout, int(horizon), int(ode_steps))
    if key in _SAMPLERS:
        return _SAMPLERS[key]

    def run(params, x0, cond, rng, sigma):
        std, sigma, cond = _sampling_inputs(params, x0, cond, sigma)
        X = source_sample(rng, x0, horizon, std, sigma)
        batch = x0.shape[0]
        dt = 1.0 / ode_steps

        def euler(carry, k):
            X, _, _ = carry
            t = k.astype(x0.dtype) * dt
            U = apply_fn(params, X, jnp.full((batch,), t), cond)
            X_hat = rollout(x0, U)
            X_next = X + dt * (X_hat - X) / (1.0 - t)  # on the last step this is X_hat exactly
            return (X_next, U, X_hat), None

        U0 = jnp.zeros((batch, horizon, rollout.mj_model.nu), x0.dtype)
        if ode_steps == 1:  # no loop: a one-trip XLA while loop costs ~2.5 ms at B = 1 on a CPU
            (_, U, X_hat), _ = euler((X, U0, X), jnp.zeros((), jnp.int32))
        else:
            (_, U, X_hat), _ = jax.lax.scan(euler, (X, U0, X), jnp.arange(ode_steps))
        return X_hat, U

    if method != "dynaflow":
        run = functools.partial(_sample_baseline, apply_fn, rollout, horizon, ode_steps, method)
    fn = jax.jit(run)
    if len(_SAMPLERS) > 32:
        _SAMPLERS.clear()
    _SAMPLERS[key] = fn
    return fn


def _sampling_inputs(params, x0, cond, sigma):
    """(normaliser std, σ (NaN: the stored one), cond broadcast to the batch) of every sampler."""
    std, stored_sigma = _stored_std_sigma(params)
    sigma = jnp.where(jnp.isnan(sigma), stored_sigma, sigma)
    if cond is not None:
        cond = jnp.broadcast_to(cond, (x0.shape[0], cond.shape[1]))
    return std, sigma, cond


def _sample_baseline(apply_fn, rollout, horizon, ode_steps, method, params, x0, cond, rng, sigma):
    std, sigma, cond = _sampling_inputs(params, x0, cond, sigma)
    batch = x0.shape[0]
    dt = 1.0 / ode_steps
    if method == "bc":
        x0_rows = jnp.broadcast_to(x0[:, None], (batch, horizon + 1, x0.shape[-1]))
        Z = sigma * jax.random.normal(rng, (batch, horizon, rollout.mj_model.nu), x0.dtype)

        def predict(Z, t):
            return apply_fn(params, x0_rows, jnp.full((batch,), t), cond, u_t=Z)
    else:
        Z = source_sample(rng, x0, horizon, std, sigma)

        def predict(Z, t):
            return apply_fn(params, Z, jnp.full((batch,), t), cond)

    for k in range(ode_steps):  # a handful of steps: unrolled
        t = k * dt
        Z_hat = predict(Z, t)
        Z = Z + dt * (Z_hat - Z) / (1.0 - t)
    if method == "bc":
        return rollout(x0, Z_hat), Z_hat
    if method == "state-fm-id":
        return Z_hat, apply_fn(params, Z_hat, jnp.zeros((batch,)), cond, id_states=Z_hat)
    return Z_hat, None


def sample_trajectory(
    apply_fn: Callable,
    params: Mapping,
    rollout: Rollout,
    x0,
    horizon: int = 16,
    state_dim: int = 37,
    ode_steps: int = 1,
    cond=None,
    rng: jax.Array | None = None,
    normalizer: Normalizer | None = None,
    sigma: float | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Generate motions: ``(X, U)`` with X ``(B, H+1, 37)`` = Φ(x0, U) and U ``(B, H, 12)``.

    Starts from X0 ~ N(x0, σ²I) (normalised units) and takes ``ode_steps`` Euler steps of the velocity
    (X̂1 − X_t)/(1 − t) from t = 0 to 1; with one step the answer is X̂1 = Φ(x0, D_θ(X0, c, 0)). The
    returned X is the rollout of the returned U, so it is admissible by construction. ``x0`` is
    ``(B, 37)``, ``(B, 1, 37)`` or ``(37,)``; ``cond`` is ``(B, C)`` or ``(C,)`` / ``(1, C)`` (broadcast).
    The normaliser and σ come from ``params`` (as saved by training) unless given."""
    if state_dim != STATE_DIM:
        raise ValueError(f"state_dim: the Go2 rollout has {STATE_DIM}-D states, got {state_dim}")
    # Shapes are fixed up on the host (NumPy) or lazily: at batch 1 every eager JAX op is ~5 % of a call.
    x0 = x0 if isinstance(x0, jax.Array) else np.asarray(x0, np.float32)
    if x0.ndim == 3 and x0.shape[1] == 1:
        x0 = x0[:, 0]
    elif x0.ndim == 1:
        x0 = x0[None]
    if x0.ndim != 2 or x0.shape[-1] != STATE_DIM:
        raise ValueError(f"x0: expected shape (B, 37), (B, 1, 37) or (37,), got {tuple(np.shape(x0))}")
    batch = x0.shape[0]
    if cond is not None:
        cond = cond if isinstance(cond, jax.Array) else np.asarray(cond, np.float32)
        if cond.ndim == 1:
            cond = cond[None]
        if cond.ndim != 2 or cond.shape[0] not in (1, batch):
            raise ValueError(f"cond: expected shape ({batch}, C), (1, C) or (C,), got {tuple(cond.shape)}")
    rng = _default_key() if rng is None else rng
    fn = make_sampler(apply_fn, rollout, horizon, ode_steps)
    sigma = np.float32(np.nan if sigma is None else sigma)
    if normalizer is not None:
        params = set_normalizer(params, normalizer)
    return fn(params, x0, cond, rng, sigma)


_DEFAULT_KEY: list = []


def _default_key() -> jax.Array:
    if not _DEFAULT_KEY:
        _DEFAULT_KEY.append(jax.random.PRNGKey(0))
    return _DEFAULT_KEY[0]
