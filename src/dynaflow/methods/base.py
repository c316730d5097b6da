"""What every method is: one object that knows its network head, its loss, what data it needs and how it
samples. Adding a method is one new module here (and its line in :data:`dynaflow.methods.METHODS`).

A method is a frozen, field-less dataclass (hashable: it is a field of the Flax module, and samplers are
cached per module). Its ``forward`` runs inside :class:`dynaflow.model.ActionPredictor`'s compact call and
builds the method's own layers around :func:`dynaflow.model.trunk`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import jax

Sampler = Callable[..., tuple[jax.Array, jax.Array | None]]


@dataclass(frozen=True, repr=False)
class Method:
    """The interface; see :mod:`dynaflow.methods.dynaflow` for the method itself."""

    name: ClassVar[str]
    #: one line for ``--help`` and reports
    summary: ClassVar[str]
    #: learns from recorded actions (its training data must have them)
    needs_actions: ClassVar[bool] = False
    #: its samples come with actions U (a states-only generator has none)
    has_actions: ClassVar[bool] = True
    #: its states are, by construction, the rollout of its actions
    states_are_rollout: ClassVar[bool] = False

    def __repr__(self) -> str:
        return f"<method {self.name}>"

    def forward(self, net, x_t, t, cond, train: bool, mean, std, **inputs):
        """The network's output for this method (runs inside ``net``'s compact call)."""
        raise NotImplementedError

    def loss(
        self,
        apply_fn: Callable,
        variables: Mapping,
        rollout: Callable,
        X1: jax.Array,
        cond: jax.Array | None,
        rng: jax.Array,
        weights,
        time_distribution: str,
        train: bool,
        A1: jax.Array | None = None,
    ) -> tuple[jax.Array, dict]:
        """``(loss, {"per_group": {...}})`` on demonstration windows ``X1`` (and recorded actions ``A1``
        when :attr:`needs_actions`)."""
        raise NotImplementedError

    def sample(self, apply_fn: Callable, rollout: Callable, horizon: int, ode_steps: int) -> Sampler:
        """A traceable ``f(params, x0 (B, 37), cond (B, C) or None, rng, sigma) -> (X, U or None)``
        (``sigma`` NaN: the σ stored in ``params``); :func:`dynaflow.sampling.make_sampler` jits and
        caches it."""
        raise NotImplementedError
