"""The flow: probability path, the dynamics-embedded loss (paper Eq. 4) and the Euler ODE sampler.

Small pieces with one job each (the methods in :mod:`dynaflow.methods` compose them):

* :func:`source_sample` — X0 ~ N(x0, σ²I) in normalised units, its first row pinned to x0;
* :func:`interpolate` — X_t = t·X1 + (1 − t)·X0;
* :func:`sample_time` — t ~ U(0, 1) or logit-normal;
* :func:`state_weights` — W, per state group, x0 masked; :func:`loss_weights` adds the trunk rule;
* :func:`flow_matching_loss` — ‖W ⊙ (Φ(x0, D_θ(X_t, c, t)) − X1)‖² in normalised units; on windows of
  K·H + 1 states it chains K windows, each later one starting where the model's rollout arrived
  (:func:`reanchor`);
* :func:`integrate` — Euler steps of the velocity (Ẑ1 − Z_t)/(1 − t) from t = 0 to 1; the last step lands
  on Ẑ1 exactly.

All trajectories here are in physical units; "normalised units" means divided by the normaliser's
per-dimension std (the model normalises its own input). The loss weights the squared error,
``mean_w w · ((X̂1 − X1)/std)²``, i.e. W = √w in the paper's notation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from dynaflow.model import DEFAULT_SIGMA
from dynaflow.robots.go2 import JOINTS, LINVEL, QUAT, STATE_DIM, STATE_GROUPS

VELOCITIES = slice(LINVEL.start, STATE_DIM)  # trunk linear and angular, then joint velocities

TIME_DISTRIBUTIONS = ("uniform", "logit_normal")
#: How the loss compares the trunk's velocities (``base_linvel``, ``base_angvel``): ``step`` at every
#: step like every other group; ``window`` by their mean over the window's steps 1..H, i.e. where the
#: trunk goes and how far it turns in the window, leaving the bobbing and rocking of every step to the
#: physics. Kinematic or motion-capture trunks glide (or move as another body moved): a physical gait's
#: per-step trunk oscillation costs more against them than standing still does; their mean motion is
#: what they get right.
TRUNK_LOSSES = ("step", "window")
TRUNK_RATE_GROUPS = ("base_linvel", "base_angvel")


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
        if not isinstance(value, int | float) or not np.isfinite(value) or value < 0:
            raise ValueError(f"weights: group {name!r} needs a finite weight >= 0, got {value!r}")
        w[STATE_GROUPS[name]] = value
    if w.sum() == 0:
        raise ValueError("weights: all state groups weigh 0")
    W = np.tile(w, (horizon + 1, 1))
    W[0] = 0.0
    return W


def loss_weights(horizon: int, groups: Mapping[str, float] | None = None, trunk: str = "step") -> dict:
    """The loss's weights: ``{"step": W (H+1, 37), "window": M (37,)}``. ``W`` weighs every step's squared
    error (:func:`state_weights`); ``M`` weighs the squared error of the window mean (steps 1..H) of the
    dimensions ``trunk="window"`` moves there (the trunk's velocities; see :data:`TRUNK_LOSSES`), which
    then weigh 0 in ``W``. Both are runtime arrays: one compiled step serves either rule."""
    if trunk not in TRUNK_LOSSES:
        raise ValueError(f"trunk loss: expected one of {TRUNK_LOSSES}, got {trunk!r}")
    W = state_weights(horizon, groups)
    M = np.zeros(STATE_DIM, np.float32)
    if trunk == "window":
        for name in TRUNK_RATE_GROUPS:
            sl = STATE_GROUPS[name]
            M[sl] = W[1, sl]
            W[:, sl] = 0.0
    return {"step": W, "window": M}


def stored_std_sigma(params: Mapping) -> tuple[jax.Array, jax.Array]:
    """The normaliser std and σ stored in a model's variables (identity and the default when absent)."""
    stored = params.get("normalizer", {}) if isinstance(params, Mapping) else {}
    std = jnp.asarray(stored["std"], jnp.float32) if "std" in stored else jnp.ones(STATE_DIM, jnp.float32)
    sigma = jnp.asarray(stored.get("sigma", DEFAULT_SIGMA), jnp.float32)
    return std, sigma


def noisy_states(params: Mapping, X1: jax.Array, rng: jax.Array, time_distribution: str):
    """t, X_t on the straight path from X0 ~ N(x0, σ²) to the windows X1, and a dropout key."""
    std, sigma = stored_std_sigma(params)
    k_t, k_x0, k_drop = jax.random.split(rng, 3)
    t = sample_time(k_t, X1.shape[0], time_distribution)
    X0 = source_sample(k_x0, X1[:, 0], X1.shape[1] - 1, std, sigma)
    return t, interpolate(X0, X1, t), k_drop


def weighted_state_error(X_hat, X1, std, weights) -> tuple[jax.Array, dict]:
    """mean_w w · ((X̂ − X1)/std)² and the mean squared normalised error of each state group (steps ≥ 1).

    ``weights``: W (H+1, 37) from :func:`state_weights`, or :func:`loss_weights`' dict, whose window
    term counts each dimension's squared error of the window mean H times (as many as a per-step term)."""
    err = (X_hat - X1) / std  # (B, H+1, 37)
    err2 = jnp.square(err)
    if isinstance(weights, Mapping):
        W = jnp.asarray(weights["step"], err2.dtype)
        M = jnp.asarray(weights["window"], err2.dtype)
        steps = err.shape[1] - 1
        window = steps * jnp.sum(M * jnp.square(jnp.mean(err[:, 1:], axis=1)), axis=-1)
        loss = jnp.mean((jnp.sum(W * err2, axis=(1, 2)) + window) / (jnp.sum(W) + steps * jnp.sum(M)))
    else:
        W = jnp.asarray(weights, err2.dtype)
        loss = jnp.mean(jnp.sum(W * err2, axis=(1, 2)) / jnp.sum(W))
    per_group = {name: jnp.mean(err2[:, 1:, sl]) for name, sl in STATE_GROUPS.items()}
    return loss, {"per_group": per_group}


def _yaw(q: jax.Array) -> jax.Array:
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return jnp.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def reanchor(X: jax.Array, x_start: jax.Array) -> jax.Array:
    """Demonstration windows ``X`` (B, H+1, 37) moved to start at ``x_start`` (B, 37): translated in the
    plane and turned about the vertical so their first state's position and heading are ``x_start``'s
    (world-frame positions, orientations and linear velocities move; heights, joints and the body-frame
    angular velocities do not), then row 0 replaced by ``x_start``. The floor is flat and level, so the
    moved window is the same demonstration, asked of the robot from where it actually is."""
    d = _yaw(x_start[:, QUAT]) - _yaw(X[:, 0, QUAT])
    c, s = jnp.cos(d)[:, None], jnp.sin(d)[:, None]

    def turn(v):  # (B, T, 2) rotated by d about z
        return jnp.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1]], axis=-1)

    pos = turn(X[..., 0:2] - X[:, :1, 0:2]) + x_start[:, None, 0:2]
    q = X[..., QUAT]
    cz, sz = jnp.cos(d / 2)[:, None], jnp.sin(d / 2)[:, None]
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    quat = jnp.stack([cz * w - sz * z, cz * x - sz * y, cz * y + sz * x, cz * z + sz * w], axis=-1)
    lin = X[..., LINVEL]
    vel = jnp.concatenate([turn(lin[..., 0:2]), lin[..., 2:3]], axis=-1)
    X = X.at[..., 0:2].set(pos).at[..., QUAT].set(quat).at[..., LINVEL].set(vel)
    return X.at[:, 0].set(x_start)


