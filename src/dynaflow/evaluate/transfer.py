"""The transfer suite (``dynaflow evaluate --transfer``): do a checkpoint's actions survive a different world?

For every gait command (10 s by default) and every :class:`~dynaflow.physics.worlds.Perturbation` of the
matrix, two ways of running the robot:

* **open loop**: the motion is generated once in the training simulator (windows chained, as
  ``dynaflow generate`` does) and its actions are replayed, unchanged, in each perturbed world;
* **closed loop**: the robot lives in the perturbed world; every ``replan_every`` control steps the policy
  samples a new window from the (possibly noisy) *measured* state and the first actions are executed.
  All worlds advance in lockstep so one batched sampler call serves them all. By default the command is
  held (:class:`~dynaflow.data.conditioning.CommandHold`): each replan's conditioning is the command
  corrected by the measured heading and speed errors (measured as the world's sensor reports them).

Each run gives a cell (:func:`run_figures`): upright for the whole run, when it fell, displacement achieved
against commanded, heading drift, heading-frame speed against the command. :func:`transfer_section` and
:func:`plot_transfer` turn the cells into the report's table and heat maps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace

import numpy as np

from dynaflow.data.conditioning import (
    DEFAULT_HOLD,
    WARM_SECONDS,
    HoldGains,
    heading_velocity,
    warm_steps,
    wrap_angle,
    yaw_of,
)
from dynaflow.data.sources.gaits import EVAL_COMMANDS, start_state
from dynaflow.physics import stays_up
from dynaflow.physics.worlds import TRANSFER_MATRIX, Perturbation, build_world, replay_in_world

__all__ = [
    "MODES",
    "SPEED_TOLERANCE",
    "headline",
    "run_figures",
    "summarise",
    "transfer_section",
    "transfer_suite",
]


MODES = ("open", "closed")
SPEED_TOLERANCE = (
    0.25  # achieved heading-frame speed within this fraction of the command counts as "on speed"
)
SPEED_FLOOR = 0.05  # m/s: the tolerance never drops below this (a standing command)


def commanded_displacement(x0: np.ndarray, command: Sequence[float], steps: int, dt: float) -> np.ndarray:
    """World-frame (x, y) displacement that holding ``command`` (vx, vy, yaw rate in the heading frame)
    for ``steps`` control steps from ``x0``'s heading would produce."""
    vx, vy, wz = (float(v) for v in command)
    yaw = float(yaw_of(x0)) + wz * dt * np.arange(steps)
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([np.sum(c * vx - s * vy), np.sum(s * vx + c * vy)]) * dt


def run_figures(X: np.ndarray, command: Sequence[float], dt: float) -> dict:
    """One cell of the suite from a run's true states ``X`` (T + 1, 37) under ``command``.

    ``upright``: the trunk stayed up (:func:`~dynaflow.physics.stays_up`) the whole run; ``fell_at_s``: the
    first time it did not (None when it never fell); ``distance_ratio``: distance travelled along the
    command (heading-frame planar velocity projected on the commanded one, integrated over the run) over
    the commanded distance (None when the command moves less than 5 cm; a turn counts along its arc);
    ``drift_m``: distance between achieved and commanded end points; ``heading_drift_rad``: final heading
    minus commanded heading; ``heading_drift_last_s_rad``: the same averaged over the last second (a gait
    sways its heading within each stride, a trot by ±0.1 rad); ``achieved``: heading-frame (vx, vy, yaw
    rate) after the first second; ``on_speed``: that planar velocity within 25 % of the command (at least
    0.05 m/s)."""
    X = np.asarray(X, np.float64)
    steps = len(X) - 1
    cmd = np.asarray(command, np.float64)
    want = commanded_displacement(X[0], cmd, steps, dt)
    got = X[-1, :2] - X[0, :2]
    down = ~stays_up(X[:, None])  # per state; the run stayed up when no state is down
    fell = float(np.argmax(down) * dt) if down.any() else None
    ok = np.all(np.isfinite(X))
    warm = warm_steps(len(X), dt)  # speed is measured after the first second
    achieved = heading_velocity(X[warm:], dt) if ok else np.full(3, np.nan)
    tol = max(SPEED_TOLERANCE * float(np.linalg.norm(cmd[:2])), SPEED_FLOOR)
    # along the command: heading-frame planar velocity projected on the commanded one, over the whole run
    v_cmd = float(np.linalg.norm(cmd[:2]))
    along = None
    if ok and v_cmd * steps * dt > 0.05:
        along = float(heading_velocity(X[1:], dt)[:2] @ (cmd[:2] / v_cmd) / v_cmd)
    drift = float(wrap_angle(yaw_of(X[-1]) - yaw_of(X[0]) - cmd[2] * steps * dt)) if ok else None
    return {
        "upright": fell is None,
        "fell_at_s": fell,
        "distance_ratio": along,
        "drift_m": float(np.linalg.norm(got - want)) if ok else None,
        "heading_drift_rad": drift,
        "heading_drift_last_s_rad": _last_second_drift(X, cmd[2], dt) if ok else None,
        "achieved": [float(v) for v in achieved],
        "on_speed": bool(ok and np.linalg.norm(achieved[:2] - cmd[:2]) <= tol),
    }


