"""Sampling motions from a model: :func:`sample_trajectory` (the public one-call sampler) and the cached,
jit-compiled samplers behind it (one per model configuration, rollout, horizon and ODE step count).

With one ODE step (the default) a sample is X̂1 = Φ(x0, D_θ(X0, c, 0)) for DynaFlow: the generated states
are the rollout of the generated actions, so they are admissible by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import flax
import flax.linen as nn
import jax
import numpy as np

from dynaflow.data.windows import Normalizer
from dynaflow.methods import METHODS, Method
from dynaflow.model import set_normalizer
from dynaflow.robots.go2 import STATE_DIM

_SAMPLERS: dict = {}


def _fn_key(apply_fn: Callable):
    owner = getattr(apply_fn, "__self__", None)
    if isinstance(owner, nn.Module):  # a Linen module's bound ``apply``: equal configs behave the same
        return (type(owner), repr(owner), apply_fn.__func__)
    return apply_fn


def method_of(apply_fn: Callable) -> Method:
    """The method of the Linen module whose ``apply`` this is (DynaFlow for anything else)."""
    method = getattr(getattr(apply_fn, "__self__", None), "method", None)
    return method if isinstance(method, Method) else METHODS["dynaflow"]


def make_sampler(
    apply_fn: Callable, rollout, horizon: int, ode_steps: int, actions_only: bool = False
) -> Callable:
    """A jit-compiled ``f(params, x0 (B,37), cond (B|1, C) or None, rng, sigma) -> (X, U)``, cached.

    ``sigma`` NaN means the σ stored in ``params``; the normaliser std always comes from ``params``. The
    model's method decides what ``U`` is (``None`` for a states-only model). ``actions_only``: return
    ``(None, U)``; XLA then drops what only X needed (for DynaFlow with one ODE step, the whole rollout:
    closed-loop control executes the actions and measures the states)."""
    if horizon < 1 or ode_steps < 1:
        raise ValueError(f"horizon and ode_steps must be >= 1, got {horizon}, {ode_steps}")
    key = (_fn_key(apply_fn), rollout, int(horizon), int(ode_steps), bool(actions_only))
    if key not in _SAMPLERS:
        if len(_SAMPLERS) > 32:
            _SAMPLERS.clear()
        run = method_of(apply_fn).sample(apply_fn, rollout, int(horizon), int(ode_steps))
        if actions_only:
            full = run

            def run(*args):
                return None, full(*args)[1]

        _SAMPLERS[key] = jax.jit(run)
    return _SAMPLERS[key]


def sample_trajectory(
    apply_fn: Callable,
    params: Mapping,
    rollout,
    x0,
    horizon: int = 16,
    state_dim: int = STATE_DIM,
    ode_steps: int = 1,
    cond=None,
    rng: jax.Array | None = None,
    normalizer: Normalizer | None = None,
    sigma: float | None = None,
    actions_only: bool = False,
) -> tuple[jax.Array, jax.Array]:
    """Generate motions: ``(X, U)`` with X ``(B, H+1, 37)`` = Φ(x0, U) and U ``(B, H, 12)``.

    Starts from X0 ~ N(x0, σ²I) (normalised units) and takes ``ode_steps`` Euler steps of the velocity
    (X̂1 − X_t)/(1 − t) from t = 0 to 1; with one step the answer is X̂1 = Φ(x0, D_θ(X0, c, 0)). The
    returned X is the rollout of the returned U, so it is admissible by construction. ``x0`` is
    ``(B, 37)``, ``(B, 1, 37)`` or ``(37,)``; ``cond`` is ``(B, C)`` or ``(C,)`` / ``(1, C)`` (broadcast).
    The normaliser and σ come from ``params`` (as saved by training) unless given. Initial states and
    conditionings must be finite, and a model that rolls out from x0 needs a non-zero base quaternion
    (one-line ``ValueError`` otherwise). ``actions_only``: return ``(None, U)`` and skip what only X needs
    (a closed-loop controller's call)."""
    if state_dim != STATE_DIM:
        raise ValueError(f"state_dim: the Go2 rollout has {STATE_DIM}-D states, got {state_dim}")
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ValueError(f"horizon: expected a positive integer, got {horizon!r}")
    if isinstance(ode_steps, bool) or not isinstance(ode_steps, int | np.integer) or ode_steps < 1:
        raise ValueError(f"ode_steps: expected a positive integer, got {ode_steps!r}")
    # Shapes are fixed up on the host (NumPy) or lazily: at batch 1 every eager JAX op is ~5 % of a call.
    x0 = x0 if isinstance(x0, jax.Array) else np.asarray(x0, np.float32)
    if x0.ndim == 3 and x0.shape[1] == 1:
        x0 = x0[:, 0]
    elif x0.ndim == 1:
        x0 = x0[None]
    if x0.ndim != 2 or x0.shape[-1] != STATE_DIM:
        raise ValueError(f"x0: expected shape (B, 37), (B, 1, 37) or (37,), got {tuple(np.shape(x0))}")
    _check_finite("x0", x0)
    if method_of(apply_fn).states_are_rollout:  # Φ starts from x0: it needs an orientation
        _check_quaternions(x0)
    batch = x0.shape[0]
    if cond is not None:
        cond = cond if isinstance(cond, jax.Array) else np.asarray(cond, np.float32)
        if cond.ndim == 1:
            cond = cond[None]
        if cond.ndim != 2 or cond.shape[0] not in (1, batch):
            raise ValueError(f"cond: expected shape ({batch}, C), (1, C) or (C,), got {tuple(cond.shape)}")
        _check_finite("cond", cond)
    rng = _default_key() if rng is None else rng
    fn = make_sampler(apply_fn, rollout, int(horizon), int(ode_steps), actions_only)
    sigma = np.float32(np.nan if sigma is None else sigma)
    if normalizer is not None:
        params = set_normalizer(params, normalizer)
    try:
        return fn(params, x0, cond, rng, sigma)
    except (flax.errors.ScopeParamShapeError, flax.errors.ScopeParamNotFoundError) as e:
        raise ValueError(_size_mismatch(apply_fn, params, e)) from None


def _size_mismatch(apply_fn, params, error) -> str:
    """One line saying which weight's size differs between ``params`` and the model (Flax says it in ten)."""
    owner = getattr(apply_fn, "__self__", None)
    sizes = ", ".join(
        f"{k} {getattr(owner, k)}" for k in ("d_model", "n_heads", "depth") if hasattr(owner, k)
    )
    detail = " ".join(str(error).split("(https")[0].split())
    return (
        f"params do not fit this model ({sizes}): {detail}; the checkpoint's sizes are in "
        "load_checkpoint(path)['model_config'] (build the model with "
        "create_action_predictor(**ckpt['model_config']))"
    )


_DEFAULT_KEY: list = []


def _default_key() -> jax.Array:
    """PRNGKey(0), made once (an eager op costs ~5 % of a B = 1 sampler call)."""
    if not _DEFAULT_KEY:
        _DEFAULT_KEY.append(jax.random.PRNGKey(0))
    return _DEFAULT_KEY[0]


def _check_finite(name: str, value) -> None:
    if isinstance(value, jax.core.Tracer):
        return
    arr = np.asarray(value)
    if not np.all(np.isfinite(arr)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(f"{name}: contains NaN or inf (first at index {bad}, value {arr[bad]})")


def _check_quaternions(x0) -> None:
    """A zero base quaternion has no orientation to normalise: refuse it rather than return NaN."""
    if isinstance(x0, jax.core.Tracer):
        return
    norms = np.linalg.norm(np.asarray(x0)[:, 3:7], axis=-1)
    if np.any(norms < 1e-6):
        i = int(np.argmax(norms < 1e-6))
        raise ValueError(
            f"x0: initial state {i} has a zero base quaternion (dims 3:7, w x y z); give a unit quaternion, "
            "e.g. 1 0 0 0 for upright"
        )
