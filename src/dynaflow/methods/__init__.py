"""The methods trained by one harness (``dynaflow train --method ...``), each one object that knows its
head, its loss, the data it needs and its sampler (:class:`~dynaflow.methods.base.Method`).

========================  ===================================================================  =======
method                    what it learns                                                       actions
========================  ===================================================================  =======
``dynaflow`` (default)    actions from noisy states, loss on their rollout through Φ (Eq. 4)   no
``state-fm``              the clean states directly (same DiT, path and loss, no simulator)    no
``state-fm-id``           ``state-fm`` + an inverse-dynamics MLP on recorded actions           yes
``bc``                    flow matching of action chunks conditioned on x0 and c               yes
========================  ===================================================================  =======

("actions": whether the method needs recorded actions to learn.) Adding a method: a module with a
:class:`~dynaflow.methods.base.Method` subclass, and its line in :data:`METHODS`.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from dynaflow.methods.base import Method
from dynaflow.methods.bc import BC
from dynaflow.methods.dynaflow import DynaFlow
from dynaflow.methods.state_fm import StateFM, StateFMID
from dynaflow.model import ActionPredictor
from dynaflow.robots.go2 import ACTION_DIM, STATE_DIM

#: Every method, by the name ``--method`` and checkpoints use.
METHODS: dict[str, Method] = {m.name: m for m in (DynaFlow(), StateFM(), StateFMID(), BC())}
METHOD_NAMES = tuple(METHODS)


def get_method(name: str | Method) -> Method:
    """The method called ``name`` (a :class:`Method` passes through)."""
    if isinstance(name, Method):
        return name
    if name not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {name!r}")
    return METHODS[name]


#: The architecture fields a checkpoint stores to rebuild a model (with ``method`` and ``horizon``).
MODEL_FIELDS = (
    "state_dim",
    "action_dim",
    "d_model",
    "n_heads",
    "depth",
    "dropout",
    "cond_dim",
    "max_action",
    "mlp_ratio",
)


def build_model(
    method: str | Method = "dynaflow",
    d_model: int = 384,
    n_heads: int = 6,
    depth: int = 3,
    dropout: float = 0.1,
    cond_dim: int | None = None,
    max_action: float = 2.0,
    mlp_ratio: float = 4.0,
    state_dim: int = STATE_DIM,
    action_dim: int = ACTION_DIM,
) -> ActionPredictor:
    """The action predictor for ``method``, its sizes checked (one-line errors naming the argument)."""
    for name, value in (("d_model", d_model), ("n_heads", n_heads), ("depth", depth)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    if d_model % n_heads:
        raise ValueError(f"d_model: {d_model} must be divisible by n_heads ({n_heads})")
    if not (isinstance(dropout, int | float) and 0.0 <= dropout < 1.0):
        raise ValueError(f"dropout: expected a value in [0, 1), got {dropout!r}")
    if cond_dim is not None and (isinstance(cond_dim, bool) or not isinstance(cond_dim, int) or cond_dim < 1):
        raise ValueError(f"cond_dim: expected a positive integer or None, got {cond_dim!r}")
    if not (isinstance(max_action, int | float) and max_action > 0):
        raise ValueError(f"max_action: expected a number > 0, got {max_action!r}")
    if not (isinstance(mlp_ratio, int | float) and mlp_ratio > 0):
        raise ValueError(f"mlp_ratio: expected a number > 0, got {mlp_ratio!r}")
    return ActionPredictor(
        method=get_method(method),
        state_dim=state_dim,
        action_dim=action_dim,
        d_model=d_model,
        n_heads=n_heads,
        depth=depth,
        dropout=float(dropout),
        cond_dim=cond_dim,
        max_action=float(max_action),
        mlp_ratio=float(mlp_ratio),
    )


def create_action_predictor(
    state_dim: int = STATE_DIM,
    action_dim: int = ACTION_DIM,
    horizon: int = 16,
    d_model: int = 384,
    n_heads: int = 6,
    depth: int = 3,
    dropout: float = 0.1,
    cond_dim: int | None = None,
    rng: jax.Array | None = None,
    max_action: float = 2.0,
    mlp_ratio: float = 4.0,
    method: str | Method = "dynaflow",
) -> tuple[ActionPredictor, dict]:
    """Build the DiT action predictor and initialise its variables.

    Returns ``(model, params)``; ``params`` is the full variable dict (``"params"`` and the
    ``"normalizer"`` collection, identity until training fits it), ready for
    ``model.apply(params, x_t, t, cond)`` -> ``(B, H, action_dim)``. The model accepts any horizon;
    ``horizon`` only shapes the dummy input used for initialisation. ``method`` picks the head
    (:data:`METHODS`; the baselines share the backbone)."""
    model = build_model(
        method, d_model, n_heads, depth, dropout, cond_dim, max_action, mlp_ratio, state_dim, action_dim
    )
    rng = jax.random.PRNGKey(0) if rng is None else rng
    x = jnp.zeros((1, horizon + 1, state_dim), jnp.float32).at[:, :, 3].set(1.0)
    cond = None if cond_dim is None else jnp.zeros((1, cond_dim), jnp.float32)
    params = jax.jit(model.init)(rng, x, jnp.zeros((1,)), cond)
    return model, dict(params)


def model_config(model: ActionPredictor, horizon: int) -> dict:
    """The JSON description of a model (what a checkpoint stores to rebuild it)."""
    cfg = {name: getattr(model, name) for name in MODEL_FIELDS}
    cfg["method"] = model.method.name
    cfg["horizon"] = int(horizon)
    return cfg


def model_from_config(cfg: Mapping) -> ActionPredictor:
    """The model a stored :func:`model_config` describes (unknown keys are ignored; a missing size or a
    wrong value raises a one-line ``ValueError`` / ``KeyError`` naming it)."""
    for name in ("d_model", "n_heads", "depth"):
        if name not in cfg:
            raise KeyError(f"model config lacks '{name}'")
    kwargs = {name: cfg[name] for name in MODEL_FIELDS if name in cfg}
    return build_model(cfg.get("method", "dynaflow"), **kwargs)
