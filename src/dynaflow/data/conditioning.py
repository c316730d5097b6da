"""What a gait motion is conditioned on, and the same measured on a motion; NumPy only (no JAX, no MuJoCo).

The gait library's conditioning is ``[vx_cmd, vy_cmd, yaw_rate_cmd, one-hot gait (trot, pace, bound,
pronk)]`` (standing: all zeros). What a trajectory achieves is measured the same way everywhere (the gait
library, the clip importer, the evaluation): the base velocity in the heading frame and the yaw rate,
from :func:`yaw_of` and :func:`heading_velocity`. Closed-loop replanning corrects the command by those
measurements (:class:`CommandHold`, gains :class:`HoldGains`) to hold the commanded heading and speed. Kept
free of JAX so that ``dynaflow data import`` starts in a fraction of a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dynaflow.data.quat import heading
from dynaflow.robots.go2 import LINVEL, QUAT

GAITS = ("trot", "pace", "bound", "pronk")
ALL_GAITS = (*GAITS, "stand")
COND_NAMES = ("vx_cmd", "vy_cmd", "yaw_rate_cmd", *(f"gait_{g}" for g in GAITS))
COND_DIM = len(COND_NAMES)


def yaw_of(X: np.ndarray) -> np.ndarray:
    """Heading (rad) of each state ``(..., 37)``, from its (w, x, y, z) quaternion."""
    return heading(np.asarray(X)[..., QUAT])


def heading_velocity(X: np.ndarray, dt: float) -> np.ndarray:
    """Achieved (vx, vy, yaw rate) of trajectories ``(..., T, 37)``: means over time of the base velocity
    in the heading frame and of the finite-difference yaw rate; ``(..., 3)``."""
    X = np.asarray(X, np.float64)
    yaw = np.unwrap(yaw_of(X), axis=-1)
    c, s = np.cos(yaw), np.sin(yaw)
    vx_world, vy_world = X[..., LINVEL.start], X[..., LINVEL.start + 1]
    vx = (c * vx_world + s * vy_world).mean(-1)
    vy = (-s * vx_world + c * vy_world).mean(-1)
    wz = (np.gradient(yaw, axis=-1) / dt).mean(-1) if X.shape[-2] > 1 else np.zeros(X.shape[:-2])
    return np.stack([vx, vy, wz], axis=-1)


#: What a run achieves is measured after its first second: a gait starts from standing.
WARM_SECONDS = 1.0


def warm_steps(n_states: int, dt: float) -> int:
    """The control steps of a run of ``n_states`` states left out before measuring what it achieves
    (:data:`WARM_SECONDS`, leaving at least three states)."""
    return min(int(round(WARM_SECONDS / dt)), max(n_states - 3, 0))


def tracking_error(X: np.ndarray, command: np.ndarray, dt: float = 0.02) -> np.ndarray:
    """Achieved minus commanded (vx, vy) in the body's heading frame and yaw rate, means over X."""
    return heading_velocity(X, dt) - command


# --- command holding: the command corrected by the measured errors (closed-loop replanning) ---


@dataclass(frozen=True)
class HoldGains:
    """Gains of command holding (docs/transfer.md#holding-the-command). At each replan the conditioning's

    * yaw rate becomes ``cmd + heading · (target − measured heading) + yaw_rate · (cmd − measured)``, the
      target heading being the start heading plus the integral of the commanded yaw rate;
    * vx becomes ``cmd + speed · (cmd − measured) + speed_integral · ∫(cmd − measured) dt`` (the integral
      held within ±``integral_limit``), vy ``cmd + lateral · (cmd − measured)``;

    clamped to the gait's training range. Measured: means over the last ``window`` seconds (a gait sways
    its heading and speed within each stride, a trot by ±0.1 rad), the heading against the target's mean
    over the same steps. Speed is corrected from ``settle`` seconds on (the gait starts from standing)."""

    heading: float = 3.0  # rad/s of yaw-rate command per rad of heading error
    yaw_rate: float = 0.0  # rad/s per rad/s of yaw-rate error
    speed: float = 0.0  # m/s of vx command per m/s of vx error
    speed_integral: float = 0.5  # m/s of vx command per m of accumulated vx error
    lateral: float = 0.0  # m/s of vy command per m/s of vy error
    integral_limit: float = 0.5  # m (m/s · s): the accumulated vx error is held within ± this
    window: float = 0.4  # s over which heading and speed are averaged (a trot stride)
    settle: float = 1.0  # s from the start before speed is corrected

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"hold gains: {name} must be a finite number >= 0, got {value}")


DEFAULT_HOLD = HoldGains()  # closed-loop replanning holds the command with these gains unless told otherwise


def wrap_angle(a: np.ndarray | float) -> np.ndarray:
    """Angles (rad) wrapped into [−π, π)."""
    return (np.asarray(a, np.float64) + np.pi) % (2 * np.pi) - np.pi


def gait_of(cond: np.ndarray) -> str:
    """The gait a 7-D conditioning names by its one-hot (all zeros: stand)."""
    onehot = np.asarray(cond)[3 : 3 + len(GAITS)]
    return GAITS[int(np.argmax(onehot))] if np.max(onehot) > 0.5 else "stand"


