"""The evaluation metrics, each a function of arrays (NumPy) and, where needed, the MuJoCo C model.

Notation: X (B, H+1, 37) generated (or demonstrated) states, U (B, H, 12) the actions, Δt the control
period. Replays run the rollout's control law in MuJoCo C (:func:`dynaflow.physics.replay_in_mujoco`).
The reader's definitions of what is reported are in :mod:`dynaflow.evaluate.catalogue`.

* :func:`sae_rollout` — admissibility, rollout form: |X − replay(x0, U)|, max and mean over steps ≥ 1.
* :func:`sae_one_step` — admissibility, one-step form: for each k, |x_{k+1} − f(x_k, u_k)| with f one
  simulated control step from the generated x_k (the definition used for state-only generators).
* :func:`executability` — U replayed open loop in a simulator (default the "reference" one): fraction of
  samples whose trunk stays upright (body z · world z ≥ 0.8) and above 0.15 m throughout, and the base
  drift |p_replay − p_generated| at the final step (m, horizontal).
* :func:`command_tracking` — achieved mean body-frame (vx, vy) and yaw rate vs the command.
* :func:`contact_phases` / :func:`gait_accuracy` — foot contact pattern (foot height < 1 cm) phase offsets
  relative to FL vs a gait's designed offsets (circular distance < 0.15 cycles for every leg).
* :func:`mmd_rbf` — maximum mean discrepancy between two sets of windows with an RBF kernel (median
  heuristic bandwidth); :func:`diversity` — mean pairwise distance between samples.
* :func:`plausibility` — foot penetration depth, foot sliding speed while in contact, joint-limit
  violation, quaternion norm error (state-only generators can get all of these wrong; a rollout cannot).
"""

from __future__ import annotations

import mujoco
import numpy as np

from dynaflow.data.conditioning import heading_velocity
from dynaflow.data.sources.gaits import phase_offsets
from dynaflow.physics import Rollout, replay_in_mujoco, stays_up
from dynaflow.robots.go2 import FOOT_RADIUS, FOOT_SITES, NQ, STATE_GROUPS

CONTACT_HEIGHT = 0.01  # m: a foot sphere's lowest point this close to the floor counts as contact


def error_stats(diff: np.ndarray, prefix: str) -> dict[str, float]:
    """Max and mean of absolute state errors ``(B, T, 37)``, and the max per state group."""
    out = {f"{prefix}_max": float(diff.max()), f"{prefix}_mean": float(diff.mean())}
    for name, sl in STATE_GROUPS.items():
        out[f"{prefix}_max_{name}"] = float(diff[..., sl].max())
    return out


def replay_errors(X: np.ndarray, replay: np.ndarray, prefix: str) -> dict[str, float]:
    """:func:`error_stats` of |X − replay| over steps ≥ 1 (step 0 is the shared x0)."""
    diff = np.abs(np.asarray(X, np.float64) - np.asarray(replay, np.float64))[:, 1:]
    return error_stats(diff, prefix)


def replay_outcome(X: np.ndarray, replay: np.ndarray, prefix: str) -> dict[str, float]:
    """How an open-loop replay of X's actions went: fraction that stays up, final horizontal drift (m)."""
    drift = np.linalg.norm(np.asarray(replay)[:, -1, :2] - np.asarray(X)[:, -1, :2], axis=-1)
    return {
        f"{prefix}_success": float(stays_up(replay).mean()),
        f"{prefix}_drift_mean": float(drift.mean()),
        f"{prefix}_drift_max": float(drift.max()),
    }


def sae_rollout(rollout: Rollout, X: np.ndarray, U: np.ndarray, fidelity: str = "same") -> dict[str, float]:
    """Rollout-form SAE: generated states vs MuJoCo C's replay of the generated actions from x0."""
    X = np.asarray(X, np.float64)
    replay = replay_in_mujoco(rollout, X[:, 0], np.asarray(U, np.float64), fidelity)
    return replay_errors(X, replay, "sae_rollout")


def one_step_errors(rollout: Rollout, X: np.ndarray, U: np.ndarray) -> np.ndarray:
    """|x_{k+1} − f(x_k, u_k)| ``(B, H, 37)``: f is one MuJoCo C control step from the generated x_k."""
    X = np.asarray(X, np.float64)
    U = np.asarray(U, np.float64)
    B, H = U.shape[:2]
    starts = X[:, :-1].reshape(B * H, -1)
    nxt = replay_in_mujoco(rollout, starts, U.reshape(B * H, 1, -1))[:, 1]
    return np.abs(nxt.reshape(B, H, -1) - X[:, 1:])


def sae_one_step(rollout: Rollout, X: np.ndarray, U: np.ndarray) -> dict[str, float]:
    """One-step SAE: each generated x_{k+1} vs one simulated control step from the generated x_k with u_k."""
    return error_stats(one_step_errors(rollout, X, U), "sae_one_step")


