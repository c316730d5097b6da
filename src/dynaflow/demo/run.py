"""``run_demo``: the demo's stages in order (train both methods, plan the evaluation, generate, transfer,
evaluate, report), each a step below."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from dynaflow.data import bundled_dataset, load_dataset
from dynaflow.data.conditioning import COND_DIM
from dynaflow.demo.progress import StageBar
from dynaflow.demo.settings import (
    DEFAULT_BUDGET_MINUTES,
    EXTERNAL_RECIPE,
    REDUCED_BELOW_MINUTES,
    REFERENCE,
    WALK_CHECK,
    DemoSettings,
    plan_evaluation,
    settings_for,
)
from dynaflow.demo.stages import generate_clips, generate_gaits, run_transfer, train_method, walk_check
from dynaflow.demo.summary import generation_section
from dynaflow.jsonio import dumps

STAGES = ["train dynaflow", "train state-fm", "generate", "transfer", "evaluate", "report"]
#: Shares of --budget-minutes each training may use at most (from the demo's start): the rest is the
#: evaluation's.
TRAIN_LIMITS = {"dynaflow": 0.70, "state-fm": 0.80}


@dataclass
class _Demo:
    """One demo run: where it writes, what it trains on, its settings, its clock and what it found."""

    out: Path
    data: Path
    bundled: bool
    gait_layout: bool
    import_summary: dict
    settings: DemoSettings
    budget_minutes: float
    seed: int
    bar: StageBar
    recipe: dict
    t0: float = field(default_factory=time.perf_counter)
    summary: dict = field(default_factory=dict)
    runs: dict = field(default_factory=dict)
    videos: dict = field(default_factory=dict)
    sections: list = field(default_factory=list)
    speed: float | None = None  # this machine's DynaFlow update rate over the reference machine's


def run_demo(
    out: str | Path = "dynaflow_demo",
    budget_minutes: float | None = None,
    seed: int = 0,
    data: str | Path | None = None,
    updates: int | None = None,
    solver: str = "one-step",
) -> dict:
    """Run the demo into ``out``; returns (and writes to ``out/demo.json``) its figures.

    The demo trains a fixed amount of work (``updates``, default the reference's
    :attr:`~dynaflow.demo.settings.DemoSettings.dynaflow_updates`), so the same command gives the same
    model on any machine; ``budget_minutes`` (default :data:`~dynaflow.demo.settings.DEFAULT_BUDGET_MINUTES`)
    is an upper limit (below 5: the reduced mode) that cuts
    training short, saying so, and within which the evaluation is planned. ``data``: train and evaluate on
    this NPZ instead of the bundled one (imported clips, kinematic demonstrations), as infeasible
    demonstrations. ``solver``: Φ's contact solve (``--solver``); with ``"converged"`` and the bundled data,
    the gait library's data is made again with that solve (a few seconds), so data and simulator agree."""
    from dynaflow.physics import create_go2_rollout

    demo = _prepare(
        out, DEFAULT_BUDGET_MINUTES if budget_minutes is None else budget_minutes, seed, data, updates, solver
    )
    rollout = create_go2_rollout(solver=solver)
    try:
        _train_both(demo, rollout)
        policy = _plan_and_load(demo, rollout)
        plans = _generate(demo, policy, rollout)
        transfer = _transfer(demo, policy, plans)
        paths = _evaluate(demo, transfer)
        return _write(demo, paths)
    finally:
        demo.bar.close()