def held_command(
    command: np.ndarray,
    heading_error: np.ndarray | float,
    velocity_error: np.ndarray,
    integral: np.ndarray | float,
    gains: HoldGains,
) -> np.ndarray:
    """The command ``(..., 3)`` (vx, vy, yaw rate) corrected by the heading error (target − measured, rad,
    wrapped here), the velocity error ``(..., 3)`` (commanded − measured) and the accumulated vx error
    (m); not clamped (:meth:`CommandHold.conditioning` clamps to the gait's range)."""
    out = np.array(command, np.float64)
    velocity_error = np.asarray(velocity_error, np.float64)
    out[..., 0] += gains.speed * velocity_error[..., 0] + gains.speed_integral * np.asarray(integral)
    out[..., 1] += gains.lateral * velocity_error[..., 1]
    out[..., 2] += gains.heading * wrap_angle(heading_error) + gains.yaw_rate * velocity_error[..., 2]
    return out


class CommandHold:
    """Command holding for a batch of closed-loop runs from ``x0`` ``(B, 37)``. ``ranges``: per gait the
    (low, high) (vx, vy, yaw rate) its training data covers; the corrected command is clamped to them.

    After each replan interval call :meth:`advance` with the measured states and the commands given for
    it; :meth:`conditioning` then turns the commanded conditioning into the one fed to the model."""

    def __init__(self, x0: np.ndarray, dt: float, gains: HoldGains, ranges: dict[str, tuple]):
        x0 = np.atleast_2d(np.asarray(x0, np.float64))
        self.dt, self.gains, self.ranges = dt, gains, ranges
        self.target = yaw_of(x0)  # (B,) the start heading plus the integral of the commanded yaw rate
        self.recent = x0[:, None]  # (B, <= window steps + 1, 37) the measured states of the window
        self.recent_target = self.target[:, None]  # (B, same) the target heading at those states
        self.recent_cmd = np.zeros((len(x0), 0, 3))  # (B, window steps, 3) the commands over the window
        self.integral = np.zeros(len(x0))  # (B,) the accumulated vx error (m) since settling
        self.elapsed = 0.0
        self.gaits: list[str | None] = [None] * len(x0)

    def advance(self, X: np.ndarray, commands: np.ndarray) -> None:
        """``X`` ``(B, n + 1, 37)``: the measured states from the last replan to now (the first one the
        state measured then); ``commands`` ``(B, n, 3)``: the (vx, vy, yaw rate) commanded over those n
        control steps."""
        X, commands = np.asarray(X, np.float64), np.asarray(commands, np.float64)
        n, keep = commands.shape[1], max(1, int(round(self.gains.window / self.dt)))
        targets = self.target[:, None] + np.cumsum(commands[..., 2], axis=1) * self.dt
        self.target = targets[:, -1]
        measured = commands.mean(1) - heading_velocity(X, self.dt)  # the interval's own error
        limit = self.gains.integral_limit
        self.elapsed += n * self.dt
        if self.elapsed > self.gains.settle:
            self.integral = np.clip(self.integral + measured[:, 0] * n * self.dt, -limit, limit)
        self.recent = np.concatenate([self.recent, X[:, 1:]], axis=1)[:, -keep - 1 :]
        self.recent_target = np.concatenate([self.recent_target, targets], axis=1)[:, -keep - 1 :]
        self.recent_cmd = np.concatenate([self.recent_cmd, commands], axis=1)[:, -keep:]

    def heading_error(self) -> np.ndarray:
        """Target minus measured heading (rad), averaged over the window: ``(B,)``."""
        return wrap_angle(np.mean(wrap_angle(self.recent_target - yaw_of(self.recent)), axis=1))

    def velocity_error(self) -> np.ndarray:
        """Commanded minus measured heading-frame (vx, vy, yaw rate), means over the window (vx, vy: zero
        until settled): ``(B, 3)``."""
        if self.recent_cmd.shape[1] == 0:
            return np.zeros((len(self.recent), 3))
        error = self.recent_cmd.mean(1) - heading_velocity(self.recent, self.dt)
        if self.elapsed <= self.gains.settle:
            error[:, :2] = 0.0  # the gait is still starting from standing
        return error

    def conditioning(self, cond: np.ndarray) -> np.ndarray:
        """The commanded conditioning ``(B, 7)`` corrected by the measured errors, clamped to each gait's
        range; a run's accumulated error restarts when its gait changes."""
        cond = np.atleast_2d(np.asarray(cond, np.float64))
        out = cond.copy()
        for i, c in enumerate(cond):
            gait = gait_of(c)
            if gait != self.gaits[i]:
                self.gaits[i], self.integral[i] = gait, 0.0
        fed = held_command(
            cond[:, :3], self.heading_error(), self.velocity_error(), self.integral, self.gains
        )
        for i, gait in enumerate(self.gaits):
            lo, hi = self.ranges[gait]
            out[i, :3] = np.clip(fed[i], lo, hi)
        return out
