"""``dynaflow demo``: the whole pipeline on the bundled gait data, on a laptop CPU, within a time budget.

Stages (each with a progress bar and the time left): train DynaFlow and the ``state-fm`` baseline on the
bundled demonstrations (wall-time budgets, the same model size, data split and seed) -> generate every
gait at a few commands, 10 s chained open loop, replayed in MuJoCo C -> evaluate both checkpoints with
every metric -> write ``DIR/report.md`` and ``DIR/report.html`` (metrics table, plots, one video per
gait) and ``DIR/demo.json`` (the figures, the timings and the machine).

The budget is split in fixed shares; the training stages stop on wall time (the step count they reach
depends on the machine and is reported). ``--budget-minutes`` below 5 switches to a reduced mode (a
smaller model, shorter motions, small videos) that still runs every stage: the tests use it.

``--data`` trains on demonstrations from elsewhere: motion clips imported with ``dynaflow data import``
or kinematic data from ``dynaflow data kinematic``. Such states were not produced by a Go2 in our
simulator, so the demo trains them with the recipe for infeasible demonstrations (:data:`EXTERNAL_RECIPE`:
physical std floors, the trunk's velocities compared by their window means, chained windows, some
starts from rest, eased into the demonstration), and the
generation stage scores every clip under its own conditioning (:mod:`dynaflow.evaluate.clips`), with a
video per clip that shows the clip as a ghost. The transfer stage runs when the data has the gait
library's conditioning (its commands are the gait library's).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from dynaflow.config import PRESETS
from dynaflow.data import bundled_dataset, load_dataset
from dynaflow.data.sources.gaits import COND_DIM, EVAL_COMMANDS
from dynaflow.jsonio import dumps

GAIT_COMMANDS = EVAL_COMMANDS  # (vx, vy, yaw rate) per gait
WALK_CHECK = ("trot", (0.5, 0.0, 0.0))  # the demo's model must walk: upright, >= half this distance
TRANSFER_VIDEO = ("closed", "push 30 N", "trot")  # the perturbed run the demo renders
#: How the demo trains on demonstrations that are not the bundled (simulated, feasible) ones: states no Go2
#: produced (README: From motion capture, where each part is measured).
EXTERNAL_RECIPE = {
    "std_floor": "physical",
    "trunk": "window",
    "chain": 2,
    "rest_starts": 0.25,
    "ease_in": 0.5,
}
MAX_CLIP_VIDEOS = 6


_CPU = PRESETS["cpu"]  # the demo trains at `dynaflow train --preset cpu`'s settings


@dataclass(frozen=True)
class DemoSettings:
    """What the demo trains and measures (the full mode; :func:`settings_for` shrinks it)."""

    horizon: int = _CPU["horizon"]
    batch: int = _CPU["batch"]
    d_model: int = _CPU["d_model"]
    n_heads: int = _CPU["n_heads"]
    depth: int = _CPU["depth"]
    lr: float = _CPU["lr"]
    ema_decay: float = _CPU["ema_decay"]
    steps_per_epoch: int = _CPU["steps_per_epoch"]
    val_windows: int = _CPU["val_windows"]
    max_clips: int = 16  # clips (episodes) scored on --data; evenly spaced over a larger dataset
    clip_seeds: int = 2
    dynaflow_share: float = 0.58  # of the budget, compile included
    state_fm_share: float = 0.08
    seconds: float = 10.0  # generated motion per gait command
    eval_samples: int = 64
    eval_batch: int = 32
    long_per_gait: int = 2
    transfer_worlds: tuple[str, ...] | None = None  # the transfer suite's worlds (None: all), open loop
    transfer_closed: tuple[str, ...] | None = None  # those also run closed loop (None: all)
    video_size: tuple[int, int] = (480, 270)
    video_seconds: float = 10.0
    reduced: bool = False  # the quick mode: one command per gait, no best-action SAE


def settings_for(budget_minutes: float) -> DemoSettings:
    """Full settings from 5 minutes of budget up; a reduced mode below (tests, a quick look)."""
    if budget_minutes >= 5:
        return DemoSettings()
    return DemoSettings(
        horizon=8,
        batch=16,
        d_model=64,
        depth=1,
        steps_per_epoch=20,
        val_windows=16,
        seconds=1.0,
        max_clips=2,
        clip_seeds=1,
        eval_samples=8,
        eval_batch=8,
        long_per_gait=1,
        transfer_worlds=("nominal", "push 30 N", "obs noise"),
        transfer_closed=("push 30 N", "obs noise"),
        video_size=(160, 90),
        video_seconds=0.5,
        dynaflow_share=0.35,
        state_fm_share=0.15,
        reduced=True,
    )


class StageBar:
    """``[2/5] train dynaflow  [######......] 50%  3:10 left`` on one line (a tty), or plain lines."""

    def __init__(self, stages: list[str], budget_s: float, stream=None):
        self.stages, self.budget_s = stages, budget_s
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.t0 = time.perf_counter()
        self.index, self.name, self.last_line = 0, "", 0.0

    def start(self, name: str) -> None:
        self.index = self.stages.index(name) + 1
        self.name = name
        self.update(0.0, force=True)

    def update(self, fraction: float, note: str = "", force: bool = False) -> None:
        now = time.perf_counter()
        if not force and not self.tty and now - self.last_line < 30:
            return  # logs get a line every 30 s at most
        self.last_line = now
        fraction = min(max(fraction, 0.0), 1.0)
        left = max(self.budget_s - (now - self.t0), 0.0)
        bar = "#" * int(20 * fraction) + "." * (20 - int(20 * fraction))
        text = (
            f"[{self.index}/{len(self.stages)}] {self.name:<16s} [{bar}] {100 * fraction:3.0f}%  "
            f"{int(left // 60)}:{int(left % 60):02d} of the budget left  {note}"
        )
        if self.tty:
            self.stream.write("\r" + text[:120].ljust(120))
        else:
            self.stream.write(text.rstrip() + "\n")
        self.stream.flush()

    def done(self, message: str) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 120 + "\r")
        elapsed = time.perf_counter() - self.t0
        self.stream.write(f"[{self.index}/{len(self.stages)}] {message} ({elapsed / 60:.1f} min elapsed)\n")
        self.stream.flush()


