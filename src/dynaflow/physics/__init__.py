"""The differentiable simulator Φ(x0, U) -> X and its MuJoCo C replay, by concern:

* :mod:`~dynaflow.physics.model` — loading and checking the Go2 MJCF, the lighter model MJX simulates;
* :mod:`~dynaflow.physics.implicit` — MJX's step with a cheaper reverse-mode gradient;
* :mod:`~dynaflow.physics.rollout` — :class:`Rollout` and :func:`create_go2_rollout` (Φ itself);
* :mod:`~dynaflow.physics.replay` — the control law in MuJoCo C, the reference simulator, upright checks;
* :mod:`~dynaflow.physics.check` — the ``dynaflow physics`` self-check.

State layout, names and paths: :mod:`dynaflow.robots.go2`. Physics knows nothing of learning.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dynaflow.physics.model import check_go2_model, home_qpos, load_go2_model, simulation_model
    from dynaflow.physics.replay import (
        HEIGHT_MIN,
        UPRIGHT_MIN,
        random_smooth_actions,
        reference_model,
        replay_in_mujoco,
        stays_up,
        upright,
    )
    from dynaflow.physics.rollout import Rollout, create_go2_rollout, local_device

#: Where each public name lives. They are imported on first use (PEP 562), so a program that only needs
#: the MuJoCo model (``dynaflow data import`` reads the joint ranges) does not import JAX.
_HOMES = {
    "check_go2_model": "model",
    "home_qpos": "model",
    "load_go2_model": "model",
    "simulation_model": "model",
    "HEIGHT_MIN": "replay",
    "UPRIGHT_MIN": "replay",
    "random_smooth_actions": "replay",
    "reference_model": "replay",
    "replay_in_mujoco": "replay",
    "stays_up": "replay",
    "upright": "replay",
    "Rollout": "rollout",
    "create_go2_rollout": "rollout",
    "local_device": "rollout",
}

__all__ = [
    "HEIGHT_MIN",
    "UPRIGHT_MIN",
    "Rollout",
    "check_go2_model",
    "create_go2_rollout",
    "home_qpos",
    "load_go2_model",
    "local_device",
    "random_smooth_actions",
    "reference_model",
    "replay_in_mujoco",
    "simulation_model",
    "stays_up",
    "upright",
]


def __getattr__(name: str) -> object:
    """The public names, imported from their module on first use."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
