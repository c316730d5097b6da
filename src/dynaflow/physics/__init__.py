"""The differentiable simulator Φ(x0, U) -> X and its MuJoCo C replay, by concern:

* :mod:`~dynaflow.physics.model` — loading and checking the Go2 MJCF, the lighter model MJX simulates;
* :mod:`~dynaflow.physics.implicit` — MJX's step with a cheaper reverse-mode gradient;
* :mod:`~dynaflow.physics.rollout` — :class:`Rollout` and :func:`create_go2_rollout` (Φ itself);
* :mod:`~dynaflow.physics.replay` — the control law in MuJoCo C, the reference simulator, upright checks;
* :mod:`~dynaflow.physics.check` — the ``dynaflow physics`` self-check.

State layout, names and paths: :mod:`dynaflow.robots.go2`. Physics knows nothing of learning.
"""

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