def ease_in(X: jax.Array, s: jax.Array) -> jax.Array:
    """Demonstration windows ``X`` (B, T, 37) whose row 0 is where the robot is, eased in from there: at
    step t ≥ 1 the target is ``s[:, t]`` (in [0, 1]) of the way from the start to the demonstration. Heights,
    joints and orientation blend (the quaternion normalised); velocities are scaled by ``s``; planar
    positions advance by ``s`` times the demonstration's displacement of each step, so positions and
    velocities stay consistent. ``s`` = 1 everywhere returns ``X``.

    Why: generation starts from a settled stand, and a clip is met at full speed and at its own
    posture (motion capture: a trunk 8 cm higher, 1.5 m/s). A first window that asks for all of that at
    once is learned as a jump, and the chained motion falls over; eased in, it is learned as a start."""
    s = s[..., None].astype(X.dtype)
    x0 = X[:, :1]
    steps = X[:, 1:, 0:2] - X[:, :-1, 0:2]
    planar = x0[..., 0:2] + jnp.concatenate(
        [jnp.zeros_like(steps[:, :1]), jnp.cumsum(s[:, 1:] * steps, axis=1)], axis=1
    )
    q, q0 = X[..., QUAT], x0[..., QUAT]
    q0 = jnp.where(jnp.sum(q * q0, axis=-1, keepdims=True) < 0, -q0, q0)  # the demonstration's hemisphere
    q = (1 - s) * q0 + s * q
    q = q / jnp.linalg.norm(q, axis=-1, keepdims=True)
    blended = (1 - s) * x0 + s * X  # height and joints
    eased = (
        X.at[..., 0:2]
        .set(planar)
        .at[..., 2:3]
        .set(blended[..., 2:3])
        .at[..., QUAT]
        .set(q)
        .at[..., JOINTS]
        .set(blended[..., JOINTS])
        .at[..., VELOCITIES]
        .set(s * X[..., VELOCITIES])
    )
    return eased.at[:, 0].set(X[:, 0])  # row 0 is where the rollout starts: kept as it is