def sae_best_action(
    rollout: Rollout, X: np.ndarray, std: np.ndarray, iters: int = 60, lr: float = 0.1, U0=None
) -> tuple[dict[str, float], np.ndarray]:
    """One-step SAE with the *best* action: for each k, min_u |x_{k+1} − f(x_k, u)|, the action found by
    Adam (``iters`` steps from ``U0`` or zero; each transition keeps its best iterate, so starting from
    a model's own actions never scores worse than they do) on the squared error in normalised units
    (÷ ``std``) through MJX's differentiable control step. It scores any generator, states-only ones
    included: it is small only if some action explains each generated transition. Returns the stats
    and the errors ``(B, H, 37)`` (in MuJoCo C, float64, with the actions found)."""

    X = np.asarray(X, np.float32)
    B, T = X.shape[:2]
    n = B * (T - 1)
    size = max(64, 1 << (n - 1).bit_length())  # a power of two >= 64: one compile serves many sizes
    xs = np.zeros((size, X.shape[-1]), np.float32)
    xn = np.zeros_like(xs)
    xs[:n], xn[:n] = X[:, :-1].reshape(n, -1), X[:, 1:].reshape(n, -1)
    xs[n:], xn[n:] = xs[0], xn[0]  # padding: copies of the first transition
    u0 = np.zeros((size, rollout.mj_model.nu), np.float32)
    if U0 is not None:
        u0[:n] = np.asarray(U0, np.float32).reshape(n, -1)
        u0[n:] = u0[0]
    w = np.asarray(1.0 / np.asarray(std, np.float32) ** 2, np.float32)
    U = _best_actions(rollout, lr)(xs, xn, w, u0, np.int32(iters))[:n]
    U = np.asarray(U, np.float64).reshape(B, T - 1, -1)
    errors = one_step_errors(rollout, X, U)
    return error_stats(errors, "sae_best_action"), errors


_BEST_ACTION_FNS: dict = {}


def _best_actions(rollout: Rollout, lr: float):
    """A cached jit of Adam on the one-step error, vmapped over transitions; the iteration count is an
    argument (a loop, not an unrolled scan), so one compile serves every count."""
    import jax
    import jax.numpy as jnp
    import optax

    key = (rollout, lr)
    if key in _BEST_ACTION_FNS:
        return _BEST_ACTION_FNS[key]
    step = jax.vmap(rollout.step)
    tx = optax.adam(lr)

    def run(xs, xn, w, u0, iters):
        def losses(u):  # one per transition: they are independent, so their sum's gradient is each one's
            return jnp.mean(w * jnp.square(step(xs, u) - xn), axis=-1)

        def body(_, carry):
            u, opt, best_u, best = carry
            value, vjp = jax.vjp(losses, u)
            (g,) = vjp(jnp.ones_like(value))
            better = value < best  # keep each transition's best iterate (the start included)
            best_u = jnp.where(better[:, None], u, best_u)
            best = jnp.where(better, value, best)
            upd, opt = tx.update(g, opt, u)
            return (optax.apply_updates(u, upd), opt, best_u, best)

        init = (u0, tx.init(u0), u0, jnp.full(len(u0), jnp.inf))
        u, _, best_u, best = jax.lax.fori_loop(0, iters, body, init)
        last = losses(u)
        return jnp.where((last < best)[:, None], u, best_u)

    _BEST_ACTION_FNS[key] = jax.jit(run)
    return _BEST_ACTION_FNS[key]


def executability(rollout: Rollout, X: np.ndarray, U: np.ndarray, fidelity: str = "reference") -> dict:
    """Open-loop replay of U from x0: success rate (stays up) and final horizontal base drift (m)."""
    X = np.asarray(X, np.float64)
    replay = replay_in_mujoco(rollout, X[:, 0], np.asarray(U, np.float64), fidelity)
    return replay_outcome(X, replay, f"exec_{fidelity}")


def command_tracking(X: np.ndarray, command: np.ndarray, ctrl_dt: float) -> dict[str, float]:
    """Achieved vs commanded (vx, vy, yaw rate): mean absolute error over samples.

    Achieved: :func:`dynaflow.data.conditioning.heading_velocity` (the gait library's own measure): the mean
    over the window of the base velocity in the heading frame and of the finite-difference yaw rate."""
    achieved = heading_velocity(X, ctrl_dt)
    err = np.abs(achieved - np.asarray(command, np.float64)[:, :3]).mean(0)
    return {"track_vx_err": float(err[0]), "track_vy_err": float(err[1]), "track_yaw_err": float(err[2])}


