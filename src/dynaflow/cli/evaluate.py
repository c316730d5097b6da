"""``dynaflow evaluate``: score checkpoints on held-out demonstrations; a side-by-side report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dynaflow.cli.common import (
    add_checkpoint_args,
    add_command,
    load_policy,
    positive_float,
    positive_int,
    replacing,
)
from dynaflow.cli.generate import add_hold_args, hold_gains


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "evaluate",
        "score checkpoints on held-out demonstrations; write a report",
        "Every metric (docs/evaluation.md#metrics) for one or several checkpoints on the same windows and "
        "seeds. --out DIR writes metrics.json, report.md, report.html and plots/; with one checkpoint, "
        "--out X.json writes its metrics only and prints a table.",
    )
    add_checkpoint_args(p, many=True, samples=True)
    p.add_argument("--dataset", required=True, help="held-out demonstration NPZ")
    p.add_argument("--batch", type=positive_int("--batch"), default=32, help="samples per sampler call")
    p.add_argument("--no-reference", action="store_true", help="skip the reference-simulator replay")
    p.add_argument(
        "--no-best-action",
        action="store_true",
        help="skip the best-action one-step SAE (an action search per transition through MJX)",
    )
    p.add_argument("--long-seconds", type=float, default=10.0, help="long-horizon chaining length, 0 to skip")
    p.add_argument(
        "--long-per-gait", type=positive_int("--long-per-gait"), default=2, help="long-horizon runs per gait"
    )
    p.add_argument("--videos", action="store_true", help="render each checkpoint's long-horizon motion (MP4)")
    p.add_argument(
        "--transfer",
        action="store_true",
        help="also run the transfer suite: every gait command, open and closed loop, in perturbed MuJoCo C "
        "worlds (friction, mass and payload, PD gains, torque limits, latency, push, bumps, sensor noise)",
    )
    p.add_argument(
        "--transfer-worlds",
        default=None,
        help="comma-separated subset of the suite's worlds (default: all; names in docs/transfer.md)",
    )
    p.add_argument(
        "--transfer-seeds",
        type=positive_int("--transfer-seeds"),
        default=1,
        help="runs per command and world",
    )
    p.add_argument(
        "--transfer-seconds",
        type=positive_float("--transfer-seconds"),
        default=10.0,
        help="length of each transfer run (s)",
    )
    p.add_argument(
        "--replan-every",
        type=positive_int("--replan-every"),
        default=None,
        help="transfer, closed loop: control steps executed per replan (default: half the horizon)",
    )
    add_hold_args(p, "transfer, closed loop")
    p.add_argument(
        "--out",
        default="report",
        help="report directory (metrics.json, report.md, report.html, plots/); a .json path writes one "
        "checkpoint's metrics only (default report)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dynaflow.evaluate import evaluate_report, evaluate_run, format_markdown_table, format_table
    from dynaflow.evaluate.headline import format_headline
    from dynaflow.fileio import atomic_write, check_output
    from dynaflow.jsonio import dumps

    if not (args.long_seconds >= 0 and args.long_seconds < float("inf")):
        raise ValueError(f"--long-seconds: expected a finite number >= 0, got {args.long_seconds}")
    options = dict(
        num_samples=args.num_samples,
        batch=args.batch,
        ode_steps=args.ode_steps,
        seed=args.seed,
        reference=not args.no_reference,
        long_seconds=args.long_seconds,
        long_per_group=args.long_per_gait,
        best_action=not args.no_best_action,
    )
    transfer = None
    if args.transfer:
        from dynaflow.physics.worlds import TRANSFER_MATRIX, perturbation_by_name

        worlds = (
            TRANSFER_MATRIX
            if args.transfer_worlds is None
            else tuple(perturbation_by_name(n.strip()) for n in args.transfer_worlds.split(",") if n.strip())
        )
        transfer = dict(
            perturbations=worlds,
            seeds=args.transfer_seeds,
            seconds=args.transfer_seconds,
            replan_every=args.replan_every,
            seed=args.seed,
            ode_steps=args.ode_steps,
            hold=hold_gains(args),
        )
    out = Path(args.out)
    if out.suffix == ".json":
        if transfer is not None:
            raise ValueError(f"--transfer writes a report: give --out a directory, not {out}")
        if len(args.checkpoint) != 1:
            raise ValueError(f"--out {out}: a .json file holds one checkpoint's metrics; give a directory")
        check_output(out, "metrics file", inputs=[args.dataset])
        metrics = evaluate_run(load_policy(args, args.checkpoint[0]), args.dataset, **options)["metrics"]
        metrics["checkpoint"] = str(args.checkpoint[0])
        metrics["use_ema"] = bool(args.use_ema)
        replacing(out)
        atomic_write(out, dumps(metrics))
        print(format_table(metrics))
        print(f"wrote {out}")
        return 0
    check_output(out, "report", is_dir=True)
    provenance = {
        "command": args.command_line,
        "dataset": str(args.dataset),
        "seeds": {"evaluation": args.seed},
        "use_ema": bool(args.use_ema),
    }
    paths = evaluate_report(
        args.checkpoint,
        args.dataset,
        out,
        provenance,
        use_ema=args.use_ema,
        videos=args.videos,
        transfer=transfer,
        **options,
    )
    runs = json.loads(Path(paths["metrics"]).read_text())["runs"]
    print(format_headline(runs))  # the answer first, as the report opens: verdicts, then a table each
    print(format_markdown_table(runs, highlight=False))
    print(f"wrote {paths['markdown']}, {paths['html']} and {paths['metrics']}")
    return 0