def _last_second_drift(X: np.ndarray, yaw_rate: float, dt: float) -> float:
    """Heading minus commanded heading (rad), averaged over the run's last second."""
    n = min(int(round(WARM_SECONDS / dt)), len(X))
    k = np.arange(len(X) - n, len(X))
    return float(wrap_angle(np.mean(wrap_angle(yaw_of(X[k]) - yaw_of(X[0]) - yaw_rate * k * dt))))


def _jobs(commands: dict[str, Sequence[Sequence[float]]], seeds: int) -> list[tuple[str, tuple, int]]:
    return [
        (g, tuple(float(v) for v in c), s) for g, cs in commands.items() for c in cs for s in range(seeds)
    ]


def transfer_suite(
    policy,
    commands: dict[str, Sequence[Sequence[float]]] | None = None,
    perturbations: Sequence[Perturbation] = TRANSFER_MATRIX,
    seconds: float = 10.0,
    modes: Sequence[str] = MODES,
    replan_every: int | None = None,
    seeds: int = 1,
    seed: int = 0,
    batch: int = 16,
    ode_steps: int = 1,
    log: Callable[[str], None] | None = None,
    closed_worlds: Sequence[str] | None = None,
    plans: Sequence[np.ndarray] | None = None,
    keep: Sequence[tuple[str, str, str]] = (),
    hold: HoldGains | None = DEFAULT_HOLD,
) -> dict:
    """Run the suite for a gait-conditioned checkpoint with actions (module docstring). ``commands``:
    ``{gait: [(vx, vy, yaw rate), ...]}`` (default :data:`~dynaflow.data.sources.gaits.EVAL_COMMANDS`);
    ``seeds`` runs per command (different sampler noise, terrain and sensor noise); ``replan_every``
    defaults to half the horizon (replanning more often measured worse: docs/transfer.md).
    ``closed_worlds``: names of the worlds run closed loop (default: all); ``plans``: open-loop actions
    per command and seed, in order, when already generated (from the same start state and seeds);
    ``keep``: ``(mode, world, gait)`` runs whose states come back under ``"kept"`` (first command);
    ``hold``: the gains of command holding in closed loop (None: the command fed unchanged).
    Returns ``{"cells": [...], "perturbations": [...], "summary": {...}, ...}``, JSON-ready but for
    ``"kept"``."""
    from dynaflow.generate import Segment

    replan_every = _checked_options(policy, modes, seconds, seeds, batch, replan_every, perturbations)
    commands = EVAL_COMMANDS if commands is None else commands
    say = log or (lambda _m: None)
    dt = policy.rollout.ctrl_dt
    steps = int(round(seconds / dt))
    x0 = start_state(policy.rollout)
    jobs = _jobs(commands, seeds)
    conds = np.stack([Segment(g, c, seconds).cond() for g, c, _ in jobs])
    runs = _Runs(jobs, dt, keep)
    timing: dict = {}
    if "open" in modes:
        plans = _open_loop_plans(policy, x0, jobs, conds, steps, plans, seed, ode_steps, timing)
        _replay_open_loop(policy, x0, plans, perturbations, steps, runs, timing)
        say(f"transfer: open loop, {len(jobs)} motions x {len(perturbations)} worlds")
    if "closed" in modes:
        closed = [p for p in perturbations if closed_worlds is None or p.name in closed_worlds]
        pairs = [(p, j) for p in closed for j in range(len(jobs))]
        closed_loop = _ClosedLoop(policy, x0, runs.jobs, conds, steps, replan_every, seed, ode_steps, hold)
        _run_closed_loop(closed_loop, pairs, batch, runs, say, timing)
    return {
        "seconds": steps * dt,
        "replan_every": replan_every,
        "hold": None if hold is None else asdict(hold),
        "seeds": seeds,
        "commands": {g: [list(c) for c in cs] for g, cs in commands.items()},
        "perturbations": [p.as_dict() for p in perturbations],
        "cells": runs.cells,
        "summary": summarise(runs.cells),
        "timing_s": timing,
        **({"kept": runs.kept} if keep else {}),
    }


