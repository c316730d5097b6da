"""``dynaflow physics``: check the differentiable Go2 simulator on this machine."""

from __future__ import annotations

import argparse

from dynaflow.cli.common import add_command, non_negative_int, positive_int


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "physics",
        "check the differentiable Go2 simulator on this machine",
        "Standing for 5 s, MJX against MuJoCo C on random smooth action sequences, and one gradient through "
        "foot contacts; prints the figures and 'physics check: OK' or FAILED (exit code 1).",
    )
    p.add_argument(
        "--batch", type=positive_int("--batch"), default=32, help="random action sequences to compare"
    )
    p.add_argument("--horizon", type=positive_int("--horizon"), default=16, help="control steps per sequence")
    p.add_argument(
        "--substeps", type=positive_int("--substeps"), default=4, help="physics steps per 20 ms control step"
    )
    p.add_argument(
        "--fidelity",
        choices=("same", "reference"),
        default="same",
        help="MuJoCo C replay: the model's own options, or the converged reference solver",
    )
    p.add_argument("--seed", type=non_negative_int("--seed"), default=0, help="seed of the random actions")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dynaflow.physics.check import self_check

    check = self_check(args.batch, args.horizon, args.substeps, args.fidelity, args.seed)
    print("\n".join(check.lines))
    return 0 if check.ok else 1
