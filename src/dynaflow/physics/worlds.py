"""Changed worlds: the Go2's control law in MuJoCo C models that differ from the one DynaFlow trains in.

A :class:`Perturbation` names one change of the world (solver, floor friction, trunk mass and payload, PD
gains, torque limits, action latency, a push, uneven ground, observation noise); :func:`build_world`
turns it into a :class:`World` that steps the control law like the real robot would: joint targets
reach the motors ``latency`` late, the trunk may be pushed, the floor may be a heightfield. Everything
is seeded, so a named perturbation is the same world on every machine.

:data:`TRANSFER_MATRIX` is the suite ``dynaflow evaluate --transfer`` runs. Each entry changes one
thing against the training simulator (so a cell shows the effect of that change alone); the
``reference`` entry changes the solver only (the converged one of
:func:`~dynaflow.physics.replay.reference_model`).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, replace

import mujoco
import numpy as np

from dynaflow.physics.replay import use_reference_solver
from dynaflow.physics.rollout import Rollout
from dynaflow.robots.go2 import (
    ANGVEL,
    JOINT_VEL,
    JOINTS,
    LINVEL,
    NQ,
    QUAT,
    SCENE_XML,
    STATE_DIM,
    TRUNK_BODY,
)

__all__ = [
    "OBS_NOISE_STD",
    "TRANSFER_MATRIX",
    "Perturbation",
    "World",
    "build_world",
    "noisy_observation",
    "perturbation_by_name",
    "replay_in_world",
]

#: Standard deviations of the observation noise at ``obs_noise=1`` (those of common legged-robot sim-to-real
#: setups): trunk height (m), orientation (rad, a random small rotation), linear velocity (m/s), angular
#: velocity (rad/s), joint angles (rad), joint velocities (rad/s).
OBS_NOISE_STD = {
    "height": 0.01,
    "orientation": 0.05,
    "linvel": 0.1,
    "angvel": 0.2,
    "joint_pos": 0.01,
    "joint_vel": 1.5,
}

TERRAIN_HALF_SIZE = 12.0  # m: the heightfield covers [-12, 12]^2 (10 s at <= 1.2 m/s stays on it)
TERRAIN_CELL = 0.04  # m between heightfield samples
TERRAIN_BUMP_WIDTH = 0.12  # m: standard deviation of the smoothing kernel (bumps ~0.3-0.5 m across)


@dataclass(frozen=True)
class Perturbation:
    """One changed world, relative to the rollout's own model (all defaults: the training simulator).

    ``friction``: the foot-floor sliding friction coefficient (None: the model's, 0.8); ``trunk_mass_scale``
    multiplies the trunk's mass and inertia, ``payload_offset`` (m, trunk frame) shifts its centre of mass;
    ``gain_scale`` multiplies the PD servos' Kp and Kd; ``torque_scale`` their torque limits; ``latency_s``
    delays every joint target (rounded to the physics step); ``push`` is a horizontal force (N, world x, y)
    on the trunk from ``push_at`` s for ``push_seconds``; ``bumps_m`` turns the floor into a heightfield
    of smooth random bumps up to that height; ``obs_noise`` scales :data:`OBS_NOISE_STD` (it only matters
    where something observes the state: closed-loop replanning); ``reference_solver`` uses the converged
    solver of :func:`~dynaflow.physics.replay.reference_model`. ``seed`` fixes the terrain and the noise."""

    name: str
    reference_solver: bool = False
    friction: float | None = None
    trunk_mass_scale: float = 1.0
    payload_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    gain_scale: float = 1.0
    torque_scale: float = 1.0
    latency_s: float = 0.0
    push: tuple[float, float] = (0.0, 0.0)
    push_at: float = 3.0
    push_seconds: float = 0.2
    bumps_m: float = 0.0
    obs_noise: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "friction": self.friction is None or self.friction > 0,
            "trunk_mass_scale": self.trunk_mass_scale > 0,
            "gain_scale": self.gain_scale > 0,
            "torque_scale": self.torque_scale > 0,
            "latency_s": self.latency_s >= 0,
            "push_seconds": self.push_seconds > 0,
            "bumps_m": 0 <= self.bumps_m <= 0.2,
            "obs_noise": self.obs_noise >= 0,
        }
        for key, ok in checks.items():
            value = getattr(self, key)
            if not ok or (value is not None and not np.all(np.isfinite(value))):
                raise ValueError(f"perturbation {self.name!r}: {key}={value!r} is out of range")
        if len(self.payload_offset) != 3 or len(self.push) != 2:
            raise ValueError(f"perturbation {self.name!r}: payload_offset takes 3 numbers and push 2")

    @property
    def observes(self) -> bool:
        """Whether the change only acts on what a controller observes (meaningless for open loop)."""
        return self.obs_noise > 0 and replace(self, name="", obs_noise=0.0, seed=0) == Perturbation("")

    def describe(self) -> str:
        """A short human description: what differs from the training simulator."""
        parts = []
        if self.reference_solver:
            parts.append("converged reference solver")
        if self.friction is not None:
            parts.append(f"floor friction {self.friction:g}")
        if self.trunk_mass_scale != 1.0:
            parts.append(f"trunk mass {100 * (self.trunk_mass_scale - 1):+.0f} %")
        if any(self.payload_offset):
            parts.append(
                "centre of mass offset (" + ", ".join(f"{100 * v:g}" for v in self.payload_offset) + ") cm"
            )
        if self.gain_scale != 1.0:
            parts.append(f"PD gains {100 * (self.gain_scale - 1):+.0f} %")
        if self.torque_scale != 1.0:
            parts.append(f"torque limits {100 * (self.torque_scale - 1):+.0f} %")
        if self.latency_s:
            parts.append(f"{1000 * self.latency_s:g} ms action latency")
        if any(self.push):
            parts.append(f"push {np.hypot(*self.push):g} N at {self.push_at:g} s for {self.push_seconds:g} s")
        if self.bumps_m:
            parts.append(f"uneven ground ({100 * self.bumps_m:g} cm bumps)")
        if self.obs_noise:
            parts.append(f"observation noise x{self.obs_noise:g}")
        return ", ".join(parts) or "the training simulator"

    def as_dict(self) -> dict:
        return {**asdict(self), "description": self.describe()}


#: The transfer suite: the training simulator, then one change each.
TRANSFER_MATRIX: tuple[Perturbation, ...] = (
    Perturbation("nominal"),
    Perturbation("reference", reference_solver=True),
    Perturbation("friction 0.4", friction=0.4),
    Perturbation("friction 1.2", friction=1.2),
    Perturbation("mass -20%", trunk_mass_scale=0.8, payload_offset=(0.03, 0.0, 0.0)),
    Perturbation("mass +20%", trunk_mass_scale=1.2, payload_offset=(0.03, 0.0, 0.0)),
    Perturbation("gains -20%", gain_scale=0.8),
    Perturbation("gains +20%", gain_scale=1.2),
    Perturbation("torque -20%", torque_scale=0.8),
    Perturbation("latency 10 ms", latency_s=0.010),
    Perturbation("latency 20 ms", latency_s=0.020),
    Perturbation("push 30 N", push=(0.0, 30.0)),
    Perturbation("bumps 2 cm", bumps_m=0.02, seed=1),
    Perturbation("obs noise", obs_noise=1.0, seed=2),
)


def perturbation_by_name(name: str) -> Perturbation:
    """The :data:`TRANSFER_MATRIX` entry called ``name`` (one-line error naming the known ones)."""
    for p in TRANSFER_MATRIX:
        if p.name == name:
            return p
    raise ValueError(f"perturbation: unknown {name!r}; known: {', '.join(p.name for p in TRANSFER_MATRIX)}")


def _terrain(seed: int) -> tuple[np.ndarray, int]:
    """Smooth random bumps in [0, 1] on a square grid (rows, cols = n): white noise blurred by a
    Gaussian of ``TERRAIN_BUMP_WIDTH``, rescaled to span [0, 1]."""
    n = int(round(2 * TERRAIN_HALF_SIZE / TERRAIN_CELL)) + 1
    noise = np.random.default_rng(seed).standard_normal((n, n))
    r = int(np.ceil(3 * TERRAIN_BUMP_WIDTH / TERRAIN_CELL))
    x = np.arange(-r, r + 1) * TERRAIN_CELL
    k = np.exp(-0.5 * (x / TERRAIN_BUMP_WIDTH) ** 2)
    k /= k.sum()
    blur = np.apply_along_axis(np.convolve, 0, noise, k, mode="same")
    blur = np.apply_along_axis(np.convolve, 1, blur, k, mode="same")
    blur = (blur - blur.min()) / (blur.max() - blur.min())
    return blur, n


def _model_with_terrain(rollout: Rollout, p: Perturbation) -> mujoco.MjModel:
    """The rollout's scene with its floor plane replaced by a heightfield of bumps up to ``p.bumps_m``."""
    spec = mujoco.MjSpec.from_file(str(rollout.scene_xml or SCENE_XML))
    floor = next((g for g in spec.geoms if g.type == mujoco.mjtGeom.mjGEOM_PLANE), None)
    if floor is None:
        raise ValueError(f"{rollout.scene_xml or SCENE_XML}: uneven ground needs a floor plane to replace")
    heights, n = _terrain(p.seed)
    hfield = spec.add_hfield()
    hfield.name = "dynaflow_bumps"
    hfield.nrow = hfield.ncol = n
    hfield.size = [TERRAIN_HALF_SIZE, TERRAIN_HALF_SIZE, p.bumps_m, 0.1]
    hfield.userdata = heights.ravel().tolist()
    floor.type = mujoco.mjtGeom.mjGEOM_HFIELD
    floor.hfieldname = "dynaflow_bumps"
    model = spec.compile()
    model.opt.timestep = rollout.mj_model.opt.timestep
    return model


@dataclass
class World:
    """A perturbed MuJoCo C model with the control law's stepping: ``reset(x0)``, then ``step(target)`` once
    per control step; ``state()`` is the true 37-D state and ``observe(rng)`` what a noisy sensor reports."""

    perturbation: Perturbation
    model: mujoco.MjModel
    n_substeps: int
    delay: int  # latency in physics steps
    ctrl_dt: float

    def __post_init__(self) -> None:
        self.data = mujoco.MjData(self.model)
        self.trunk = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, TRUNK_BODY)
        self._queue: list[np.ndarray] = []
        self.time = 0.0

    @property
    def latency_s(self) -> float:
        """The latency as simulated (the perturbation's, rounded to the physics step)."""
        return self.delay * self.model.opt.timestep

    def reset(self, x0: np.ndarray) -> None:
        """Start from state ``x0`` (37,); on bumps the trunk starts higher by the bump height (the feet
        settle onto the terrain). Before the first target arrives the servos hold ``x0``'s joint angles."""
        mujoco.mj_resetData(self.model, self.data)
        x = np.asarray(x0, np.float64).copy()
        norm = np.linalg.norm(x[QUAT])
        x[QUAT] = x[QUAT] / norm if norm > 1e-9 else (1.0, 0.0, 0.0, 0.0)
        x[2] += self.perturbation.bumps_m
        self.data.qpos[:] = x[:NQ]
        self.data.qvel[:] = x[NQ:]
        mujoco.mj_forward(self.model, self.data)
        lo, hi = self.model.actuator_ctrlrange.T
        self._queue = [np.clip(x[JOINTS], lo, hi)] * self.delay
        self.time = 0.0

    def step(self, target: np.ndarray) -> np.ndarray:
        """One control step with joint targets ``target`` (12,); returns the new true state."""
        target = np.asarray(target, np.float64)
        force = np.asarray(self.perturbation.push, np.float64)
        dt = self.model.opt.timestep
        for _ in range(self.n_substeps):
            self._queue.append(target)
            self.data.ctrl[:] = self._queue.pop(0)
            p = self.perturbation
            on = any(p.push) and p.push_at <= self.time + 1e-9 < p.push_at + p.push_seconds
            self.data.xfrc_applied[self.trunk, :2] = force if on else 0.0
            mujoco.mj_step(self.model, self.data)
            self.time += dt
        return self.state()

    def state(self) -> np.ndarray:
        return np.concatenate([self.data.qpos, self.data.qvel])

    def observe(self, rng: np.random.Generator) -> np.ndarray:
        """The state as a noisy sensor reports it (the true state when ``obs_noise`` is 0)."""
        return noisy_observation(self.state(), self.perturbation.obs_noise, rng)