def _checked_options(
    policy,
    modes: Sequence[str],
    seconds: float,
    seeds: int,
    batch: int,
    replan_every: int | None,
    perturbations: Sequence[Perturbation],
) -> int:
    """Refuse what the suite cannot run, in one line each; returns ``replan_every`` (default filled in)."""
    from dynaflow.generate import check_gait_model, default_replan_every

    if not policy.has_actions:
        raise ValueError(f"--transfer: a states-only model ({policy.method}) has no actions to transfer")
    check_gait_model(policy)
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ValueError(f"--transfer modes: expected some of {MODES}, got {list(modes)}")
    if not (np.isfinite(seconds) and seconds > 0) or seeds < 1 or batch < 1:
        raise ValueError(
            f"transfer: seconds > 0, seeds >= 1 and batch >= 1 expected, got {seconds}, {seeds}, {batch}"
        )
    replan_every = default_replan_every(policy) if replan_every is None else replan_every
    if not 1 <= replan_every <= policy.horizon:
        raise ValueError(f"--replan-every: expected 1..{policy.horizon} (the horizon), got {replan_every}")
    names = [p.name for p in perturbations]
    if len(set(names)) != len(names):
        raise ValueError(f"transfer: perturbation names must be unique, got {names}")
    return replan_every


class _Runs:
    """The suite's cells as its runs finish, and the states of the runs ``keep`` names (first command)."""

    def __init__(self, jobs: list[tuple[str, tuple, int]], dt: float, keep: Sequence[tuple[str, str, str]]):
        self.jobs, self.dt, self.keep = jobs, dt, keep
        self.cells: list[dict] = []
        self.kept: dict[str, np.ndarray] = {}

    def record(self, mode: str, p: Perturbation, j: int, X: np.ndarray) -> None:
        g, c, s = self.jobs[j]
        self.cells.append(
            {
                "mode": mode,
                "perturbation": p.name,
                "gait": g,
                "command": list(c),
                "seed": s,
                **run_figures(X, c, self.dt),
            }
        )
        if (mode, p.name, g) in self.keep and f"{mode}|{p.name}|{g}" not in self.kept:
            self.kept[f"{mode}|{p.name}|{g}"] = X


def _open_loop_plans(policy, x0, jobs, conds, steps: int, plans, seed: int, ode_steps: int, timing: dict):
    """The open-loop actions: those given, else one chained generation per command and seed."""
    t0 = time.perf_counter()
    if plans is not None and len(plans) != len(jobs):
        raise ValueError(
            f"plans: expected one action sequence per command and seed ({len(jobs)}), got {len(plans)}"
        )
    if plans is None:
        plans = []
        for i, (_, _, s) in enumerate(jobs):  # one chained generation per command and seed
            _, U = policy.generate_open_loop(
                x0[None],
                conds[i : i + 1],
                seconds=steps * policy.rollout.ctrl_dt,
                rng=seed + 7919 * s,
                ode_steps=ode_steps,
            )
            plans.append(U[0])
    timing["open_generate_s"] = time.perf_counter() - t0
    return plans


def _replay_open_loop(policy, x0, plans, perturbations, steps: int, runs: _Runs, timing: dict) -> None:
    """Each plan replayed unchanged in each world that observes nothing."""
    t0 = time.perf_counter()
    rollout = policy.rollout
    for p in perturbations:
        if p.observes:
            continue  # nothing observes the state in open loop
        for j, U in enumerate(plans):
            world = build_world(rollout, _seeded(p, runs.jobs[j][2]))
            runs.record("open", p, j, replay_in_world(rollout, world, x0, np.asarray(U)[:steps]))
    timing["open_replay_s"] = time.perf_counter() - t0


