"""What the demo trains and measures: its budget of work (a fixed number of updates per method), the
reduced mode, the recipe for demonstrations from elsewhere, and the evaluation plan that fits the time
left under ``--budget-minutes``."""

from __future__ import annotations

from dataclasses import dataclass, replace

from dynaflow.config import PRESETS
from dynaflow.data.sources.gaits import EVAL_COMMANDS

GAIT_COMMANDS = EVAL_COMMANDS  # (vx, vy, yaw rate) per gait
WALK_CHECK = ("trot", (0.5, 0.0, 0.0))  # the demo's model must walk: upright, >= half this distance
WALK_FRACTION = 0.5
TRANSFER_VIDEO = ("closed", "push 30 N", "trot")  # the perturbed run the demo renders
#: How the demo trains on demonstrations that are not the bundled (simulated, feasible) ones: states no Go2
#: produced (docs: Motion clips, where each part is measured).
EXTERNAL_RECIPE = {
    "std_floor": "physical",
    "trunk": "window",
    "chain": 2,
    "rest_starts": 0.25,
    "ease_in": 0.5,
}
MAX_CLIP_VIDEOS = 6
DEFAULT_BUDGET_MINUTES = 45.0  # an upper limit: the reference workload takes ~15 min on a 2-core CPU
REDUCED_BELOW_MINUTES = 5.0

CPU = PRESETS["cpu"]  # the demo trains at `dynaflow train --preset cpu`'s settings

#: The reference workload's timings on the 2-core CPU BENCHMARKS.md names ("dynaflow demo", 2026-12-03,
#: empty cache): DynaFlow's updates per second after compiling and its compile, state-fm's updates per second
#: (compile included), and the seconds the stages after training took. The demo scales them by this
#: machine's measured update rate to say when it will finish, and to plan the evaluation inside
#: --budget-minutes.
REFERENCE = {"updates_per_s": 8.2, "compile_s": 63.0, "state_fm_updates_per_s": 27.0, "evaluation_s": 162.0}


@dataclass(frozen=True)
class DemoSettings:
    """What the demo trains and measures (the full mode; :func:`settings_for` shrinks it)."""

    horizon: int = CPU["horizon"]
    batch: int = CPU["batch"]
    d_model: int = CPU["d_model"]
    n_heads: int = CPU["n_heads"]
    depth: int = CPU["depth"]
    lr: float = CPU["lr"]
    ema_decay: float = CPU["ema_decay"]
    steps_per_epoch: int = CPU["steps_per_epoch"]
    val_windows: int = CPU["val_windows"]
    dynaflow_updates: int = 3600  # the budget of work: the same model on every machine
    state_fm_updates: int = 3600  # the baseline trains as many updates, same model size, split and seed
    max_clips: int = 16  # clips (episodes) scored on --data; evenly spaced over a larger dataset
    clip_seeds: int = 2
    seconds: float = 10.0  # generated motion per gait command
    eval_samples: int = 64
    eval_batch: int = 32
    long_per_gait: int = 2
    per_gait: int | None = None  # commands per gait (None: all of GAIT_COMMANDS)
    transfer_worlds: tuple[str, ...] | None = None  # the transfer suite's worlds (None: all), open loop
    transfer_closed: tuple[str, ...] | None = None  # those also run closed loop (None: all)
    video_size: tuple[int, int] = (480, 270)
    video_seconds: float = 10.0
    best_action: bool = True  # the best-action SAE (an optimisation per window: the slowest metric)
    solver: str = "one-step"  # Φ's contact solve (dynaflow train --solver); converged: data made with it too
    reduced: bool = False  # the quick mode (tests, a first look)


def settings_for(budget_minutes: float, updates: int | None = None, solver: str = "one-step") -> DemoSettings:
    """Full settings from 5 minutes of budget up; a reduced mode below (tests, a quick look). ``updates``
    replaces DynaFlow's budget of work (and the baseline's); ``solver`` is Φ's contact solve."""
    if budget_minutes >= REDUCED_BELOW_MINUTES:
        settings = DemoSettings()
    else:
        settings = DemoSettings(
            horizon=8,
            batch=16,
            d_model=64,
            depth=1,
            steps_per_epoch=20,
            val_windows=16,
            dynaflow_updates=200,
            state_fm_updates=100,
            seconds=1.0,
            max_clips=2,
            clip_seeds=1,
            eval_samples=8,
            eval_batch=8,
            long_per_gait=1,
            per_gait=1,
            transfer_worlds=("nominal", "reference", "push 30 N", "obs noise"),
            transfer_closed=("push 30 N", "obs noise"),
            video_size=(160, 90),
            video_seconds=0.5,
            best_action=False,
            reduced=True,
        )
    if updates is not None:
        settings = replace(settings, dynaflow_updates=updates, state_fm_updates=updates)
    return replace(settings, solver=solver)


#: Evaluation plans, from the reference down, with the share of the reference's time each takes: the
#: demo takes the first that fits the time left and says in its report which it ran.
PLANS = (
    ("reference", 1.0, {}),
    (
        "shorter runs",
        0.5,
        dict(seconds=5.0, video_seconds=5.0, eval_samples=32, long_per_gait=1, best_action=False),
    ),
    (
        "one command per gait",
        0.25,
        dict(
            seconds=5.0,
            video_seconds=5.0,
            eval_samples=16,
            long_per_gait=1,
            best_action=False,
            per_gait=1,
            clip_seeds=1,
            transfer_closed=("reference", "gains -20%", "push 30 N"),
        ),
    ),
)


def plan_evaluation(settings: DemoSettings, left_s: float, speed: float) -> tuple[DemoSettings, dict]:
    """The evaluation that fits ``left_s`` seconds, given this machine's ``speed`` (its DynaFlow update
    rate over the reference machine's): the reference plan when it fits, else the first shorter one that
    does (the last when none does). The reduced mode is planned as it is."""
    if settings.reduced:
        return settings, {"plan": "reduced mode", "estimate_s": None, "left_s": left_s}
    for name, share, changes in PLANS:
        need = share * REFERENCE["evaluation_s"] / max(speed, 1e-6)
        if need <= left_s or name == PLANS[-1][0]:
            plan = {"plan": name, "estimate_s": need, "left_s": left_s}
            if name != "reference":
                full_s = REFERENCE["evaluation_s"] / max(speed, 1e-6)
                plan["why"] = (
                    f"the reference evaluation needs about {full_s / 60:.1f} min here and "
                    f"{left_s / 60:.1f} min of --budget-minutes were left: {name} "
                    f"({', '.join(f'{k}={v}' for k, v in changes.items())})"
                )
            return replace(settings, **changes), plan
    raise AssertionError("unreachable")
