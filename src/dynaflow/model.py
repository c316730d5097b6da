"""The network D_θ(X_t, c, t): a 1-D Diffusion Transformer with adaLN-Zero (Flax Linen).

Input: a (noisy) state trajectory ``X_t`` of ``H + 1`` states in physical units, the flow time ``t`` and
an optional continuous conditioning vector ``c``. What the tokens are and what comes out is the
*method's* business (:mod:`dynaflow.methods`: DynaFlow's head outputs ``H`` bounded actions); this module
holds the backbone they share. The model carries its own input normaliser as a non-trainable
``"normalizer"`` variable collection (mean, std and the training noise scale), so
``model.apply(params, ...)`` with a checkpoint's params needs nothing else.

Architecture (Peebles & Xie's DiT, 1-D): each state is a token (linear embedding + sinusoidal position
embedding); the flow time goes through a sinusoidal embedding and a Mish MLP; the conditioning goes
through an attention-based embedder (each feature becomes a token, a learned query attends over them);
``depth`` blocks of self-attention + MLP are modulated by (time + conditioning) with adaLN-Zero
(modulation and final layer zero-initialised, so a fresh model outputs the default pose); a final
adaLN layer modulates tokens 1..H for the method's output layer. The model knows nothing of MuJoCo: it
works for any horizon (positions are sinusoidal).
"""

from __future__ import annotations

import math
from typing import Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp

from dynaflow.data.windows import Normalizer, relative_xy
from dynaflow.robots.go2 import ACTION_DIM, STATE_DIM

DEFAULT_SIGMA = 1.0  # std of the source distribution X0 ~ N(x0, σ²I), in normalised units


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

    action_dim: int = ACTION_DIM
    hidden: int = 256
    max_action: float = 2.0

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        h = jnp.concatenate([z[:, :-1], z[:, 1:] - z[:, :-1]], axis=-1)
        for i in range(2):
            h = mish(nn.Dense(self.hidden, name=f"fc{i}")(h))
        return self.max_action * jnp.tanh(nn.Dense(self.action_dim, name="out")(h))


class Head(Protocol):
    """What a method puts around the backbone (see :mod:`dynaflow.methods`): ``name`` (stored in
    checkpoints) and ``forward``, run inside :class:`ActionPredictor`'s call, which builds the method's own
    layers with :func:`trunk` between them."""

    name: str

    def forward(self, net: ActionPredictor, x_t, t, cond, train: bool, mean, std, **inputs): ...


class ActionPredictor(nn.Module):
    """D_θ(X_t, c, t): the shared backbone with a method's head (``method``, a :mod:`dynaflow.methods`
    object; DynaFlow's returns actions ``(B, H, action_dim)``).

    ``x_t (B, H+1, state_dim)`` in physical units, ``t (B,)`` or scalar, ``cond (B, C)`` or None; the
    method may take more keyword ``inputs`` (``u_t`` for ``bc``, ``id_states`` for ``state-fm-id``)."""

    method: Head
    state_dim: int = STATE_DIM
    action_dim: int = ACTION_DIM
    d_model: int = 384
    n_heads: int = 6
    depth: int = 3
    dropout: float = 0.1
    cond_dim: int | None = None
    max_action: float = 2.0
    mlp_ratio: float = 4.0

    @nn.compact
    def __call__(
        self, x_t: jax.Array, t: jax.Array, cond: jax.Array | None = None, train: bool = False, **inputs
    ):
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
        return self.method.forward(self, x_t, t, cond, train, mean, std, **inputs)


def normalise(X: jax.Array, mean: jax.Array, std: jax.Array) -> jax.Array:
    """Trajectories in the model's units: x, y relative to the first state, then z-scored."""
    return (relative_xy(X.astype(jnp.float32)) - mean) / std


def trunk(net: ActionPredictor, tokens: jax.Array, t: jax.Array, cond: jax.Array | None, train: bool):
    """The backbone, built inside ``net``'s call: positions + ``tokens (B, T, d)``, the time and
    conditioning embedding, ``depth`` adaLN-Zero blocks, and the final adaLN modulation of tokens 1..T-1
    (what a method's output layer reads)."""
    batch, n_tok = tokens.shape[:2]
    h = tokens + sinusoidal_embedding(jnp.arange(n_tok, dtype=jnp.float32), net.d_model)[None]
    t = jnp.broadcast_to(jnp.asarray(t, jnp.float32).reshape(-1), (batch,))
    c = TimeEmbedder(net.d_model, name="time_embed")(t)
    if cond is not None:
        c = c + ConditionEmbedder(net.d_model, net.n_heads, name="cond_embed")(cond.astype(jnp.float32))
    for i in range(net.depth):
        h = DiTBlock(net.d_model, net.n_heads, net.dropout, net.mlp_ratio, name=f"block_{i}")(h, c, train)
    shift, scale = jnp.split(
        nn.Dense(2 * net.d_model, kernel_init=nn.initializers.zeros, name="final_adaLN")(nn.silu(c)), 2, -1
    )
    return modulate(nn.LayerNorm(use_bias=False, use_scale=False, epsilon=1e-6)(h[:, 1:]), shift, scale)


def set_normalizer(params: dict, normalizer: Normalizer, sigma: float | None = None) -> dict:
    """Return ``params`` with its ``"normalizer"`` collection set (fitted statistics, noise scale)."""
    norm = dict(params.get("normalizer", {}))
    norm["mean"] = jnp.asarray(normalizer.mean, jnp.float32)
    norm["std"] = jnp.asarray(normalizer.std, jnp.float32)
    if sigma is not None:
        norm["sigma"] = jnp.asarray(sigma, jnp.float32)
    return {**params, "normalizer": norm}