def _machine() -> str:
    import jax

    dev = jax.devices()[0]
    return (
        f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores, JAX {jax.__version__} on "
        f"{dev.platform} ({dev.device_kind})"
    )


def _train(
    method: str,
    data: Path,
    out: Path,
    settings: DemoSettings,
    budget_s: float,
    seed: int,
    rollout,
    bar,
    recipe: dict | None = None,
) -> dict:
    from dynaflow.train import TrainConfig, train

    recipe = dict(recipe or {})
    if method != "dynaflow":  # chains and starts from rest need actions to roll out
        recipe.pop("chain", None)
        recipe.pop("rest_starts", None)
        recipe.pop("ease_in", None)
    config = TrainConfig.from_flat(
        **{
            **_CPU,
            **dict(
                data=str(data),
                method=method,
                epochs=10_000,
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
                time_budget_s=budget_s,
            ),
            **recipe,
        }
    )
    t0 = time.perf_counter()
    last = {}

    def hook(record: dict) -> None:
        last.update(record)
        note = f"step {record['step']}"
        if "val_tre" in record:
            note += f", val TRE {record['val_tre']:.3f}"
        bar.update((time.perf_counter() - t0) / budget_s, note)

    from dynaflow.data.sources.gaits import start_state

    result = train(  # the demo's own runs; starts from rest where generation starts
        config, progress=False, rollout=rollout, hook=hook, overwrite=True, rest_state=start_state
    )
    first = result.history[0] if result.history else {}
    val = [r for r in result.history if "val_tre" in r]
    return {
        "method": method,
        "run_dir": str(result.run_dir),
        "steps": int(result.state.step),
        "seconds": time.perf_counter() - t0,
        "val_tre_untrained": first.get("val_tre"),
        "val_tre_final": val[-1]["val_tre"] if val else None,
        "val_tre_best": min(r["val_tre"] for r in val) if val else None,
    }


def _demo_commands(settings: DemoSettings) -> dict[str, list]:
    """The gait commands the demo generates (the first of each gait in the reduced mode)."""
    per_gait = 1 if settings.reduced else None
    return {g: cmds[:per_gait] for g, cmds in GAIT_COMMANDS.items()}


def _generate(policy, settings: DemoSettings, seed: int, bar, out: Path) -> tuple[list[dict], dict, list]:
    """Every gait at its commands: ``settings.seconds`` chained open loop, replayed in MuJoCo C; a video
    of the first command of each gait."""
    from dynaflow.data.sources.gaits import heading_velocity, start_state
    from dynaflow.generate import Segment, rollout_long
    from dynaflow.render import render_motion

    x0 = start_state(policy.rollout)
    jobs = [(g, c) for g, cmds in _demo_commands(settings).items() for c in cmds]
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
            n = int(round(settings.video_seconds / policy.rollout.ctrl_dt)) + 1
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


