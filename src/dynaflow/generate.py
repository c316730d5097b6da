"""Long-horizon generation (the library behind ``dynaflow generate``): open-loop window chaining with a
conditioning schedule, and closed-loop receding-horizon replanning in MuJoCo C with optional pushes.

* **Open loop** (:func:`rollout_long` with ``closed_loop=False``): each window of H steps starts at the
  previous window's last generated state; the conditioning follows the schedule. DynaFlow's chained
  states are one rollout of the chained actions, so replaying the actions in MuJoCo C ("same") gives the
  same motion; the "reference" replay shows how it transfers.
* **Closed loop** (``closed_loop=True``): the robot lives in MuJoCo C ("same" or "reference" fidelity).
  Every ``replan_every`` control steps the policy samples a new window from the simulator's *measured*
  state and the first ``replan_every`` actions are executed. Pushes (a force on the trunk for a given
  time) test recovery. The sampling latency of every replan is recorded. By default the command is held
  (:class:`~dynaflow.data.conditioning.CommandHold`, gains :class:`HoldGains`): at each replan the
  conditioning's yaw rate and speed are corrected by the measured heading and speed errors, clamped to the
  gait's training range (:func:`command_ranges`).

Schedules are strings: comma-separated segments ``gait:vx:seconds``, ``gait:vx:yaw_rate:seconds`` or
``gait:vx:vy:yaw_rate:seconds`` (gait one of trot, pace, bound, pronk, stand; ``turn`` is a trot with a
yaw rate, ``stand:seconds`` stands still). Pushes: ``30N@5s`` (30 N, sideways, at t = 5 s, for 0.2 s),
optionally ``30N@5s:0.1s`` (duration) and ``/x``, ``/-x``, ``/y`` or ``/-y`` (direction, world frame).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import mujoco
import numpy as np

from dynaflow.data import Dataset
from dynaflow.data.conditioning import (
    DEFAULT_HOLD,
    CommandHold,
    HoldGains,
    heading_velocity,
    warm_steps,
    wrap_angle,
    yaw_of,
)
from dynaflow.data.sources.gaits import ALL_GAITS, COND_DIM, SPECS, conditioning
from dynaflow.physics import reference_model, replay_in_mujoco, stays_up
from dynaflow.policy import check_conditioning, held_out_episodes
from dynaflow.robots.go2 import NQ, STATE_DIM, TRUNK_BODY

__all__ = [
    "DEFAULT_HOLD",
    "HoldGains",
    "Push",
    "LongRollout",
    "Segment",
    "command_ranges",
    "default_replan_every",
    "motion_for_episode",
    "parse_pushes",
    "parse_schedule",
    "rollout_long",
    "schedule_fn",
]

DEFAULT_PUSH_SECONDS = 0.2
_DIRECTIONS = {"x": (1.0, 0.0), "-x": (-1.0, 0.0), "y": (0.0, 1.0), "-y": (0.0, -1.0)}


@dataclass(frozen=True)
class Segment:
    """One piece of a schedule: a gait, a command (vx, vy, yaw rate) and a duration (s)."""

    gait: str
    command: tuple[float, float, float]
    seconds: float

    def cond(self) -> np.ndarray:
        """The 7-D conditioning the gait-library models take."""
        return conditioning(self.gait, np.asarray(self.command)).astype(np.float32)


@dataclass(frozen=True)
class Push:
    """A horizontal force (N, world frame) on the trunk from ``at`` for ``seconds``."""

    force: tuple[float, float]
    at: float
    seconds: float = DEFAULT_PUSH_SECONDS


def parse_schedule(text: str) -> list[Segment]:
    """``"trot:0.5:4,turn:0.5:0.8:3,bound:0.3:3"`` -> segments; a malformed one names itself."""
    segments = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, *nums = part.split(":")
        try:
            vals = [float(v) for v in nums]
        except ValueError as e:
            raise ValueError(f"--schedule: segment {part!r}: expected numbers after the gait") from e
        gait = "trot" if name == "turn" else name
        if gait not in ALL_GAITS:
            raise ValueError(
                f"--schedule: segment {part!r}: unknown gait {name!r}; known: {ALL_GAITS} or turn"
            )
        vx = vy = yaw = 0.0
        if gait == "stand" and len(vals) == 1:
            pass
        elif len(vals) == 2 and name != "turn":
            vx = vals[0]
        elif len(vals) == 3:
            vx, yaw = vals[0], vals[1]
        elif len(vals) == 4:
            vx, vy, yaw = vals[:3]
        else:
            raise ValueError(
                f"--schedule: segment {part!r}: expected gait:vx:seconds, gait:vx:yaw_rate:seconds or "
                "gait:vx:vy:yaw_rate:seconds (turn:vx:yaw_rate:seconds, stand:seconds)"
            )
        seconds = vals[-1]
        if not seconds > 0 or not np.all(np.isfinite(vals)):
            raise ValueError(f"--schedule: segment {part!r}: the duration must be a finite number > 0")
        segments.append(Segment(gait, (vx, vy, yaw), seconds))
    if not segments:
        raise ValueError(f"--schedule: expected at least one segment, got {text!r}")
    return segments


def schedule_fn(segments: Sequence[Segment]) -> Callable[[float], np.ndarray]:
    """``t -> (C,)`` conditioning at time t (s); the last segment holds after the schedule ends."""
    ends = np.cumsum([s.seconds for s in segments])
    conds = [s.cond() for s in segments]

    def at(t: float) -> np.ndarray:
        i = int(np.searchsorted(ends, t + 1e-9, side="right"))
        return conds[min(i, len(conds) - 1)]

    return at


def parse_pushes(texts: Sequence[str]) -> list[Push]:
    """``["30N@5s", "20N@8s:0.1s/-x"]`` -> pushes."""
    out = []
    pattern = re.compile(
        r"^\s*([0-9.eE+-]+)\s*N\s*@\s*([0-9.eE+-]+)\s*s(?::([0-9.eE+-]+)\s*s)?(?:/(-?[xy]))?\s*$"
    )
    for text in texts:
        m = pattern.match(text)
        if not m:
            raise ValueError(
                f"--push: expected FORCE N@TIME s[:DURATION s][/x|-x|y|-y], e.g. 30N@5s, got {text!r}"
            )
        try:
            force, at = float(m.group(1)), float(m.group(2))
            dur = float(m.group(3)) if m.group(3) else DEFAULT_PUSH_SECONDS
        except ValueError:
            raise ValueError(
                f"--push: {text!r}: FORCE, TIME and DURATION must be numbers (e.g. 30N@5s:0.2s/-x)"
            ) from None
        if not (np.isfinite(force) and np.isfinite(at) and np.isfinite(dur) and at >= 0 and dur > 0):
            raise ValueError(f"--push: {text!r}: needs a finite force, a time >= 0 and a duration > 0")
        dx, dy = _DIRECTIONS[m.group(4) or "y"]
        out.append(Push((force * dx, force * dy), at, dur))
    return out


@dataclass
class LongRollout:
    """What :func:`rollout_long` produced. ``states`` (T+1, 37) are the executed motion in closed loop and
    the generated one in open loop; ``actions`` (T, 12) (None for a states-only model); ``cond`` (T, C) the
    commanded conditioning, ``cond_fed`` (T, C) the one the model was given (closed loop with the command
    held: corrected); ``hold``: the holding gains used (None: not held)."""

    states: np.ndarray
    actions: np.ndarray | None
    cond: np.ndarray | None
    closed_loop: bool
    fidelity: str
    latencies: list[float] = field(default_factory=list)  # s per sampler call (closed loop: per replan)
    wall_seconds: float = 0.0
    replays: dict[str, np.ndarray] = field(default_factory=dict)  # open loop: MuJoCo C replays of actions
    dt: float = 0.02  # control period (s)
    cond_fed: np.ndarray | None = None
    hold: dict | None = None

    @property
    def seconds(self) -> float:
        return (len(self.states) - 1) * self.dt

    def summary(self) -> dict:
        """Headline figures: distance, uprightness, latency, real-time factor."""
        X = self.states
        out = {
            "seconds": self.seconds,
            "closed_loop": self.closed_loop,
            "fidelity": self.fidelity,
            "forward_m": float(X[-1, 0] - X[0, 0]),
            "distance_m": float(np.linalg.norm(X[-1, :2] - X[0, :2])),
            "upright": bool(stays_up(X)),
            "wall_seconds": self.wall_seconds,
            "real_time_factor": self.seconds / self.wall_seconds if self.wall_seconds > 0 else float("nan"),
        }
        if self.latencies:
            lat = np.asarray(self.latencies[1:] or self.latencies) * 1e3
            out.update(
                sampler_calls=len(self.latencies),
                latency_ms_median=float(np.median(lat)),
                latency_ms_p95=float(np.percentile(lat, 95)),
                latency_ms_first=float(self.latencies[0] * 1e3),
            )
            warm = self.wall_seconds - self.latencies[0]  # without the first call (its compile)
            out["real_time_factor_warm"] = self.seconds / warm if warm > 0 else float("nan")
        if self.closed_loop and self.cond is not None and self.cond.shape[1] == COND_DIM:
            out.update(self._tracking())
        for fid, R in self.replays.items():
            out[f"replay_{fid}_upright"] = bool(stays_up(R))
            out[f"replay_{fid}_forward_m"] = float(R[-1, 0] - R[0, 0])
            out[f"replay_{fid}_drift_m"] = float(np.linalg.norm(R[-1, :2] - X[-1, :2]))
        return out

    def _tracking(self) -> dict:
        """Closed loop, gait conditioning: the final heading minus the target (the start heading plus the
        integral of the commanded yaw rate), and the heading-frame (vx, vy, yaw rate) achieved after the
        first second against the mean command over the same time."""
        X, cmd = self.states, self.cond[:, :3].astype(np.float64)
        target = yaw_of(X[0]) + cmd[:, 2].sum() * self.dt
        warm = warm_steps(len(X), self.dt)
        achieved = heading_velocity(X[warm:], self.dt)
        commanded = cmd[warm:].mean(0) if warm < len(cmd) else cmd.mean(0)
        return {
            "hold_command": self.hold,
            "heading_error_rad": float(wrap_angle(yaw_of(X[-1]) - target)),
            "achieved_vx_vy_yaw_rate": [float(v) for v in achieved],
            "commanded_vx_vy_yaw_rate": [float(v) for v in commanded],
            "achieved_speed_mps": float(np.linalg.norm(achieved[:2])),
            "commanded_speed_mps": float(np.linalg.norm(commanded[:2])),
        }


def command_ranges() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per gait the (low, high) (vx, vy, yaw rate) the gait library's commands are drawn from (the
    training data's range), to which a held command is clamped."""
    return {
        g: (np.array([s.vx[0], s.vy[0], s.yaw[0]]), np.array([s.vx[1], s.vy[1], s.yaw[1]]))
        for g, s in SPECS.items()
    }