def noisy_observation(x: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """``x`` (37,) with Gaussian noise of ``scale`` x :data:`OBS_NOISE_STD` per group; the orientation is
    turned by a random small rotation, so the quaternion stays unit."""
    x = np.asarray(x, np.float64).copy()
    if scale <= 0:
        return x
    s = {k: scale * v for k, v in OBS_NOISE_STD.items()}
    x[2] += rng.normal(0, s["height"])
    rotvec = rng.normal(0, s["orientation"], 3)
    dq = np.zeros(4)
    mujoco.mju_axisAngle2Quat(dq, rotvec / max(np.linalg.norm(rotvec), 1e-12), np.linalg.norm(rotvec))
    q = np.zeros(4)
    mujoco.mju_mulQuat(q, x[QUAT] / np.linalg.norm(x[QUAT]), dq)
    x[QUAT] = q / np.linalg.norm(q)
    x[LINVEL] += rng.normal(0, s["linvel"], 3)
    x[ANGVEL] += rng.normal(0, s["angvel"], 3)
    x[JOINTS] += rng.normal(0, s["joint_pos"], 12)
    x[JOINT_VEL] += rng.normal(0, s["joint_vel"], 12)
    return x


def build_world(rollout: Rollout, p: Perturbation) -> World:
    """The MuJoCo C model of perturbation ``p`` for the rollout's control law (module docstring)."""
    if p.bumps_m:
        model = _model_with_terrain(rollout, p)
    else:
        model = copy.deepcopy(rollout.mj_model)
    n_sub = use_reference_solver(model, rollout) if p.reference_solver else rollout.n_substeps
    if p.friction is not None:
        # the feet carry priority 1, so theirs is the contact's friction; the floor gets it too
        touching = (model.geom_contype | model.geom_conaffinity) != 0
        model.geom_friction[touching, 0] = p.friction
    trunk = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, TRUNK_BODY)
    model.body_mass[trunk] *= p.trunk_mass_scale
    model.body_inertia[trunk] *= p.trunk_mass_scale
    model.body_ipos[trunk] += np.asarray(p.payload_offset)
    model.actuator_gainprm[:, 0] *= p.gain_scale  # position servo: force = kp (target - q) - kv qdot
    model.actuator_biasprm[:, 1:3] *= p.gain_scale
    model.actuator_forcerange *= p.torque_scale
    if p.trunk_mass_scale != 1.0 or any(p.payload_offset):
        mujoco.mj_setConst(model, mujoco.MjData(model))
    delay = int(round(p.latency_s / model.opt.timestep))
    return World(p, model, n_sub, delay, rollout.ctrl_dt)


def replay_in_world(rollout: Rollout, world: World, x0, U) -> np.ndarray:
    """Open loop: run actions ``U`` (T, 12) from ``x0`` (37,) in ``world``; states (T + 1, 37)."""
    U = np.asarray(U, np.float64)
    if U.ndim != 2:
        raise ValueError(f"U: expected shape (T, 12), got {U.shape}")
    world.reset(x0)
    out = np.empty((len(U) + 1, STATE_DIM))
    out[0] = world.state()
    targets = rollout.targets(U)
    for k in range(len(U)):
        out[k + 1] = world.step(targets[k])
    return out