def flow_matching_loss(
    apply_fn: Callable,
    params: Mapping,
    rollout: Callable,
    X1: jax.Array,
    cond: jax.Array | None,
    rng: jax.Array,
    weights,
    time_distribution: str = "uniform",
    train: bool = True,
) -> tuple[jax.Array, dict]:
    """Eq. 4: E_t,X0 ‖W ⊙ (Φ(x0, D_θ(X_t, c, t)) − X1)‖², in normalised units.

    ``X1`` (B, H+1, 37) are demonstration windows, ``cond`` (B, C) or None, ``weights`` from
    :func:`loss_weights` (or W (H+1, 37) from :func:`state_weights`), ``rollout`` Φ. ``params`` is the
    model's full variable dict (its ``normalizer`` collection gives the std and σ). Returns the loss and
    per-group mean squared normalised errors.

    **Chained windows**: ``X1`` of K·H + 1 states (H from the weights' shape) is K consecutive windows. The
    first starts at the demonstration's x0; each later one starts at the state the model's own rollout
    reached (held constant for the gradient) with the demonstration :func:`reanchor`-ed there. The model
    then learns from the states it meets when its windows are chained at generation time, where a
    demonstration's start (its momentum in particular) is no longer given: on kinematic data, whose
    start states carry velocities no leg produced, that is what makes it keep walking. The loss is the
    windows' mean.

    **Starts from rest** (``weights["rest"]``, ``["rest_fraction"]``): that fraction of the samples starts
    its first window at the standing state instead, the demonstration re-anchored there, and eases into
    it over ``weights["ease_steps"]`` steps counted across the chained windows (:func:`ease_in`; 0: at
    once)."""
    std, _ = stored_std_sigma(params)
    W = weights["step"] if isinstance(weights, Mapping) else weights
    horizon = W.shape[0] - 1
    chain = (X1.shape[1] - 1) // horizon
    if chain * horizon + 1 != X1.shape[1]:
        raise ValueError(f"X1: expected K·{horizon} + 1 states per window, got {X1.shape[1]}")

    def window(Xk, key):
        t, Xt, k_drop = noisy_states(params, Xk, key, time_distribution)
        U = apply_fn(params, Xt, t, cond, train=train, rngs={"dropout": k_drop} if train else None)
        X_hat = rollout(Xk[:, 0], U)
        loss, aux = weighted_state_error(X_hat, Xk, std, weights)
        return loss, aux["per_group"], X_hat[:, -1]

    rest = weights.get("rest") if isinstance(weights, Mapping) else None
    if chain == 1 and rest is None:
        loss, groups, _ = window(X1, rng)
        return loss, {"per_group": groups}

    x_first = X1[:, 0]
    pick = jnp.zeros((X1.shape[0], 1), bool)
    if rest is not None:  # a fraction of the samples start from rest, the demonstration moved there
        pick = (
            jax.random.uniform(jax.random.fold_in(rng, 0x5E57), (X1.shape[0], 1)) < weights["rest_fraction"]
        )
        x_first = jnp.where(pick, jnp.asarray(rest, X1.dtype)[None], x_first)
    # those samples ease into the demonstration over `ease_steps` steps (0: none), across their windows
    ease = jnp.asarray(weights.get("ease_steps", 0.0) if isinstance(weights, Mapping) else 0.0, X1.dtype)
    # one traced window scanned K times (compile time does not grow with K)
    windows = jnp.stack([X1[:, k * horizon : (k + 1) * horizon + 1] for k in range(chain)])

    def body(x0, inputs):
        Xk, k = inputs
        t = (k * horizon + jnp.arange(horizon + 1)).astype(X1.dtype)
        s = jnp.where(pick & (ease > 0), jnp.clip(t / jnp.maximum(ease, 1.0), 0.0, 1.0), 1.0)
        loss, groups, end = window(ease_in(reanchor(Xk, x0), s), jax.random.fold_in(rng, k))
        return jax.lax.stop_gradient(end), (loss, groups)

    _, (losses, groups) = jax.lax.scan(body, x_first, (windows, jnp.arange(chain)))
    return jnp.mean(losses), {"per_group": jax.tree.map(jnp.mean, groups)}