def command_hold(policy, x0: np.ndarray, gains: HoldGains | None) -> CommandHold | None:
    """Command holding for closed-loop runs from ``x0`` ``(B, 37)``; None when ``gains`` is None or the
    checkpoint does not take the gait library's 7-D conditioning (nothing to correct)."""
    if gains is None or policy.cond_dim != COND_DIM:
        return None
    return CommandHold(x0, policy.rollout.ctrl_dt, gains, command_ranges())


def _cond_at(policy, cond, t: float):
    if policy.cond_dim is None:
        return None
    c = cond(t) if callable(cond) else cond
    if c is None:
        raise ValueError(f"cond: this checkpoint needs a {policy.cond_dim}-D conditioning (or a schedule)")
    c = np.asarray(c, np.float32).reshape(1, -1)
    if c.shape[1] != policy.cond_dim:
        raise ValueError(f"cond: the checkpoint takes cond_dim={policy.cond_dim}, got {c.shape[1]}")
    if not np.all(np.isfinite(c)):
        raise ValueError(f"cond: expected finite numbers, got {c[0].tolist()}")
    return c


def rollout_long(
    policy,
    x0,
    cond=None,
    seconds: float = 10.0,
    closed_loop: bool = False,
    replan_every: int | None = None,
    fidelity: str = "same",
    pushes: Sequence[Push] = (),
    seed: int = 0,
    ode_steps: int = 1,
    replay: bool = True,
    hold: HoldGains | None = DEFAULT_HOLD,
) -> LongRollout:
    """Generate ``seconds`` of motion from ``x0`` (37,) for a conditioning ``cond`` (C,) or a schedule
    (a callable ``t -> (C,)``, see :func:`schedule_fn`), open or closed loop (module docstring).

    Open loop with ``replay``: the chained actions are also replayed in MuJoCo C ("same" and
    "reference"). Closed loop needs a model with actions (not ``state-fm``); it replans every
    ``replan_every`` control steps (default: half the horizon) and holds the commanded heading and speed
    with the gains ``hold`` (None: the command unchanged; gait-conditioned models only)."""
    x0 = _checked_start(x0)
    if not (np.isfinite(seconds) and seconds > 0):
        raise ValueError(f"--seconds: expected a finite number > 0, got {seconds}")
    if replan_every is None:
        replan_every = default_replan_every(policy)
    if isinstance(replan_every, bool) or not isinstance(replan_every, int | np.integer):
        raise ValueError(f"--replan-every: expected an integer, got {replan_every!r}")
    if fidelity not in ("same", "reference"):
        raise ValueError(f"--fidelity: expected same or reference, got {fidelity!r}")
    total = int(round(seconds / policy.rollout.ctrl_dt))
    if not closed_loop:
        return _open_loop(policy, x0, cond, total, pushes, seed, ode_steps, replay)
    return _closed_loop(policy, x0, cond, total, replan_every, fidelity, pushes, seed, ode_steps, hold)


