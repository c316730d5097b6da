"""``dynaflow data``: make demonstration datasets (gait library, kinematic, synthetic)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dynaflow.cli.common import (
    add_command,
    non_negative_int,
    npz_output,
    positive_float,
    positive_int,
    replacing,
)


def add_parser(sub) -> None:
    p = add_command(sub, "data", "make demonstration datasets")
    dsub = p.add_subparsers(dest="subcommand", required=True, metavar="SOURCE", parser_class=type(p))
    q = add_command(dsub, "gaits", "the scripted gait library (trot, pace, bound, pronk, stand) in MuJoCo C")
    q.add_argument("--out", required=True, help="output .npz (a summary .npz.json is written beside it)")
    q.add_argument("--episodes", type=positive_int("--episodes"), default=200, help="episodes, gaits in turn")
    q.add_argument("--seconds", type=positive_float("--seconds"), default=5.0, help="seconds per episode")
    q.add_argument("--seed", type=non_negative_int("--seed"), default=0, help="seed of the sampled commands")
    q.add_argument("--gaits", default="trot,pace,bound,pronk,stand", help="comma-separated gaits")
    q.add_argument("--compress", action="store_true", help="write a compressed NPZ")
    q.set_defaults(func=run_gaits)
    q = add_command(dsub, "kinematic", "kinematic (infeasible) demonstrations from a gait-library NPZ")
    q.add_argument(
        "--source",
        required=True,
        help="an NPZ written by `dynaflow data gaits`, or 'bundled' (the shipped one)",
    )
    q.add_argument("--out", required=True, help="output .npz")
    q.add_argument(
        "--time-scale",
        type=positive_float("--time-scale"),
        default=1.0,
        help="play the joint motion this much faster",
    )
    q.set_defaults(func=run_kinematic)
    q = add_command(
        dsub, "synthetic", "periodic conditioned motions simulated in MuJoCo C (tests, quick start)"
    )
    q.add_argument("--out", required=True, help="output .npz")
    q.add_argument("--episodes", type=positive_int("--episodes"), default=32, help="episodes")
    q.add_argument(
        "--steps", type=positive_int("--steps"), default=100, help="control steps per episode (50 Hz)"
    )
    q.add_argument("--seed", type=non_negative_int("--seed"), default=0, help="seed of the motions")
    q.set_defaults(func=run_synthetic)


def run_gaits(args: argparse.Namespace) -> int:
    from dynaflow.data import save_dataset
    from dynaflow.data.sources.gaits import COND_NAMES, SPECS, make_gait_dataset
    from dynaflow.fileio import atomic_write
    from dynaflow.jsonio import dumps
    from dynaflow.physics import create_go2_rollout

    out = npz_output(args.out)
    gaits = tuple(g.strip() for g in args.gaits.split(",") if g.strip())
    arrays, summary = make_gait_dataset(create_go2_rollout(), args.episodes, args.seconds, args.seed, gaits)
    summary["conditioning"] = list(COND_NAMES)
    replacing(out)
    save_dataset(out, compressed=args.compress, **arrays)
    atomic_write(Path(str(out) + ".json"), dumps(summary))
    print(
        f"wrote {out}: {summary['kept']} of {summary['episodes']} episodes kept "
        f"({args.seconds:g} s each, 50 Hz) in {summary['wall_seconds']:.1f} s; summary in {out}.json"
    )
    print(
        f"{'gait':6s} {'kept':>5s} {'dropped':>8s}  |mean error| vx, vy (m/s), yaw rate (rad/s)   "
        "contact phase offsets FL FR RL RR (cycles; designed)"
    )
    for g, r in summary["gaits"].items():
        err = ", ".join(f"{v:.3f}" for v in r["tracking_error_vx_vy_yaw"])
        offs = " ".join(f"{v:.2f}" for v in r["phase_offsets_FL_FR_RL_RR"]) if g != "stand" else "-"
        designed = " ".join(f"{v:.2f}" for v in SPECS[g].offsets) if g != "stand" else "-"
        print(f"{g:6s} {r['kept']:5d} {r['dropped']:8d}  {err:38s}  {offs} ({designed})")
    return 0


def run_kinematic(args: argparse.Namespace) -> int:
    from dynaflow.data import bundled_dataset, load_dataset, save_dataset
    from dynaflow.data.sources.kinematic import kinematic_from_gaits

    source = str(bundled_dataset()) if args.source == "bundled" else args.source
    out = npz_output(args.out, inputs=[source])
    ds = load_dataset(source)
    if ds.conditionings is None or ds.conditionings.shape[-1] < 3:
        raise ValueError(
            f"{source}: key 'conditionings': needs the commanded (vx, vy, yaw rate) first, "
            "as `dynaflow data gaits` writes them"
        )
    states = kinematic_from_gaits(ds.states, ds.conditionings, time_scale=args.time_scale)
    replacing(out)
    save_dataset(out, states, conditionings=ds.conditionings, episode_lengths=ds.lengths)
    print(f"wrote {out}: {states.shape[0]} kinematic episodes (no actions), time scale {args.time_scale:g}")
    return 0


def run_synthetic(args: argparse.Namespace) -> int:
    from dynaflow.data import save_dataset
    from dynaflow.data.sources.synthetic import synthetic_demos
    from dynaflow.physics import create_go2_rollout

    out = npz_output(args.out)
    d = synthetic_demos(create_go2_rollout(), episodes=args.episodes, steps=args.steps, seed=args.seed)
    replacing(out)
    save_dataset(out, **d)
    print(f"wrote {out}: states {d['states'].shape}, conditionings {d['conditionings'].shape}")
    return 0
