"""The demo's stages: train a method for its budget of work, generate every gait (or every clip), run the
transfer suite, each writing its videos."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

from dynaflow.demo.progress import StageBar
from dynaflow.demo.settings import (
    CPU,
    GAIT_COMMANDS,
    MAX_CLIP_VIDEOS,
    TRANSFER_VIDEO,
    WALK_CHECK,
    WALK_FRACTION,
    DemoSettings,
)


def train_method(
    method: str,
    data: Path,
    out: Path,
    settings: DemoSettings,
    limit_s: float,
    seed: int,
    rollout,
    bar: StageBar,
    recipe: dict | None = None,
    on_rate: Callable[[float, int], None] | None = None,
) -> dict:
    """Train ``method`` for its budget of work (:attr:`DemoSettings.dynaflow_updates` or
    :attr:`~DemoSettings.state_fm_updates`), the learning-rate schedule spanning exactly those updates;
    ``limit_s`` (from ``--budget-minutes``) may cut it short, which the result says. ``on_rate`` is called
    once with the measured updates per second and the step, after the compile and a few updates."""
    from dynaflow.data.sources.gaits import start_state
    from dynaflow.train import TrainConfig, train

    updates = settings.dynaflow_updates if method == "dynaflow" else settings.state_fm_updates
    recipe = dict(recipe or {})
    if method != "dynaflow":  # chains and starts from rest need actions to roll out
        for key in ("chain", "rest_starts", "ease_in"):
            recipe.pop(key, None)
    config = TrainConfig.from_flat(
        **{
            **CPU,
            **dict(
                data=str(data),
                method=method,
                epochs=math.ceil(updates / settings.steps_per_epoch),
                max_steps=updates,
                batch=settings.batch,
                horizon=settings.horizon,
                lr=settings.lr,
                ema_decay=settings.ema_decay,
                d_model=settings.d_model,
                n_heads=settings.n_heads,
                depth=settings.depth,
                save_dir=str(out / "runs" / method),
                save_interval=10_000,
                seed=seed,
                steps_per_epoch=settings.steps_per_epoch,
                val_windows=settings.val_windows,
                time_budget_s=limit_s,
                solver=settings.solver,
            ),
            **recipe,
        }
    )
    t0 = time.perf_counter()
    hook = _TrainHook(bar, updates, on_rate)
    result = train(  # the demo's own runs; starts from rest where generation starts
        config, progress=False, rollout=rollout, hook=hook, overwrite=True, rest_state=start_state
    )
    first = result.history[0] if result.history else {}
    val = [r for r in result.history if "val_tre" in r]
    steps = int(result.state.step)
    return {
        "method": method,
        "run_dir": str(result.run_dir),
        "steps": steps,
        "updates_planned": updates,
        "cut_short": steps < updates,
        "seconds": time.perf_counter() - t0,
        "updates_per_s": hook.rate,
        "val_tre_untrained": first.get("val_tre"),
        "val_tre_final": val[-1]["val_tre"] if val else None,
        "val_tre_best": min(r["val_tre"] for r in val) if val else None,
    }


class _TrainHook:
    """Moves the stage's bar with the run's records, and measures the update rate once the first updates
    after the compile are done (``on_rate`` gets it once)."""

    WARM_UPDATES = 20

    def __init__(self, bar: StageBar, updates: int, on_rate: Callable[[float, int], None] | None) -> None:
        self.bar, self.updates, self.on_rate = bar, updates, on_rate
        self.first: tuple[int, float] | None = None  # (step, time) of the first record after the compile
        self.rate: float | None = None

    def __call__(self, record: dict) -> None:
        step, now = record["step"], time.perf_counter()
        if step >= 1 and self.first is None:
            self.first = (step, now)
        elif self.first is not None and self.rate is None and step - self.first[0] >= self.WARM_UPDATES:
            self.rate = (step - self.first[0]) / max(now - self.first[1], 1e-9)
            if self.on_rate is not None:
                self.on_rate(self.rate, step)
        note = f"step {step} of {self.updates}"
        if "val_tre" in record:
            note += f", val TRE {record['val_tre']:.3f}"
        self.bar.update(step / self.updates, note)


def demo_commands(settings: DemoSettings) -> dict[str, list]:
    """The gait commands the demo generates (the first ``per_gait`` of each gait)."""
    return {g: cmds[: settings.per_gait] for g, cmds in GAIT_COMMANDS.items()}


def _video_frames(settings: DemoSettings, policy) -> int:
    return int(round(settings.video_seconds / policy.rollout.ctrl_dt)) + 1


def generate_gaits(
    policy, settings: DemoSettings, seed: int, bar, out: Path
) -> tuple[list[dict], dict, list]:
    """Every gait at its commands: ``settings.seconds`` chained open loop, replayed in MuJoCo C; a video
    of the first command of each gait."""
    from dynaflow.data.sources.gaits import heading_velocity, start_state
    from dynaflow.generate import Segment, rollout_long
    from dynaflow.render import render_motion

    x0 = start_state(policy.rollout)
    jobs = [(g, c) for g, cmds in demo_commands(settings).items() for c in cmds]
    rows, videos, plans = [], {}, []
    for i, (gait, command) in enumerate(jobs):
        cond = Segment(gait, command, settings.seconds).cond()
        res = rollout_long(policy, x0, cond, seconds=settings.seconds, seed=seed)
        s = res.summary()
        row = {
            "gait": gait,
            "command": list(command),
            "seconds": s["seconds"],
            "generated_forward_m": s["forward_m"],
            "commanded_forward_m": command[0] * s["seconds"],
            "latency_ms_median": s.get("latency_ms_median"),
        }
        for fid in ("same", "reference"):
            row[f"replay_{fid}_upright"] = s.get(f"replay_{fid}_upright")
            row[f"replay_{fid}_forward_m"] = s.get(f"replay_{fid}_forward_m")
        executed = res.replays.get("same", res.states)
        warm = int(round(1.0 / policy.rollout.ctrl_dt))
        if len(executed) > warm + 2:  # achieved (vx, vy, yaw rate) in the heading frame, after 1 s
            row["achieved_same"] = [
                float(v) for v in heading_velocity(executed[warm:], policy.rollout.ctrl_dt)
            ]
        rows.append(row)
        plans.append(res.actions)
        if gait not in videos:
            n = _video_frames(settings, policy)
            path = out / "videos" / f"{policy.method}_{gait}.mp4"
            render_motion(
                res.replays.get("same", res.states)[:n],
                path,
                width=settings.video_size[0],
                height=settings.video_size[1],
                fast=True,
            )
            videos[gait] = str(path.relative_to(out))
        bar.update((i + 1) / len(jobs), f"{gait} {command[0]:.1f} m/s")
    return rows, videos, plans


def walk_check(policy, settings: DemoSettings, seed: int, open_row: dict) -> dict:
    """The demo's walk check: :data:`WALK_CHECK` run ``settings.seconds`` closed loop from a settled stand
    in MuJoCo C with the reference solver, replanning every half horizon from the measured state with the
    command held (the way a robot runs the model). Passed: upright throughout and at least
    :data:`WALK_FRACTION` of the commanded distance forward. ``open_row`` (the same command generated open
    loop, from :func:`generate_gaits`) is kept beside it for information."""
    from dynaflow.data.sources.gaits import start_state
    from dynaflow.generate import Segment, rollout_long

    gait, command = WALK_CHECK
    res = rollout_long(
        policy,
        start_state(policy.rollout),
        Segment(gait, command, settings.seconds).cond(),
        seconds=settings.seconds,
        closed_loop=True,
        fidelity="reference",
        seed=seed,
    )
    s = res.summary()
    commanded = command[0] * s["seconds"]
    return {
        "gait": gait,
        "command": list(command),
        "seconds": s["seconds"],
        "how": "closed loop in MuJoCo C (reference solver), replanning every half horizon, command held",
        "commanded_forward_m": commanded,
        "forward_m": s["forward_m"],
        "upright": s["upright"],
        "achieved_speed_mps": s.get("achieved_speed_mps"),
        "heading_error_rad": s.get("heading_error_rad"),
        "passed": bool(s["upright"]) and s["forward_m"] >= WALK_FRACTION * commanded,
        "open_loop": {k: v for k, v in open_row.items() if k.startswith(("replay_", "generated_"))},
    }


def run_transfer(
    policy, settings: DemoSettings, seed: int, plans: list, bar, out: Path
) -> tuple[dict, str | None]:
    """The transfer suite on the demo's motions (their actions replayed open loop in every world, and
    closed-loop runs in :attr:`DemoSettings.transfer_closed`), and a video of :data:`TRANSFER_VIDEO`."""
    from dynaflow.evaluate.transfer import transfer_suite
    from dynaflow.physics.worlds import TRANSFER_MATRIX, perturbation_by_name
    from dynaflow.render import render_motion

    worlds = (
        TRANSFER_MATRIX
        if settings.transfer_worlds is None
        else tuple(perturbation_by_name(n) for n in settings.transfer_worlds)
    )
    result = transfer_suite(
        policy,
        commands=demo_commands(settings),
        perturbations=worlds,
        seconds=settings.seconds,
        seed=seed,
        plans=plans,
        closed_worlds=settings.transfer_closed,
        keep=[TRANSFER_VIDEO],
        log=lambda m: bar.update(0.5, m),
    )
    kept = result.pop("kept")
    X = kept.get("|".join(TRANSFER_VIDEO))
    if X is None:
        return result, None
    n = _video_frames(settings, policy)
    path = out / "videos" / f"{policy.method}_{TRANSFER_VIDEO[2]}_{TRANSFER_VIDEO[1].replace(' ', '_')}.mp4"
    render_motion(X[:n], path, width=settings.video_size[0], height=settings.video_size[1], fast=True)
    return result, str(path.relative_to(out))


def generate_clips(
    policy, clips: list, settings: DemoSettings, seed: int, bar, out: Path
) -> tuple[dict, dict]:
    """Every clip under its own conditioning (:func:`~dynaflow.evaluate.clips.clip_suite`), and a video of
    the first clips with the clip as a ghost."""
    from dynaflow.evaluate.clips import clip_suite
    from dynaflow.render import render_motion

    keep = [c.name for c in clips[:MAX_CLIP_VIDEOS]]
    result = clip_suite(
        policy,
        clips,
        seconds=settings.seconds,
        seeds=settings.clip_seeds,
        seed=seed,
        keep=keep,
        log=lambda m: bar.update(0.5, m),
    )
    videos = {}
    n = _video_frames(settings, policy)
    for name, (X, ghost) in result.pop("kept").items():
        slug = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
        path = out / "videos" / f"{policy.method}_clip_{slug}.mp4"
        w, h = settings.video_size
        render_motion(X[:n], path, ghost=ghost[:n], width=w, height=h, fast=True)
        videos[f"clip {name}"] = str(path.relative_to(out))
    return result, videos