def _run_closed_loop(
    closed_loop: _ClosedLoop,
    pairs,
    batch: int,
    runs: _Runs,
    say: Callable[[str], None],
    timing: dict,
) -> None:
    """The (perturbation, job) pairs closed loop, ``batch`` of them in lockstep at a time."""
    t0 = time.perf_counter()
    calls = 0
    for start in range(0, len(pairs), batch):
        chunk = pairs[start : start + batch]
        states, n_calls = closed_loop.run(chunk)
        calls += n_calls
        for (p, j), X in zip(chunk, states, strict=True):
            runs.record("closed", p, j, X)
        say(f"transfer: closed loop, {min(start + batch, len(pairs))}/{len(pairs)} runs")
    timing["closed_s"] = time.perf_counter() - t0
    timing["closed_sampler_calls"] = calls


def _seeded(p: Perturbation, s: int) -> Perturbation:
    return p if s == 0 else replace(p, seed=p.seed + 1000 * s)


class _ClosedLoop:
    """Closed-loop runs of the suite: the policy replans every ``replan_every`` steps from each world's
    observed state, the conditioning held by ``hold`` (None: unchanged)."""

    def __init__(self, policy, x0, jobs, conds, steps: int, replan_every: int, seed: int, ode_steps, hold):
        self.policy, self.x0, self.jobs, self.conds = policy, x0, jobs, conds
        self.steps, self.replan_every, self.seed, self.ode_steps = steps, replan_every, seed, ode_steps
        self.hold = hold

    def run(self, chunk) -> tuple[np.ndarray, int]:
        """Run the chunk's (perturbation, job) pairs in lockstep; returns their true states and the calls.
        Holding measures each world as its sensor reports it (its own noise stream)."""
        from dynaflow.generate import command_hold

        rollout, x0, steps, seed = self.policy.rollout, self.x0, self.steps, self.seed
        worlds = [build_world(rollout, _seeded(p, self.jobs[j][2])) for p, j in chunk]
        keys = [(w.perturbation.seed, j) for w, (_, j) in zip(worlds, chunk, strict=True)]
        rngs = [np.random.default_rng([seed, ps, j]) for ps, j in keys]
        sensed = [np.random.default_rng([seed, ps, j, 1]) for ps, j in keys]  # holding's own sensor noise
        cond = np.stack([self.conds[j] for _, j in chunk])
        holder = command_hold(self.policy, np.tile(x0, (len(worlds), 1)), self.hold)
        for w in worlds:
            w.reset(x0)
        out = np.empty((len(worlds), steps + 1, x0.shape[0]))
        out[:, 0] = [w.state() for w in worlds]
        measured = out.copy()  # what holding measures: the true states through each world's sensor
        k = call = 0
        while k < steps:
            obs = np.stack([w.observe(r) for w, r in zip(worlds, rngs, strict=True)])
            fed = cond if holder is None else holder.conditioning(cond)
            _, U = self.policy.sample(
                obs.astype(np.float32),
                fed.astype(np.float32),
                rng=seed + 104729 * call,
                actions_only=True,
                ode_steps=self.ode_steps,
            )
            call += 1
            targets = rollout.targets(np.asarray(U, np.float64))
            n = min(self.replan_every, steps - k)
            for i, w in enumerate(worlds):
                for j in range(n):
                    out[i, k + 1 + j] = w.step(targets[i, j])
                    measured[i, k + 1 + j] = w.observe(sensed[i])
            if holder is not None:
                holder.advance(measured[:, k : k + n + 1], np.repeat(cond[:, None, :3], n, axis=1))
            k += n
        return out, call