def _transfer(
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
        commands=_demo_commands(settings),
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
    n = int(round(settings.video_seconds / policy.rollout.ctrl_dt)) + 1
    path = out / "videos" / f"{policy.method}_{TRANSFER_VIDEO[2]}_{TRANSFER_VIDEO[1].replace(' ', '_')}.mp4"
    render_motion(X[:n], path, width=settings.video_size[0], height=settings.video_size[1], fast=True)
    return result, str(path.relative_to(out))


def _generate_clips(
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
    n = int(round(settings.video_seconds / policy.rollout.ctrl_dt)) + 1
    for name, (X, ghost) in result.pop("kept").items():
        slug = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
        path = out / "videos" / f"{policy.method}_clip_{slug}.mp4"
        w, h = settings.video_size
        render_motion(X[:n], path, ghost=ghost[:n], width=w, height=h, fast=True)
        videos[f"clip {name}"] = str(path.relative_to(out))
    return result, videos


def _generation_section(rows: list[dict]) -> dict:
    def yes(v):
        return "n/a" if v is None else ("yes" if v else "no")

    def num(v, spec):
        return "n/a" if v is None else format(v, spec)

    return {
        "title": "Generation per gait (DynaFlow, chained open loop, replayed in MuJoCo C)",
        "text": "Each row: the gait and command (vx m/s, vy m/s, yaw rate rad/s) held for the whole motion, "
        "chained windows from a settled standing state; the generated actions are replayed open loop in "
        "MuJoCo C with the training simulator (same) and the converged reference simulator. Commanded "
        "forward is vx × duration (a turning command curves away from the x axis).",
        "header": [
            "gait / command",
            "seconds",
            "achieved vx, yaw rate in MuJoCo C (same) after 1 s",
            "commanded forward [m]",
            "generated forward [m]",
            "replay same: upright, forward [m]",
            "replay reference: upright, forward [m]",
            "sampler latency [ms]",
        ],
        "rows": [
            [
                f"{r['gait']} ({', '.join(f'{v:g}' for v in r['command'])})",
                f"{r['seconds']:.1f}",
                "n/a"
                if r.get("achieved_same") is None
                else f"{r['achieved_same'][0]:.2f} m/s, {r['achieved_same'][2]:.2f} rad/s",
                f"{r['commanded_forward_m']:.2f}" + (" (turning)" if r["command"][2] else ""),
                f"{r['generated_forward_m']:.2f}",
                f"{yes(r['replay_same_upright'])}, {num(r['replay_same_forward_m'], '.2f')}",
                f"{yes(r['replay_reference_upright'])}, {num(r['replay_reference_forward_m'], '.2f')}",
                num(r["latency_ms_median"], ".1f"),
            ]
            for r in rows
        ],
    }


def run_demo(
    out: str | Path = "dynaflow_demo",
    budget_minutes: float = 15.0,
    seed: int = 0,
    data: str | Path | None = None,
) -> dict:
    """Run the demo into ``out``; returns (and writes to ``out/demo.json``) its figures. ``data``: train
    and evaluate on this NPZ instead of the bundled one (imported clips, kinematic demonstrations), as
    infeasible demonstrations (module docstring)."""
    from dynaflow.evaluate import evaluate_report
    from dynaflow.physics import create_go2_rollout
    from dynaflow.policy import DynaFlowPolicy

    if not budget_minutes > 0:
        raise ValueError(f"--budget-minutes: expected > 0, got {budget_minutes}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = settings_for(budget_minutes)
    budget = 60.0 * budget_minutes
    t0 = time.perf_counter()
    stages = ["train dynaflow", "train state-fm", "generate", "transfer", "evaluate", "report"]
    bar = StageBar(stages, budget)
    bundled = data is None or Path(data).resolve() == bundled_dataset().resolve()
    data = bundled_dataset() if data is None else Path(data)
    ds = load_dataset(data)
    import_summary: dict = {}
    if not bundled:
        from dynaflow.evaluate.clips import read_summary

        import_summary = read_summary(data) or {}
    gait_layout = ds.cond_dim == COND_DIM
    if gait_layout:  # 4 clip styles also make 7 numbers: the import summary names them
        names = import_summary.get("conditioning") or []
        gait_layout = not any(str(n).startswith("style_") for n in names)
    if bundled and not gait_layout:
        raise ValueError(f"{data}: key 'conditionings': expected the gait library's {COND_DIM}-D layout")
    print(
        f"DynaFlow demo: {ds.num_episodes} episodes ({data.name}"
        f"{'' if bundled else ', trained as infeasible demonstrations'}), budget {budget_minutes:g} min"
        f"{' (reduced mode)' if budget_minutes < 5 else ''}, output in {out}/",
        file=sys.stderr,
    )
    rollout = create_go2_rollout()
    recipe = {} if bundled else dict(EXTERNAL_RECIPE)
    if not bundled:
        if ds.num_episodes < 10 or isinstance(import_summary.get("clips"), list):
            # imported clips (each its own style) or a handful of episodes: train on every one (each is
            # scored clip by clip; a held-out clip's style would never be seen, and `best` would be
            # picked on it)
            recipe["val_fraction"] = 0.0
    summary: dict = {
        "budget_minutes": budget_minutes,
        "seed": seed,
        "settings": asdict(settings),
        "data": {"path": str(data), "bundled": bundled, "episodes": ds.num_episodes, "recipe": recipe},
    }

    runs = {}
    for name, share in (("dynaflow", settings.dynaflow_share), ("state-fm", settings.state_fm_share)):
        bar.start(f"train {name}")
        runs[name] = _train(name, data, out, settings, share * budget, seed, rollout, bar, recipe)
        r = runs[name]
        bar.done(
            f"trained {name}: {r['steps']} steps in {r['seconds']:.0f} s, val TRE "
            f"{r['val_tre_untrained'] or float('nan'):.3f} -> {r['val_tre_final'] or float('nan'):.3f}"
        )
    summary["training"] = runs

    bar.start("generate")
    policy = DynaFlowPolicy.from_checkpoint(runs["dynaflow"]["run_dir"], rollout=rollout)
    sections, plans, videos = [], None, {}
    if bundled:
        rows, videos, plans = _generate(policy, settings, seed, bar, out)
        summary["generation"] = rows
        sections.append(_generation_section(rows))
        walk = next(r for r in rows if r["gait"] == WALK_CHECK[0] and tuple(r["command"]) == WALK_CHECK[1])
        walks = (
            bool(walk["replay_same_upright"])
            and walk["replay_same_forward_m"] >= 0.5 * walk["commanded_forward_m"]
        )
        summary["walk_check"] = {**walk, "passed": walks}
        bar.done(
            f"generated {len(rows)} motions of {settings.seconds:g} s; trot 0.5 m/s replayed in MuJoCo C: "
            f"{walk['replay_same_forward_m']:.2f} m of {walk['commanded_forward_m']:.2f} m commanded, "
            f"upright {walk['replay_same_upright']}"
        )
    else:
        from dynaflow.evaluate.clips import clip_section, clip_suite, clips_of

        clips = clips_of(ds, import_summary, settings.max_clips)
        clip_result, videos = _generate_clips(policy, clips, settings, seed, bar, out)
        summary["clips"] = {k: clip_result[k] for k in ("cells", "summary", "seconds", "fidelity")}
        sections.append(clip_section(clip_result, "DynaFlow"))
        baseline = DynaFlowPolicy.from_checkpoint(runs["state-fm"]["run_dir"], rollout=rollout)
        side = clip_suite(baseline, clips, seconds=settings.seconds, seeds=settings.clip_seeds, seed=seed)
        side.pop("kept")
        summary["clips_state_fm"] = {k: side[k] for k in ("cells", "summary", "seconds", "fidelity")}
        sections.append(clip_section(side, "state-fm"))
        a = clip_result["summary"]["all"]
        bar.done(
            f"generated {len(clip_result['summary']['clips'])} clips x {settings.clip_seeds} seeds of "
            f"{settings.seconds:g} s: {100 * a['upright']:.0f} % upright in the reference simulator"
        )

    bar.start("transfer")
    if gait_layout:
        transfer, transfer_video = _transfer(policy, settings, seed, plans, bar, out)
        if transfer_video:
            videos["transfer"] = transfer_video
        summary["transfer"] = {k: transfer[k] for k in ("summary", "timing_s", "replan_every", "seconds")}
        t_open = transfer["summary"].get("open", {}).get("all", {})
        t_closed = transfer["summary"].get("closed", {}).get("all", {})
        bar.done(
            f"transfer: {100 * t_open.get('upright', float('nan')):.0f} % of open-loop and "
            f"{100 * t_closed.get('upright', float('nan')):.0f} % of closed-loop runs upright in "
            f"{len(transfer['perturbations'])} worlds"
        )
    else:
        transfer = None
        bar.done("transfer: skipped (the suite's commands are the gait library's; this data has its own)")

    bar.start("evaluate")
    provenance = {
        "command": f"dynaflow demo --out {out} --budget-minutes {budget_minutes:g} --seed {seed}"
        + ("" if bundled else f" --data {data}"),
        "dataset": str(data),
        "seeds": {"training": seed, "evaluation": seed},
        "machine": _machine(),
        "notes": f"DynaFlow trained {runs['dynaflow']['steps']} steps and state-fm "
        f"{runs['state-fm']['steps']} steps within the demo's {budget_minutes:g}-minute budget "
        "(same model size, data split and seed).",
    }
    n_done = []

    def log(message: str) -> None:
        n_done.append(message)
        bar.update(len(n_done) / 2, message)

    paths = evaluate_report(
        [runs["dynaflow"]["run_dir"], runs["state-fm"]["run_dir"]],
        data,
        out,
        provenance,
        log=log,
        sections=sections,
        transfer_results=None if transfer is None else {"dynaflow": transfer},
        extra_videos={"dynaflow": list(videos.values())},
        num_samples=settings.eval_samples,
        batch=settings.eval_batch,
        long_seconds=settings.seconds,
        long_per_group=settings.long_per_gait,
        best_action=not settings.reduced,
        seed=seed,
    )
    bar.done("evaluated DynaFlow and state-fm")
    bar.start("report")
    metrics = json.loads(Path(paths["metrics"]).read_text())
    summary["metrics"] = {r["name"]: r["metrics"] for r in metrics["runs"]}
    summary["machine"] = provenance["machine"]
    summary["wall_seconds"] = time.perf_counter() - t0
    summary["report"] = {"markdown": str(paths["markdown"]), "html": str(paths["html"])}
    summary["videos"] = videos
    (out / "demo.json").write_text(dumps(summary))
    bar.done("report written")
    return summary


def print_summary(summary: dict, out: Path) -> None:
    """Where everything is, and the headline figures."""
    m = summary["metrics"]
    w = summary.get("walk_check")
    print(f"\nDynaFlow demo finished in {summary['wall_seconds'] / 60:.1f} min on {summary['machine']}")
    for name, r in summary["training"].items():
        print(
            f"  {name:9s} {r['steps']:5d} training steps, val TRE "
            + ("n/a (no validation split)" if r["val_tre_final"] is None else f"{r['val_tre_final']:.3f}")
            + f"  ({r['run_dir']})"
        )
    for name in m:
        mm = m[name]
        sae = mm.get("sae_one_step_max")
        print(
            f"  {name:9s} TRE {mm['tre']:.3f}, one-step SAE max "
            + ("n/a" if sae is None else f"{sae:.1e}")
            + f", foot penetration max {100 * mm['foot_penetration_max']:.1f} cm"
        )
    if w is not None:
        print(
            f"  walk check (trot 0.5 m/s, {w['seconds']:.0f} s, replayed open loop in MuJoCo C): "
            f"{w['replay_same_forward_m']:.2f} m forward of {w['commanded_forward_m']:.2f} m commanded, "
            f"upright {w['replay_same_upright']} -> {'PASSED' if w['passed'] else 'FAILED'}"
        )
    clips = summary.get("clips")
    if clips is not None:
        a = clips["summary"]["all"]

        def pct(v):
            return "n/a" if v is None else f"{100 * v:.0f} %"

        print(
            f"  clips ({a['runs']} runs of {clips['seconds']:g} s from a stand, {clips['fidelity']}): "
            f"upright {pct(a['upright'])}, speed {pct(a['speed_ok'])}, direction {pct(a['direction_ok'])}, "
            f"turns {pct(a['turn_ok'])}, style {pct(a['style_ok'])}, contact pattern {pct(a['contacts_ok'])}"
        )
    t = {k: v["all"] for k, v in summary.get("transfer", {}).get("summary", {}).items()}
    if t:
        runs = ", ".join(f"{k} loop {100 * v['upright']:.0f} % of {v['runs']} upright" for k, v in t.items())
        print(f"  transfer (changed worlds, README: Transfer): {runs}")
    print(f"  report: {summary['report']['markdown']} and {summary['report']['html']}")
    print(f"  videos: {', '.join(str(out / v) for v in summary['videos'].values())}")
    print(f"  checkpoints: {out / 'runs'}/{{dynaflow,state-fm}}; figures: {out / 'demo.json'}")
