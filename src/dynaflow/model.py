"""The action predictor D_θ(X_t, c, t): a 1-D Diffusion Transformer with adaLN-Zero (Flax Linen).

Input: a (noisy) state trajectory ``X_t`` of ``H + 1`` states in physical units, the flow time ``t`` and
an optional continuous conditioning vector ``c``. Output: ``H`` bounded actions. The model carries its
own input normaliser as a non-trainable ``"normalizer"`` variable collection (mean, std and the
training noise scale), so ``model.apply(params, ...)`` with a checkpoint's params needs nothing else.

Architecture (Peebles & Xie's DiT, 1-D): each state is a token (linear embedding + sinusoidal position
embedding); the flow time goes through a sinusoidal embedding and a Mish MLP; the conditioning goes
through an attention-based embedder (each feature becomes a token, a learned query attends over them);
``depth`` blocks of self-attention + MLP are modulated by (time + conditioning) with adaLN-Zero
(modulation and final layer zero-initialised, so a fresh model outputs the default pose); a final
adaLN layer maps state tokens 1..H to actions ``max_action · tanh(·)``. The model knows nothing of
MuJoCo: it works for any horizon (positions are sinusoidal).

The same backbone serves the baselines trained in the same harness (``method``, see :data:`METHODS`):

* ``"dynaflow"`` — noisy states in, ``H`` actions out (the method; the loss rolls them out through Φ);
* ``"state-fm"`` — noisy states in, the clean states ``X̂`` out (flow matching on states, no simulator);
* ``"state-fm-id"`` — ``state-fm`` plus an inverse-dynamics MLP ``(x_k, x_{k+1}) -> a_k`` (Decision
  Diffuser style), called with ``id_states=X``;
* ``"bc"`` — token 0 is the state x0, tokens 1..H are noisy *actions* ``u_t``; the clean actions out
  (flow matching of action chunks conditioned on x0 and c: behaviour cloning with action labels).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from dynaflow.data import Normalizer, relative_xy

DEFAULT_SIGMA = 1.0  # std of the source distribution X0 ~ N(x0, σ²I), in normalised units
METHODS = ("dynaflow", "state-fm", "state-fm-id", "bc")


def sinusoidal_embedding(x: jax.Array, dim: int, max_period: float = 10_000.0) -> jax.Array:
    """Sinusoidal features of a scalar per row: ``(...,)`` -> ``(..., dim)``."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = x[..., None].astype(jnp.float32) * freqs
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


def mish(x: jax.Array) -> jax.Array:
    return x * jnp.tanh(jax.nn.softplus(x))


def modulate(x: jax.Array, shift: jax.Array, scale: jax.Array) -> jax.Array:
    return x * (1.0 + scale[:, None, :]) + shift[:, None, :]


class TimeEmbedder(nn.Module):
    """t in [0, 1] -> sinusoidal features (t scaled by 1000, as in DiT) -> Mish MLP -> d_model."""

    d_model: int
    freq_dim: int = 256

    @nn.compact
    def __call__(self, t: jax.Array) -> jax.Array:
        h = sinusoidal_embedding(t * 1000.0, self.freq_dim)
        h = mish(nn.Dense(self.d_model, name="fc1")(h))
        return nn.Dense(self.d_model, name="fc2")(h)


class ConditionEmbedder(nn.Module):
    """Continuous conditioning c (B, C) -> (B, d_model) by attention pooling over per-feature tokens.

    Feature i becomes the token ``c_i · w_i + b_i`` (learned w_i, b_i), so the model sees which feature
    holds which value and can weigh them by content; a learned query attends over the C tokens."""

    d_model: int
    n_heads: int

    @nn.compact
    def __call__(self, cond: jax.Array) -> jax.Array:
        c = cond.shape[-1]
        w = self.param("feature_w", nn.initializers.normal(0.02), (c, self.d_model))
        b = self.param("feature_b", nn.initializers.normal(0.02), (c, self.d_model))
        tokens = cond[..., None] * w + b  # (B, C, d)
        query = self.param("query", nn.initializers.normal(0.02), (1, 1, self.d_model))
        query = jnp.broadcast_to(query, (cond.shape[0], 1, self.d_model))
        pooled = nn.MultiHeadDotProductAttention(num_heads=self.n_heads, name="attn")(query, tokens)[:, 0]
        h = mish(nn.Dense(self.d_model, name="fc1")(pooled))
        return nn.Dense(self.d_model, name="fc2")(h)


