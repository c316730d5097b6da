"""DynaFlow: dynamics-embedded flow matching for physically consistent Go2 motion generation.

The public API (the names the original implementation's users know): :func:`create_go2_rollout` (Φ),
:func:`create_action_predictor` (D_θ), :func:`sample_trajectory`, :func:`load_checkpoint`, and
:class:`DynaFlowPolicy` (a checkpoint, its rollout and its sampler in one object).

Data flows one way through the packages: ``data`` → ``model`` + ``physics`` → ``flow`` → ``methods`` →
``train`` → ``checkpoint`` → ``policy`` / ``generate`` → ``evaluate`` → ``render`` / ``demo`` → ``cli``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from dynaflow.version import __version__

if TYPE_CHECKING:
    from dynaflow.checkpoint import load_checkpoint
    from dynaflow.methods import create_action_predictor
    from dynaflow.physics import Rollout, create_go2_rollout, replay_in_mujoco
    from dynaflow.policy import DynaFlowPolicy
    from dynaflow.sampling import sample_trajectory

#: Where each public name lives. They are imported on first use (PEP 562): ``import dynaflow`` (which
#: every ``dynaflow.*`` import runs first) stays free of JAX, so commands that need none start fast.
_HOMES = {
    "load_checkpoint": "dynaflow.checkpoint",
    "create_action_predictor": "dynaflow.methods",
    "Rollout": "dynaflow.physics",
    "create_go2_rollout": "dynaflow.physics",
    "replay_in_mujoco": "dynaflow.physics",
    "DynaFlowPolicy": "dynaflow.policy",
    "sample_trajectory": "dynaflow.sampling",
}

__all__ = [
    "DynaFlowPolicy",
    "Rollout",
    "create_action_predictor",
    "create_go2_rollout",
    "load_checkpoint",
    "replay_in_mujoco",
    "sample_trajectory",
    "__version__",
]


def __getattr__(name: str) -> object:
    """The public API, imported from its module on first use."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
