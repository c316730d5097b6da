"""The DiT action predictor: shapes, bounded actions, adaLN-Zero initialisation, conditioning checks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from dynaflow.methods import create_action_predictor


@pytest.fixture(scope="module")
def tiny_model():
    return create_action_predictor(d_model=32, n_heads=2, depth=1, cond_dim=4, horizon=4, dropout=0.1)


def test_model_shapes_bounds_and_zero_init(tiny_model):
    model, params = tiny_model
    apply = jax.jit(model.apply, static_argnames="train")  # one compile instead of one per eager op
    x = jnp.zeros((3, 7, 37)).at[..., 3].set(1.0)
    u = apply(params, x, jnp.array([0.0, 0.5, 0.9]), jnp.ones((3, 4)))
    assert u.shape == (3, 6, 12)  # any horizon: 7 states -> 6 actions
    assert float(jnp.abs(u).max()) == 0.0  # adaLN-Zero: a fresh model commands the default pose
    p2 = jax.tree.map(lambda a: a + 0.3, params)
    u = apply(p2, x, 0.5, jnp.ones((3, 4)), train=True, rngs={"dropout": jax.random.PRNGKey(0)})
    assert float(jnp.abs(u).max()) <= model.max_action
    with pytest.raises(ValueError, match=r"cond: this model was built with cond_dim=4, got None"):
        apply(params, x, 0.5, None)
    with pytest.raises(ValueError, match=r"x_t: expected shape \(B, H\+1, 37\)"):
        apply(params, x[..., :30], 0.5, jnp.ones((3, 4)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(d_model=0), "d_model: expected a positive integer, got 0"),
        (dict(n_heads=0), "n_heads: expected a positive integer, got 0"),
        (dict(n_heads=-1), "n_heads: expected a positive integer, got -1"),
        (dict(d_model=30, n_heads=4), r"d_model: 30 must be divisible by n_heads \(4\)"),
        (dict(dropout=1.0), r"dropout: expected a value in \[0, 1\), got 1.0"),
        (dict(cond_dim=0), "cond_dim: expected a positive integer or None, got 0"),
    ],
)
def test_bad_sizes_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        create_action_predictor(**{"d_model": 32, "n_heads": 2, "depth": 1, **kwargs})