def _checked_start(x0) -> np.ndarray:
    """``x0`` as 37 finite float64 numbers with a non-zero base quaternion."""
    x0 = np.asarray(x0, np.float64).reshape(-1)
    if x0.shape != (STATE_DIM,) or not np.all(np.isfinite(x0)):
        raise ValueError(f"x0: expected {STATE_DIM} finite numbers, got shape {x0.shape}")
    if np.linalg.norm(x0[3:7]) < 1e-6:
        raise ValueError(
            "x0: the base quaternion (dims 3:7, w x y z) is zero; give a unit quaternion, e.g. 1 0 0 0"
        )
    return x0


def _open_loop(
    policy, x0: np.ndarray, cond, total: int, pushes: Sequence[Push], seed: int, ode_steps: int, replay: bool
) -> LongRollout:
    """Chained windows from ``x0``; with ``replay``, their actions replayed in MuJoCo C (same, reference)."""
    dt = policy.rollout.ctrl_dt
    t_start = time.perf_counter()
    if pushes:
        raise ValueError("--push needs --closed-loop: an open-loop plan cannot react to a push")
    latencies: list[float] = []
    X, U = policy.generate_open_loop(
        x0[None],
        lambda t: _cond_at(policy, cond, t),
        seconds=total * dt,
        rng=seed,
        ode_steps=ode_steps,
        timings=latencies,
    )
    X, U = X[0], None if U is None else U[0]
    result = LongRollout(X, U, _cond_series(policy, cond, total, dt), False, "generated", latencies, dt=dt)
    result.wall_seconds = time.perf_counter() - t_start
    if replay and U is not None:
        for fid in ("same", "reference"):
            result.replays[fid] = replay_in_mujoco(policy.rollout, X[0], U, fid)
    return result