class DiTBlock(nn.Module):
    """Self-attention + MLP, each pre-normalised and modulated (shift, scale, gate) by adaLN-Zero."""

    d_model: int
    n_heads: int
    dropout: float
    mlp_ratio: float = 4.0

    @nn.compact
    def __call__(self, x: jax.Array, c: jax.Array, train: bool) -> jax.Array:
        mod = nn.Dense(6 * self.d_model, kernel_init=nn.initializers.zeros, name="adaLN")(nn.silu(c))
        shift1, scale1, gate1, shift2, scale2, gate2 = jnp.split(mod, 6, axis=-1)
        h = modulate(nn.LayerNorm(use_bias=False, use_scale=False, epsilon=1e-6)(x), shift1, scale1)
        h = nn.MultiHeadDotProductAttention(
            num_heads=self.n_heads, dropout_rate=self.dropout, deterministic=not train, name="attn"
        )(h, h)
        x = x + gate1[:, None, :] * h
        h = modulate(nn.LayerNorm(use_bias=False, use_scale=False, epsilon=1e-6)(x), shift2, scale2)
        h = nn.gelu(nn.Dense(int(self.d_model * self.mlp_ratio), name="mlp_in")(h))
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
        h = nn.Dense(self.d_model, name="mlp_out")(h)
        return x + gate2[:, None, :] * h


class InverseDynamics(nn.Module):
    """(x_k, x_{k+1}) -> a_k: an MLP on the pair's normalised states (``state-fm-id``'s action head)."""

    action_dim: int = 12
    hidden: int = 256
    max_action: float = 2.0

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        h = jnp.concatenate([z[:, :-1], z[:, 1:] - z[:, :-1]], axis=-1)
        for i in range(2):
            h = mish(nn.Dense(self.hidden, name=f"fc{i}")(h))
        return self.max_action * jnp.tanh(nn.Dense(self.action_dim, name="out")(h))


class ActionPredictor(nn.Module):
    """D_θ(X_t, c, t) -> U (and the baselines' heads, by ``method``).

    ``x_t (B, H+1, state_dim)``, ``t (B,)`` or scalar, ``cond (B, C)`` or None -> ``(B, H, action_dim)``
    for ``dynaflow``; the clean states ``(B, H+1, state_dim)`` (row 0 = x0) for ``state-fm(-id)``; for
    ``bc`` only row 0 of ``x_t`` is read and ``u_t (B, H, action_dim)`` are the noisy actions.
    ``id_states (B, T, state_dim)`` (``state-fm-id`` only) returns the inverse-dynamics actions
    ``(B, T-1, action_dim)`` instead."""

    state_dim: int = 37
    action_dim: int = 12
    d_model: int = 384
    n_heads: int = 6
    depth: int = 3
    dropout: float = 0.1
    cond_dim: int | None = None
    max_action: float = 2.0
    mlp_ratio: float = 4.0
    method: str = "dynaflow"

    @nn.compact
    def __call__(
        self,
        x_t: jax.Array,
        t: jax.Array,
        cond: jax.Array | None = None,
        train: bool = False,
        u_t: jax.Array | None = None,
        id_states: jax.Array | None = None,
    ):
        if self.method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {self.method!r}")
        if x_t.ndim != 3 or x_t.shape[-1] != self.state_dim or x_t.shape[1] < 2:
            raise ValueError(
                f"x_t: expected shape (B, H+1, {self.state_dim}) with H >= 1, got {tuple(x_t.shape)}"
            )
        batch = x_t.shape[0]
        if (cond is None) != (self.cond_dim is None):
            raise ValueError(
                f"cond: this model was built with cond_dim={self.cond_dim}, got "
                f"{'None' if cond is None else tuple(cond.shape)}"
            )
        if cond is not None and (cond.ndim != 2 or cond.shape != (batch, self.cond_dim)):
            raise ValueError(f"cond: expected shape ({batch}, {self.cond_dim}), got {tuple(cond.shape)}")

        ident = Normalizer.identity()
        mean = self.variable("normalizer", "mean", lambda: jnp.asarray(ident.mean)).value
        std = self.variable("normalizer", "std", lambda: jnp.asarray(ident.std)).value
        self.variable("normalizer", "sigma", lambda: jnp.asarray(DEFAULT_SIGMA, jnp.float32))
        if self.method == "state-fm-id":
            idm = InverseDynamics(self.action_dim, max_action=self.max_action, name="idm")
            if id_states is not None:
                return idm((relative_xy(id_states.astype(jnp.float32)) - mean) / std)
            if self.is_initializing():
                idm((relative_xy(x_t.astype(jnp.float32)) - mean) / std)
        x = (relative_xy(x_t.astype(jnp.float32)) - mean) / std

        n_tok = x.shape[1]
        pos = sinusoidal_embedding(jnp.arange(n_tok, dtype=jnp.float32), self.d_model)
        if self.method == "bc":
            if u_t is None:
                u_t = jnp.zeros((batch, n_tok - 1, self.action_dim), jnp.float32)
            if u_t.shape != (batch, n_tok - 1, self.action_dim):
                raise ValueError(
                    f"u_t: expected shape ({batch}, {n_tok - 1}, {self.action_dim}), got {tuple(u_t.shape)}"
                )
            tokens = jnp.concatenate(
                [
                    nn.Dense(self.d_model, name="state_embed")(x[:, :1]),
                    nn.Dense(self.d_model, name="action_embed")(u_t.astype(jnp.float32)),
                ],
                axis=1,
            )
            h = tokens + pos[None]
        else:
            h = nn.Dense(self.d_model, name="state_embed")(x) + pos[None]

        t = jnp.broadcast_to(jnp.asarray(t, jnp.float32).reshape(-1), (batch,))
        c = TimeEmbedder(self.d_model, name="time_embed")(t)
        if cond is not None:
            c = c + ConditionEmbedder(self.d_model, self.n_heads, name="cond_embed")(cond.astype(jnp.float32))

        for i in range(self.depth):
            h = DiTBlock(self.d_model, self.n_heads, self.dropout, self.mlp_ratio, name=f"block_{i}")(
                h, c, train
            )

        shift, scale = jnp.split(
            nn.Dense(2 * self.d_model, kernel_init=nn.initializers.zeros, name="final_adaLN")(nn.silu(c)),
            2,
            -1,
        )
        h = modulate(nn.LayerNorm(use_bias=False, use_scale=False, epsilon=1e-6)(h[:, 1:]), shift, scale)
        if self.method in ("state-fm", "state-fm-id"):
            # clean states, normalised units -> physical (x, y back relative to x0; row 0 is x0 itself)
            z = nn.Dense(self.state_dim, kernel_init=nn.initializers.zeros, name="final")(h)
            X = z * std + mean
            X = X.at[..., 0:2].add(x_t[:, :1, 0:2].astype(jnp.float32))
            return jnp.concatenate([x_t[:, :1].astype(jnp.float32), X], axis=1)
        u = nn.Dense(self.action_dim, kernel_init=nn.initializers.zeros, name="final")(h)
        return self.max_action * jnp.tanh(u)