def _prepare(out, budget_minutes: float, seed: int, data, updates: int | None, solver: str) -> _Demo:
    """Check the arguments, load the data, choose the recipe, and say what the demo will do."""
    if not budget_minutes > 0:
        raise ValueError(f"--budget-minutes: expected > 0, got {budget_minutes}")
    if updates is not None and updates < 1:
        raise ValueError(f"--updates: expected >= 1, got {updates}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bundled = data is None or Path(data).resolve() == bundled_dataset().resolve()
    data = bundled_dataset() if data is None else Path(data)
    if bundled and solver != "one-step":
        data = _gait_data(out, solver)
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
    recipe = {} if bundled else dict(EXTERNAL_RECIPE)
    if not bundled and (ds.num_episodes < 10 or isinstance(import_summary.get("clips"), list)):
        # imported clips (each its own style) or a handful of episodes: train on every one (each is scored
        # clip by clip; a held-out clip's style would never be seen, and `best` would be picked on it)
        recipe["val_fraction"] = 0.0
    settings = settings_for(budget_minutes, updates, solver)
    demo = _Demo(
        out, data, bundled, gait_layout, import_summary, settings, budget_minutes, seed,
        StageBar(STAGES, 60.0 * budget_minutes), recipe,
    )  # fmt: skip
    demo.summary.update(
        budget_minutes=budget_minutes,
        seed=seed,
        settings=asdict(settings),
        data={"path": str(data), "bundled": bundled, "episodes": ds.num_episodes, "recipe": recipe},
    )
    print(_opening_line(demo, ds.num_episodes), file=sys.stderr)
    return demo


def _gait_data(out: Path, solver: str) -> Path:
    """The bundled data's recipe (the gait library: 100 episodes of 4 s, seed 0) made with Φ's ``solver``,
    written under ``out/data/`` (the bundled file was made with the one-step solve)."""
    from dynaflow.data import save_dataset
    from dynaflow.data.sources.gaits import make_gait_dataset
    from dynaflow.physics import create_go2_rollout

    path = out / "data" / f"go2_gaits_{solver}.npz"
    if not path.is_file():
        arrays, _ = make_gait_dataset(create_go2_rollout(solver=solver), episodes=100, seconds=4.0, seed=0)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_dataset(path, **arrays)
    return path


def _opening_line(demo: _Demo, episodes: int) -> str:
    s = demo.settings
    mode = " (reduced mode)" if demo.budget_minutes < REDUCED_BELOW_MINUTES else ""
    reference = (
        ""
        if s.reduced
        else f"; about {_reference_minutes(s):.0f} min on the 2-core CPU of BENCHMARKS.md, longer on a "
        "slower machine (an estimate follows the first updates)"
    )
    return (
        f"DynaFlow demo{mode}: {episodes} episodes ({demo.data.name}"
        f"{'' if demo.bundled else ', trained as infeasible demonstrations'}); trains DynaFlow "
        f"{s.dynaflow_updates:,} updates and state-fm {s.state_fm_updates:,}, then evaluates{reference}; "
        f"upper limit {demo.budget_minutes:g} min (--budget-minutes); output in {demo.out}/"
    )


def _reference_minutes(s: DemoSettings) -> float:
    """The whole demo on the reference machine, compiles included."""
    train_s = REFERENCE["compile_s"] + s.dynaflow_updates / REFERENCE["updates_per_s"]
    return (train_s + _after_dynaflow_s(s)) / 60


def _after_dynaflow_s(s: DemoSettings) -> float:
    """state-fm's training and the evaluation on the reference machine."""
    return s.state_fm_updates / REFERENCE["state_fm_updates_per_s"] + REFERENCE["evaluation_s"]


def _train_both(demo: _Demo, rollout) -> None:
    """DynaFlow, then the state-fm baseline: each its budget of work, at most its share of the limit."""
    for name in ("dynaflow", "state-fm"):
        demo.bar.start(f"train {name}")
        limit = TRAIN_LIMITS[name] * 60.0 * demo.budget_minutes - (time.perf_counter() - demo.t0)
        on_rate = _estimate(demo) if name == "dynaflow" else None
        r = train_method(
            name, demo.data, demo.out, demo.settings, max(limit, 1.0), demo.seed, rollout, demo.bar,
            demo.recipe, on_rate,
        )  # fmt: skip
        demo.runs[name] = r
        cut = " (cut short by --budget-minutes: not the reference result)" if r["cut_short"] else ""
        demo.bar.done(
            f"trained {name}: {r['steps']:,} of {r['updates_planned']:,} updates{cut} in "
            f"{r['seconds']:.0f} s, val TRE {r['val_tre_untrained'] or float('nan'):.3f} -> "
            f"{r['val_tre_final'] or float('nan'):.3f}"
        )
    demo.summary["training"] = demo.runs


def _estimate(demo: _Demo):
    """Once DynaFlow's update rate is measured: when training and the whole demo will finish here."""

    def on_rate(rate: float, step: int) -> None:
        s = demo.settings
        demo.speed = rate / REFERENCE["updates_per_s"]
        train_left = max(s.dynaflow_updates - step, 0) / rate
        rest = 0.0 if s.reduced else _after_dynaflow_s(s) / demo.speed
        elapsed = time.perf_counter() - demo.t0
        finish = datetime.now() + timedelta(seconds=train_left + rest)
        whole = (elapsed + train_left + rest) / 60
        demo.bar.say(
            f"DynaFlow trains at {rate:.2f} updates/s here ({demo.speed:.2f}x the reference machine): "
            f"training done in about {train_left / 60:.1f} min"
            + ("" if s.reduced else f", the demo in about {whole:.0f} min (around {finish:%H:%M})")
            + (
                f"; over the {demo.budget_minutes:g}-minute limit, so it will be cut short"
                if not s.reduced and whole > demo.budget_minutes
                else ""
            )
        )

    return on_rate


def _plan_and_load(demo: _Demo, rollout):
    """Plan the evaluation inside the time left, and load DynaFlow's checkpoint for generation."""
    from dynaflow.policy import DynaFlowPolicy

    speed = demo.speed or 1.0
    demo.settings, plan = plan_evaluation(demo.settings, demo.bar.left_s(), speed)
    demo.summary["evaluation_plan"] = plan
    if plan.get("why"):
        demo.bar.say(f"evaluation shortened: {plan['why']}")
    return DynaFlowPolicy.from_checkpoint(demo.runs["dynaflow"]["run_dir"], rollout=rollout)


def _generate(demo: _Demo, policy, rollout) -> list | None:
    """Every gait at its commands (bundled data), or every clip under its own conditioning."""
    demo.bar.start("generate")
    s = demo.settings
    if demo.bundled:
        rows, demo.videos, plans = generate_gaits(policy, s, demo.seed, demo.bar, demo.out)
        demo.summary["generation"] = rows
        demo.sections.append(generation_section(rows))
        walk = next(r for r in rows if r["gait"] == WALK_CHECK[0] and tuple(r["command"]) == WALK_CHECK[1])
        demo.summary["walk_check"] = w = walk_check(policy, s, demo.seed, walk)
        demo.bar.done(
            f"generated {len(rows)} motions of {s.seconds:g} s; walk check (trot 0.5 m/s, closed loop in "
            f"MuJoCo C, reference solver): {w['forward_m']:.2f} m of {w['commanded_forward_m']:.2f} m "
            f"commanded, upright {w['upright']}"
        )
        return plans
    _generate_clips(demo, policy, rollout)
    return None


def _generate_clips(demo: _Demo, policy, rollout) -> None:
    from dynaflow.evaluate.clips import clip_section, clip_suite, clips_of
    from dynaflow.policy import DynaFlowPolicy

    s = demo.settings
    clips = clips_of(load_dataset(demo.data), demo.import_summary, s.max_clips)
    clip_result, demo.videos = generate_clips(policy, clips, s, demo.seed, demo.bar, demo.out)
    keys = ("cells", "summary", "seconds", "fidelity")
    demo.summary["clips"] = {k: clip_result[k] for k in keys}
    demo.sections.append(clip_section(clip_result, "DynaFlow"))
    baseline = DynaFlowPolicy.from_checkpoint(demo.runs["state-fm"]["run_dir"], rollout=rollout)
    side = clip_suite(baseline, clips, seconds=s.seconds, seeds=s.clip_seeds, seed=demo.seed)
    side.pop("kept")
    demo.summary["clips_state_fm"] = {k: side[k] for k in keys}
    demo.sections.append(clip_section(side, "state-fm"))
    a = clip_result["summary"]["all"]
    demo.bar.done(
        f"generated {len(clip_result['summary']['clips'])} clips x {s.clip_seeds} seeds of "
        f"{s.seconds:g} s: {100 * a['upright']:.0f} % upright in the reference simulator"
    )


def _transfer(demo: _Demo, policy, plans: list | None) -> dict | None:
    """The transfer suite on the demo's motions, when the data has the gait library's conditioning."""
    demo.bar.start("transfer")
    if not demo.gait_layout:
        demo.bar.done(
            "transfer: skipped (the suite's commands are the gait library's; this data has its own)"
        )
        return None
    transfer, video = run_transfer(policy, demo.settings, demo.seed, plans, demo.bar, demo.out)
    if video:
        demo.videos["transfer"] = video
    demo.summary["transfer"] = {k: transfer[k] for k in ("summary", "timing_s", "replan_every", "seconds")}
    t_open = transfer["summary"].get("open", {}).get("all", {})
    t_closed = transfer["summary"].get("closed", {}).get("all", {})
    demo.bar.done(
        f"transfer: {100 * t_open.get('upright', float('nan')):.0f} % of open-loop and "
        f"{100 * t_closed.get('upright', float('nan')):.0f} % of closed-loop runs upright in "
        f"{len(transfer['perturbations'])} worlds"
    )
    return transfer


def _evaluate(demo: _Demo, transfer: dict | None) -> dict:
    """Both checkpoints with every metric, and the report (its provenance says what produced it)."""
    from dynaflow.evaluate import evaluate_report

    demo.bar.start("evaluate")
    s, runs = demo.settings, demo.runs
    plan = demo.summary.get("evaluation_plan") or {}
    command = f"dynaflow demo --out {demo.out} --budget-minutes {demo.budget_minutes:g} --seed {demo.seed}"
    if s.dynaflow_updates != settings_for(demo.budget_minutes).dynaflow_updates:
        command += f" --updates {s.dynaflow_updates}"
    if s.solver != "one-step":
        command += f" --solver {s.solver}"
    provenance = {
        "command": command + ("" if demo.bundled else f" --data {demo.data}"),
        "dataset": str(demo.data),
        "seeds": {"training": demo.seed, "evaluation": demo.seed},
        "machine": _machine(),
        "notes": f"DynaFlow trained {runs['dynaflow']['steps']:,} of {runs['dynaflow']['updates_planned']:,} "
        f"updates and state-fm {runs['state-fm']['steps']:,} of {runs['state-fm']['updates_planned']:,} "
        "(same model size, data split and seed)"
        + (
            "; training was cut short by --budget-minutes, so this is not the reference result"
            if any(r["cut_short"] for r in runs.values())
            else ""
        )
        + (f". Evaluation shortened to fit --budget-minutes: {plan['why']}" if plan.get("why") else "")
        + ".",
    }
    done = []

    def log(message: str) -> None:
        done.append(message)
        demo.bar.update(len(done) / 2, message)

    paths = evaluate_report(
        [runs["dynaflow"]["run_dir"], runs["state-fm"]["run_dir"]],
        demo.data,
        demo.out,
        provenance,
        log=log,
        sections=demo.sections,
        transfer_results=None if transfer is None else {"dynaflow": transfer},
        extra_videos={"dynaflow": list(demo.videos.values())},
        num_samples=s.eval_samples,
        batch=s.eval_batch,
        long_seconds=s.seconds,
        long_per_group=s.long_per_gait,
        best_action=s.best_action,
        seed=demo.seed,
    )
    demo.summary["machine"] = provenance["machine"]
    demo.bar.done("evaluated DynaFlow and state-fm")
    return paths


def _write(demo: _Demo, paths: dict) -> dict:
    """``demo.json``: every figure, the timings and the machine."""
    demo.bar.start("report")
    metrics = json.loads(Path(paths["metrics"]).read_text())
    summary = demo.summary
    summary["settings"] = asdict(demo.settings)  # as evaluated (the plan may have shortened it)
    summary["metrics"] = {r["name"]: r["metrics"] for r in metrics["runs"]}
    summary["wall_seconds"] = time.perf_counter() - demo.t0
    summary["report"] = {"markdown": str(paths["markdown"]), "html": str(paths["html"])}
    summary["videos"] = demo.videos
    (demo.out / "demo.json").write_text(dumps(summary))
    demo.bar.done("report written")
    return summary


def _machine() -> str:
    import jax

    dev = jax.devices()[0]
    return (
        f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores, JAX {jax.__version__} on "
        f"{dev.platform} ({dev.device_kind})"
    )
