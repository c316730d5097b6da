"""``dynaflow demo``: the whole pipeline on the bundled data within a time budget."""

from __future__ import annotations

import argparse
from pathlib import Path

from dynaflow.cli.common import add_command, non_negative_int, positive_float


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "demo",
        "train DynaFlow and a baseline on the bundled data, evaluate, write a report with videos",
        "Trains DynaFlow and the state-only baseline on the bundled gait data, generates every gait, "
        "evaluates both and writes report.md / report.html with plots and videos, within a wall-time "
        "budget (about 13 minutes on a 2-core CPU).",
    )
    p.add_argument("--out", default="dynaflow_demo", help="output directory")
    p.add_argument(
        "--budget-minutes",
        type=positive_float("--budget-minutes"),
        default=15.0,
        help="wall-time budget of the whole demo, compile included; below 5: a reduced mode",
    )
    p.add_argument(
        "--seed", type=non_negative_int("--seed"), default=0, help="seed of training and evaluation"
    )
    p.add_argument(
        "--data",
        default=None,
        help="demonstrations from elsewhere instead of the bundled data: clips from `dynaflow data "
        "import` or kinematic data from `dynaflow data kinematic`, trained with the recipe for infeasible "
        "demonstrations and scored clip by clip (README: From motion capture)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dynaflow.demo import print_summary, run_demo

    summary = run_demo(args.out, args.budget_minutes, args.seed, args.data)
    print_summary(summary, Path(args.out))
    return 0