def _closed_loop(
    policy,
    x0: np.ndarray,
    cond,
    total: int,
    replan_every: int,
    fidelity: str,
    pushes: Sequence[Push],
    seed: int,
    ode_steps: int,
    hold: HoldGains | None,
) -> LongRollout:
    """Receding-horizon replanning in MuJoCo C: every ``replan_every`` steps a window is sampled from the
    measured state (its conditioning corrected by command holding) and its first actions are executed,
    pushes applied to the trunk."""
    if not policy.has_actions:
        raise ValueError(f"--closed-loop: a states-only model ({policy.method}) has no actions to execute")
    if replan_every < 1 or replan_every > policy.horizon:
        raise ValueError(f"--replan-every: expected 1..{policy.horizon} (the horizon), got {replan_every}")
    dt = policy.rollout.ctrl_dt
    t_start = time.perf_counter()
    model, data, n_sub, trunk, x = _start_simulation(policy.rollout, fidelity, x0)
    holder = command_hold(policy, x[None], hold)
    states, actions, latencies, fed = [x.copy()], [], [], []
    commanded = _cond_series(policy, cond, total, dt)
    k = last = 0
    while k < total:
        c = _cond_at(policy, cond, k * dt)
        if holder is not None:
            if k > last:
                holder.advance(np.asarray(states[last:])[None], commanded[None, last:k, :3])
            c, last = holder.conditioning(c).astype(np.float32), k
        t0 = time.perf_counter()
        _, U = policy.sample(
            states[-1][None].astype(np.float32),
            c,
            rng=seed + len(latencies),
            ode_steps=ode_steps,
            actions_only=True,
        )
        latencies.append(time.perf_counter() - t0)
        targets = policy.rollout.targets(np.asarray(U[0], np.float64))
        for j in range(min(replan_every, total - k)):
            data.xfrc_applied[trunk, :2] = _push_force(pushes, k * dt)
            data.ctrl[:] = targets[j]
            mujoco.mj_step(model, data, nstep=n_sub)
            states.append(np.concatenate([data.qpos, data.qvel]))
            actions.append(U[0, j])
            fed.append(c)
            k += 1
    result = LongRollout(
        np.asarray(states),
        np.asarray(actions, np.float32),
        commanded,
        True,
        fidelity,
        latencies,
        dt=dt,
        cond_fed=None if commanded is None else np.concatenate(fed),
        hold=None if holder is None else asdict(hold),
    )
    result.wall_seconds = time.perf_counter() - t_start
    return result


