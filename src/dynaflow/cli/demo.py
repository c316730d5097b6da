"""``dynaflow demo``: the whole pipeline on the bundled data within a time budget."""

from __future__ import annotations

import argparse
from pathlib import Path

from dynaflow.cli.common import add_command, non_negative_int, positive_float, positive_int


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "demo",
        "train DynaFlow and a baseline on the bundled data, evaluate, write a report with videos",
        "Trains DynaFlow and the state-only baseline on the bundled gait data for a fixed number of updates "
        "(the same model on every machine), generates every gait, evaluates both and writes report.md / "
        "report.html with plots and videos (about 15 minutes on a 2-core CPU; it prints its estimate).",
    )
    p.add_argument("--out", default="dynaflow_demo", help="output directory")
    p.add_argument(
        "--budget-minutes",
        type=positive_float("--budget-minutes"),
        default=None,
        help="upper limit of the whole demo's wall time, compile included (default 45): it cuts training "
        "short, saying the result is not the reference one, and the evaluation is planned inside it; "
        "below 5: a reduced mode (a small model, short motions)",
    )
    p.add_argument(
        "--updates",
        type=positive_int("--updates"),
        default=None,
        help="DynaFlow's and state-fm's training updates, the demo's budget of work (default: the "
        "reference's, 3600; 200 and 100 in the reduced mode)",
    )
    p.add_argument(
        "--seed", type=non_negative_int("--seed"), default=0, help="seed of training and evaluation"
    )
    p.add_argument(
        "--data",
        default=None,
        help="demonstrations from elsewhere instead of the bundled data: clips from `dynaflow data "
        "import` or kinematic data from `dynaflow data kinematic`, trained with the recipe for infeasible "
        "demonstrations and scored clip by clip (docs/clips.md#learning-from-clips)",
    )
    p.add_argument(
        "--solver",
        choices=("one-step", "converged"),
        default="one-step",
        help="Φ's contact solve for training and generation (dynaflow train --solver); converged: the "
        "elliptic cone solved to convergence, the gait data made again with it (about 1.6x per update)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dynaflow.demo import print_summary, run_demo

    summary = run_demo(args.out, args.budget_minutes, args.seed, args.data, args.updates, args.solver)
    print_summary(summary, Path(args.out))
    return 0