def integrate(predict: Callable, Z0: jax.Array, ode_steps: int):
    """Euler steps Z ← Z + Δt·(Ẑ1 − Z)/(1 − t) from t = 0 with ``predict(Z, t) -> (Ẑ1, aux)``; returns the
    last step's ``(Ẑ1, aux)`` (where the last step lands). One step needs no loop (a one-trip XLA while
    loop costs ~2.5 ms at B = 1 on a CPU); more steps scan, so the traced graph does not grow with them."""
    if ode_steps < 1:
        raise ValueError(f"ode_steps must be >= 1, got {ode_steps}")
    dt = 1.0 / ode_steps
    if ode_steps == 1:
        return predict(Z0, jnp.zeros((), Z0.dtype))

    def euler(Z, k):
        t = k.astype(Z0.dtype) * dt
        Z_hat, aux = predict(Z, t)
        return Z + dt * (Z_hat - Z) / (1.0 - t), (Z_hat, aux)

    _, (Z_hats, auxs) = jax.lax.scan(euler, Z0, jnp.arange(ode_steps))
    return Z_hats[-1], jax.tree.map(lambda a: a[-1], auxs)


def sampling_inputs(params, x0, cond, sigma):
    """(normaliser std, σ (NaN: the stored one), cond broadcast to the batch) of every sampler."""
    std, stored_sigma = stored_std_sigma(params)
    sigma = jnp.where(jnp.isnan(sigma), stored_sigma, sigma)
    if cond is not None:
        cond = jnp.broadcast_to(cond, (x0.shape[0], cond.shape[1]))
    return std, sigma, cond


def trajectory_errors(X_gen: np.ndarray, X_ref: np.ndarray, std: np.ndarray) -> dict[str, float]:
    """TRE: mean per-step error of generated vs reference states over steps 1..H.

    ``tre`` is the RMS over all dimensions in normalised units; ``tre_<group>`` is the mean Euclidean
    norm of that state group's error, in physical units (m, rad, m/s, rad/s)."""
    diff = np.asarray(X_gen, np.float64)[:, 1:] - np.asarray(X_ref, np.float64)[:, 1:]
    out = {"tre": float(np.sqrt(np.mean(np.square(diff / std))))}
    for name, sl in STATE_GROUPS.items():
        out[f"tre_{name}"] = float(np.mean(np.linalg.norm(diff[..., sl], axis=-1)))
    return out