def foot_positions(model: mujoco.MjModel, X: np.ndarray) -> np.ndarray:
    """World positions (..., 4, 3) of the foot sites (FL, FR, RL, RR) for states X (..., 37)."""
    X = np.asarray(X, np.float64)
    flat = X.reshape(-1, X.shape[-1])
    data = mujoco.MjData(model)
    ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, name) for name in FOOT_SITES]
    if min(ids) < 0:
        raise ValueError(f"model: the foot sites {', '.join(FOOT_SITES)} are required")
    out = np.empty((len(flat), 4, 3))
    for i, x in enumerate(flat):
        data.qpos[:] = x[:NQ]
        mujoco.mj_kinematics(model, data)
        out[i] = data.site_xpos[ids]
    return out.reshape(*X.shape[:-1], 4, 3)


def contacts(feet: np.ndarray, height: float = CONTACT_HEIGHT) -> np.ndarray:
    """(..., 4) booleans: the foot sphere's lowest point is within ``height`` of the floor."""
    return feet[..., 2] - FOOT_RADIUS < height


contact_phases = phase_offsets  # the gait library's measure, (B, T, 4) -> (B, 4)


def circular_distance(a, b) -> np.ndarray:
    d = (np.asarray(a) - np.asarray(b)) % 1.0
    return np.minimum(d, 1.0 - d)


def gait_accuracy(phases: np.ndarray, designed: np.ndarray, tolerance: float = 0.15) -> float:
    """Fraction of trajectories whose every leg's phase is within ``tolerance`` cycles of the design
    (a leg without a measurable phase counts as wrong)."""
    phases = np.asarray(phases, np.float64)
    ok = circular_distance(phases, designed) < tolerance
    return float(np.mean(np.all(ok, axis=-1)))


def mmd_rbf(A: np.ndarray, B: np.ndarray, bandwidth: float | None = None) -> float:
    """Squared MMD (unbiased) between sample sets A (n, ...) and B (m, ...), RBF kernel.

    The bandwidth defaults to the median pairwise distance of the pooled samples."""
    A = np.asarray(A, np.float64).reshape(len(A), -1)
    B = np.asarray(B, np.float64).reshape(len(B), -1)
    if len(A) < 2 or len(B) < 2:
        raise ValueError("mmd_rbf: needs at least 2 samples in each set")
    Z = np.concatenate([A, B])
    d2 = np.maximum(((Z[:, None] - Z[None]) ** 2).sum(-1), 0.0)
    if bandwidth is None:
        bandwidth = float(np.sqrt(np.median(d2[np.triu_indices(len(Z), 1)]))) or 1.0
    K = np.exp(-d2 / (2 * bandwidth**2))
    n, m = len(A), len(B)
    kaa = (K[:n, :n].sum() - np.trace(K[:n, :n])) / (n * (n - 1))
    kbb = (K[n:, n:].sum() - np.trace(K[n:, n:])) / (m * (m - 1))
    kab = K[:n, n:].mean()
    return float(kaa + kbb - 2 * kab)


def diversity(X: np.ndarray) -> float:
    """Mean pairwise Euclidean distance between samples (n, ...); 0 for identical samples."""
    X = np.asarray(X, np.float64).reshape(len(X), -1)
    if len(X) < 2:
        return 0.0
    d = np.sqrt(np.maximum(((X[:, None] - X[None]) ** 2).sum(-1), 0.0))
    return float(d[np.triu_indices(len(X), 1)].mean())


def plausibility(model: mujoco.MjModel, X: np.ndarray, ctrl_dt: float) -> dict[str, float]:
    """Foot penetration (m, max depth below the floor), foot sliding (m/s, mean horizontal foot speed
    over steps where the foot is loaded, i.e. below the floor surface, at both ends), joint-limit
    violation (rad, max), quaternion norm error (max | |q| - 1 |)."""
    X = np.asarray(X, np.float64)
    feet = foot_positions(model, X)
    depth = np.maximum(FOOT_RADIUS - feet[..., 2], 0.0)
    c = contacts(feet, height=0.0)  # loaded: the soft contact compresses (~1.5 mm when standing)
    both = c[:, 1:] & c[:, :-1]
    speed = np.linalg.norm(feet[:, 1:, :, :2] - feet[:, :-1, :, :2], axis=-1) / ctrl_dt
    sliding = float(speed[both].mean()) if both.any() else 0.0
    lo, hi = model.jnt_range[1:].T
    q = X[..., 7:19]
    limit = np.maximum(np.maximum(lo - q, q - hi), 0.0)
    return {
        "foot_penetration_max": float(depth.max()),
        "foot_sliding_mean": sliding,
        "joint_limit_violation_max": float(limit.max()),
        "quat_norm_error_max": float(np.abs(np.linalg.norm(X[..., 3:7], axis=-1) - 1.0).max()),
    }
