"""DynaFlow: dynamics-embedded flow matching for physically consistent Go2 motion generation."""

from dynaflow.physics import Rollout, create_go2_rollout, replay_in_mujoco

__version__ = "0.1.0"
__all__ = ["Rollout", "create_go2_rollout", "replay_in_mujoco", "__version__"]
