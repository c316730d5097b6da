"""DynaFlow: dynamics-embedded flow matching for physically consistent Go2 motion generation."""

from dynaflow.checkpoint import load_checkpoint
from dynaflow.flow import sample_trajectory
from dynaflow.model import create_action_predictor
from dynaflow.physics import Rollout, create_go2_rollout, replay_in_mujoco
from dynaflow.policy import DynaFlowPolicy

__version__ = "0.1.0"
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