def _start_simulation(rollout, fidelity: str, x0: np.ndarray):
    """MuJoCo C ("same" or "reference" model) at ``x0`` with its quaternion normalised:
    ``(model, data, substeps, trunk body id, the start state)``."""
    if fidelity == "same":
        model, n_sub = rollout.mj_model, rollout.n_substeps
    else:
        model, n_sub = reference_model(rollout)
    data = mujoco.MjData(model)
    trunk = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, TRUNK_BODY)
    x = x0.copy()
    x[3:7] /= np.linalg.norm(x[3:7])
    data.qpos[:] = x[:NQ]
    data.qvel[:] = x[NQ:]
    mujoco.mj_forward(model, data)
    return model, data, n_sub, trunk, x


def _push_force(pushes: Sequence[Push], t: float) -> np.ndarray:
    """The horizontal force (N, world frame) on the trunk at time ``t``: the sum of the pushes under way."""
    force = np.zeros(2)
    for p in pushes:
        if p.at <= t < p.at + p.seconds:
            force += p.force
    return force


def default_replan_every(policy) -> int:
    """Control steps between closed-loop replans when none is given: half the horizon (replanning more
    often kept fewer runs upright in the transfer suite: docs/transfer.md)."""
    return max(1, policy.horizon // 2)


def _cond_series(policy, cond, total: int, dt: float) -> np.ndarray | None:
    if policy.cond_dim is None:
        return None
    return np.concatenate([_cond_at(policy, cond, k * dt) for k in range(total)])


def default_start(policy) -> np.ndarray:
    """A settled standing state (the gait library's start) for models of the Go2 gait data."""
    from dynaflow.data.sources.gaits import start_state

    return start_state(policy.rollout)


def check_gait_model(policy) -> None:
    """Schedules produce the gait library's 7-D conditioning; other models need ``cond`` vectors."""
    if policy.cond_dim != COND_DIM:
        raise ValueError(
            f"--schedule: gait schedules make {COND_DIM}-D conditionings (vx, vy, yaw rate, gait one-hot); "
            f"this checkpoint takes cond_dim={policy.cond_dim}"
        )


def motion_for_episode(
    policy, dataset: Dataset, episode: int | None = None, seconds: float = 4.0, seed: int = 0
) -> dict[str, np.ndarray]:
    """The checkpoint's motion from a demonstration episode's first state and conditioning (chained open
    loop), with that episode as the demonstration to compare against: ``{"states", "actions" (absent for
    a states-only model), "demo", "episode"}``. ``episode`` defaults to the checkpoint's first held-out
    episode when ``dataset`` is its training data, else episode 0."""
    check_conditioning(policy, dataset)
    if episode is None:
        episode = int(held_out_episodes(policy, dataset)[0][0])
    if (
        isinstance(episode, bool)
        or not isinstance(episode, int | np.integer)
        or not 0 <= episode < dataset.num_episodes
    ):
        raise ValueError(f"--episode: expected 0..{dataset.num_episodes - 1}, got {episode!r}")
    cond = None if dataset.conditionings is None else dataset.conditionings[episode, 0]
    res = rollout_long(policy, dataset.states[episode, 0], cond, seconds=seconds, seed=seed, replay=False)
    demo = dataset.states[episode, : min(len(res.states), int(dataset.lengths[episode]))]
    out = {"states": res.states, "demo": demo, "episode": np.int64(episode)}
    if res.actions is not None:
        out["actions"] = res.actions
    return out
