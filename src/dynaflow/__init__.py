"""DynaFlow: dynamics-embedded flow matching for physically consistent Go2 motion generation.

The public API (the names the original implementation's users know): :func:`create_go2_rollout` (Φ),
:func:`create_action_predictor` (D_θ), :func:`sample_trajectory`, :func:`load_checkpoint`, and
:class:`DynaFlowPolicy` (a checkpoint, its rollout and its sampler in one object).

Data flows one way through the packages: ``data`` → ``model`` + ``physics`` → ``flow`` → ``methods`` →
``train`` → ``checkpoint`` → ``policy`` / ``generate`` → ``evaluate`` → ``render`` / ``demo`` → ``cli``.
"""

from dynaflow.checkpoint import load_checkpoint
from dynaflow.methods import create_action_predictor
from dynaflow.physics import Rollout, create_go2_rollout, replay_in_mujoco
from dynaflow.policy import DynaFlowPolicy
from dynaflow.sampling import sample_trajectory
from dynaflow.version import __version__  # noqa: E402

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