def create_action_predictor(
    state_dim: int = 37,
    action_dim: int = 12,
    horizon: int = 16,
    d_model: int = 384,
    n_heads: int = 6,
    depth: int = 3,
    dropout: float = 0.1,
    cond_dim: int | None = None,
    rng: jax.Array | None = None,
    max_action: float = 2.0,
    mlp_ratio: float = 4.0,
    method: str = "dynaflow",
) -> tuple[ActionPredictor, dict]:
    """Build the DiT action predictor and initialise its variables.

    Returns ``(model, params)``; ``params`` is the full variable dict (``"params"`` and the
    ``"normalizer"`` collection, identity until training fits it), ready for
    ``model.apply(params, x_t, t, cond)`` -> ``(B, H, action_dim)``. The model accepts any horizon;
    ``horizon`` only shapes the dummy input used for initialisation. ``method`` picks the head (see
    :data:`METHODS`; the baselines share the backbone)."""
    if d_model % n_heads:
        raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout: expected a value in [0, 1), got {dropout}")
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    model = ActionPredictor(
        state_dim=state_dim,
        action_dim=action_dim,
        d_model=d_model,
        n_heads=n_heads,
        depth=depth,
        dropout=dropout,
        cond_dim=cond_dim,
        max_action=max_action,
        mlp_ratio=mlp_ratio,
        method=method,
    )
    rng = jax.random.PRNGKey(0) if rng is None else rng
    x = jnp.zeros((1, horizon + 1, state_dim), jnp.float32).at[:, :, 3].set(1.0)
    cond = None if cond_dim is None else jnp.zeros((1, cond_dim), jnp.float32)
    params = jax.jit(model.init)(rng, x, jnp.zeros((1,)), cond)
    return model, dict(params)


def set_normalizer(params: dict, normalizer: Normalizer, sigma: float | None = None) -> dict:
    """Return ``params`` with its ``"normalizer"`` collection set (fitted statistics, noise scale)."""
    norm = dict(params.get("normalizer", {}))
    norm["mean"] = jnp.asarray(normalizer.mean, jnp.float32)
    norm["std"] = jnp.asarray(normalizer.std, jnp.float32)
    if sigma is not None:
        norm["sigma"] = jnp.asarray(sigma, jnp.float32)
    return {**params, "normalizer": norm}


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
    "method",
)


def model_config(model: ActionPredictor, horizon: int) -> dict:
    """The JSON description of a model (what a checkpoint stores to rebuild it)."""
    cfg = {name: getattr(model, name) for name in MODEL_FIELDS}
    cfg["horizon"] = int(horizon)
    return cfg


def model_kwargs(cfg: dict) -> dict:
    """``ActionPredictor`` keyword arguments from a stored model config (unknown keys are ignored)."""
    kwargs = {name: cfg[name] for name in MODEL_FIELDS if name in cfg}
    for name in ("d_model", "n_heads", "depth"):
        if name not in kwargs:
            raise KeyError(f"model config lacks '{name}'")
    return {**{f: ActionPredictor.__dataclass_fields__[f].default for f in MODEL_FIELDS}, **kwargs}