def summarise(cells: list[dict]) -> dict:
    """Per mode: the fraction of runs upright and on speed, the median distance ratio and the median
    |heading drift| (rad, at the end), over all cells, per perturbation and per gait; open loop also the
    distance against the nominal world's."""
    out = {}
    for mode in MODES:
        mine = [c for c in cells if c["mode"] == mode]
        if not mine:
            continue

        def stats(cs):
            ratios = [c["distance_ratio"] for c in cs if c["distance_ratio"] is not None]
            drift = [abs(c["heading_drift_rad"]) for c in cs if c.get("heading_drift_rad") is not None]
            return {
                "runs": len(cs),
                "upright": float(np.mean([c["upright"] for c in cs])),
                "on_speed": float(np.mean([c["on_speed"] for c in cs])),
                "distance_ratio_median": float(np.median(ratios)) if ratios else None,
                "heading_drift_abs_median": float(np.median(drift)) if drift else None,
            }

        entry = {"all": stats(mine)}
        entry["by_perturbation"] = {
            p: stats([c for c in mine if c["perturbation"] == p])
            for p in dict.fromkeys(c["perturbation"] for c in mine)
        }
        entry["by_gait"] = {
            g: stats([c for c in mine if c["gait"] == g]) for g in dict.fromkeys(c["gait"] for c in mine)
        }
        nominal = {
            (c["gait"], tuple(c["command"]), c["seed"]): c for c in mine if c["perturbation"] == "nominal"
        }
        rel = []
        for c in mine:
            n = nominal.get((c["gait"], tuple(c["command"]), c["seed"]))
            if (
                n
                and c["perturbation"] != "nominal"
                and n["distance_ratio"]
                and c["distance_ratio"] is not None
            ):
                rel.append(c["distance_ratio"] / n["distance_ratio"])
        entry["distance_vs_nominal_median"] = float(np.median(rel)) if rel else None
        out[mode] = entry
    return out


def headline(result: dict) -> dict:
    """The suite's figures for the metrics table (``transfer_*`` keys of the catalogue)."""
    out = {}
    summary = result["summary"]
    if "open" in summary:
        out["transfer_open_upright"] = summary["open"]["all"]["upright"]
        out["transfer_open_distance_vs_nominal"] = summary["open"]["distance_vs_nominal_median"]
    if "closed" in summary:
        out["transfer_closed_upright"] = summary["closed"]["all"]["upright"]
        out["transfer_closed_on_speed"] = summary["closed"]["all"]["on_speed"]
    return {k: (float("nan") if v is None else v) for k, v in out.items()}


def _cell_text(c: dict | None) -> str:
    if c is None:
        return "n/a"
    ratio = "n/a" if c["distance_ratio"] is None else f"{c['distance_ratio']:.2f}"
    if c["upright"]:
        drift = "" if c["heading_drift_rad"] is None else f", {c['heading_drift_rad']:+.2f} rad"
        return f"up, {ratio}{drift}"
    return f"fell {c['fell_at_s']:.1f} s"


def transfer_section(result: dict, name: str, mode: str) -> dict:
    """A report section (``write_report``'s format): one row per perturbation, one column per command;
    a cell is "up, distance ratio" or "fell T s" (seed 0)."""
    cells = [c for c in result["cells"] if c["mode"] == mode and c["seed"] == 0]
    cols = list(dict.fromkeys((c["gait"], tuple(c["command"])) for c in cells))
    rows = []
    for p in result["perturbations"]:
        found = {(c["gait"], tuple(c["command"])): c for c in cells if c["perturbation"] == p["name"]}
        if not found:
            continue
        s = result["summary"][mode]["by_perturbation"][p["name"]]
        rows.append([p["name"], *(_cell_text(found.get(k)) for k in cols), f"{100 * s['upright']:.0f}"])
    how = (
        "the actions generated in the training simulator, replayed unchanged"
        if mode == "open"
        else f"replanning every {result['replan_every']} control steps from the measured state"
    )
    desc = "; ".join(f"{p['name']}: {p['description']}" for p in result["perturbations"])
    s = result["summary"][mode]["all"]
    return {
        "title": f"Transfer, {'open' if mode == 'open' else 'closed'} loop ({name})",
        "text": f"{result['seconds']:g} s per command in perturbed MuJoCo C worlds, {how}. A cell: "
        "upright for the whole run, the distance along the command / commanded and the heading drift "
        "(final heading minus commanded), or when it fell. Overall "
        f"{100 * s['upright']:.0f} % of {s['runs']} runs upright, {100 * s['on_speed']:.0f} % within "
        f"{100 * SPEED_TOLERANCE:.0f} % of the commanded speed. Worlds: {desc}.",
        "header": ["world", *(f"{g} ({', '.join(f'{v:g}' for v in c)})" for g, c in cols), "upright [%]"],
        "rows": rows,
    }
