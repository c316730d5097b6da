"""``dynaflow demo``: the whole pipeline on the bundled gait data on a laptop CPU, for a fixed budget of work.

Stages (each with a progress bar): train DynaFlow and the ``state-fm`` baseline on the bundled
demonstrations (the same number of updates, model size, data split and seed) -> generate every gait at a
few commands, 10 s chained open loop, replayed in MuJoCo C -> the transfer suite -> evaluate both
checkpoints with every metric -> write ``DIR/report.md`` and ``DIR/report.html`` (headline, metrics table,
plots, one video per gait) and ``DIR/demo.json`` (the figures, the timings and the machine).

The demo's budget is work, not wall time (:mod:`~dynaflow.demo.settings`): a fixed number of updates per
method, so the same command gives the same model on any machine up to floating-point order; after the first
updates it prints when it will finish. ``--budget-minutes`` is an upper limit: it cuts training short (and
says the result is not the reference one), and the evaluation is planned inside what is left (shorter runs
when time is short, said in the report). Below 5 minutes: a reduced mode (a smaller model, shorter motions,
small videos) that still runs every stage; the tests use it.

``--data`` trains on demonstrations from elsewhere: motion clips imported with ``dynaflow data import``
or kinematic data from ``dynaflow data kinematic``. Such states were not produced by a Go2 in our
simulator, so the demo trains them with the recipe for infeasible demonstrations (:data:`EXTERNAL_RECIPE`:
physical std floors, the trunk's velocities compared by their window means, chained windows, some starts
from rest, eased into the demonstration), and the generation stage scores every clip under its own
conditioning (:mod:`dynaflow.evaluate.clips`), with a video per clip that shows the clip as a ghost. The
transfer stage runs when the data has the gait library's conditioning (its commands are the gait library's).
"""

from dynaflow.demo.progress import StageBar
from dynaflow.demo.run import run_demo
from dynaflow.demo.settings import (
    DEFAULT_BUDGET_MINUTES,
    EXTERNAL_RECIPE,
    GAIT_COMMANDS,
    MAX_CLIP_VIDEOS,
    REFERENCE,
    TRANSFER_VIDEO,
    WALK_CHECK,
    WALK_FRACTION,
    DemoSettings,
    plan_evaluation,
    settings_for,
)
from dynaflow.demo.stages import demo_commands, generate_clips, generate_gaits, run_transfer, train_method
from dynaflow.demo.summary import generation_section, print_summary

__all__ = [
    "DEFAULT_BUDGET_MINUTES",
    "EXTERNAL_RECIPE",
    "GAIT_COMMANDS",
    "MAX_CLIP_VIDEOS",
    "REFERENCE",
    "TRANSFER_VIDEO",
    "WALK_CHECK",
    "WALK_FRACTION",
    "DemoSettings",
    "StageBar",
    "demo_commands",
    "generate_clips",
    "generate_gaits",
    "generation_section",
    "plan_evaluation",
    "print_summary",
    "run_demo",
    "run_transfer",
    "settings_for",
    "train_method",
]
