"""``dynaflow data``: make demonstration datasets (gait library, kinematic, synthetic, imported clips)."""

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
    _add_gaits(dsub)
    _add_kinematic(dsub)
    _add_synthetic(dsub)
    _add_import(dsub)


def _add_gaits(dsub) -> None:
    q = add_command(dsub, "gaits", "the scripted gait library (trot, pace, bound, pronk, stand) in MuJoCo C")
    q.add_argument("--out", required=True, help="output .npz (a summary .npz.json is written beside it)")
    q.add_argument("--episodes", type=positive_int("--episodes"), default=200, help="episodes, gaits in turn")
    q.add_argument("--seconds", type=positive_float("--seconds"), default=5.0, help="seconds per episode")
    q.add_argument("--seed", type=non_negative_int("--seed"), default=0, help="seed of the sampled commands")
    q.add_argument("--gaits", default="trot,pace,bound,pronk,stand", help="comma-separated gaits")
    q.add_argument("--compress", action="store_true", help="write a compressed NPZ")
    q.add_argument(
        "--solver",
        choices=("one-step", "converged"),
        default="one-step",
        help="the contact solve the episodes are simulated with (Φ's --solver; converged: elliptic cone, "
        "Newton to convergence, whose recorded actions also run in the reference simulator)",
    )
    q.set_defaults(func=run_gaits)


def _add_kinematic(dsub) -> None:
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


def _add_synthetic(dsub) -> None:
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


def _add_import(dsub) -> None:
    q = add_command(
        dsub,
        "import",
        "retarget motion clips (AMP / motion_imitation JSON, qpos CSV or NPZ) onto the Go2",
        description=(
            "Retarget motion clips onto the Go2: resample to the control step, tile looping clips with "
            "their cycle offsets, clamp joints to the Go2's ranges, put the feet on the floor, and write one "
            "episode per clip with its measured heading-frame velocity and a style one-hot as conditioning. "
            "A summary (duration, speed, height offset, foot penetration and float, clamps) goes to OUT.json."
        ),
    )
    q.add_argument(
        "clips", nargs="+", metavar="CLIP", help="clip files (.json/.txt clips, .csv or .npz qpos rows)"
    )
    q.add_argument(
        "--robot",
        default="go2",
        help="source robot profile: go2, go1, a1, laikago or a JSON profile file",
    )
    q.add_argument("--out", required=True, help="output .npz (a summary .npz.json is written beside it)")
    q.add_argument(
        "--seconds",
        type=positive_float("--seconds"),
        default=None,
        help="episode length: looping clips are tiled to it (default 10 s), others cut to it "
        "(default: their length)",
    )
    q.add_argument(
        "--label",
        default=None,
        help="style label for every clip, or a comma-separated label per clip (default: each file's name "
        "without a trailing number, e.g. trot0 -> trot)",
    )
    q.add_argument(
        "--fps", type=positive_float("--fps"), default=None, help="frame rate of qpos rows (CSV/NPZ)"
    )
    q.add_argument(
        "--quat",
        choices=("xyzw", "wxyz"),
        default=None,
        help="quaternion order in the files (default: x y z w for JSON clips, w x y z for qpos rows)",
    )
    q.add_argument(
        "--keep-height",
        action="store_true",
        help="keep the clip's trunk height (do not put the feet on the floor)",
    )
    q.set_defaults(func=run_import, uses_jax=False)


def run_gaits(args: argparse.Namespace) -> int:
    from dynaflow.data import save_dataset
    from dynaflow.data.sources.gaits import COND_NAMES, SPECS, make_gait_dataset
    from dynaflow.fileio import atomic_write
    from dynaflow.jsonio import dumps
    from dynaflow.physics import create_go2_rollout

    out = npz_output(args.out)
    gaits = tuple(g.strip() for g in args.gaits.split(",") if g.strip())
    rollout = create_go2_rollout(solver=args.solver)
    arrays, summary = make_gait_dataset(rollout, args.episodes, args.seconds, args.seed, gaits)
    summary["conditioning"] = list(COND_NAMES)
    summary["solver"] = args.solver
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


def run_import(args: argparse.Namespace) -> int:
    from dynaflow.data import save_dataset
    from dynaflow.data.sources.clips import import_clips, load_profile
    from dynaflow.fileio import atomic_write
    from dynaflow.jsonio import dumps

    out = npz_output(args.out, inputs=args.clips)
    profile = load_profile(args.robot)
    labels = None
    if args.label is not None:
        labels = [x.strip() for x in args.label.split(",")]
        if any(not x for x in labels):
            raise ValueError(f"--label {args.label!r}: empty label")
        if len(labels) == 1:
            labels = labels * len(args.clips)
        elif len(labels) != len(args.clips):
            raise ValueError(
                f"--label: {len(labels)} labels for {len(args.clips)} clips (give one, or one per clip)"
            )
    arrays, summary = import_clips(
        args.clips,
        profile,
        seconds=args.seconds,
        labels=labels,
        fps=args.fps,
        quat_order=args.quat,
        place=not args.keep_height,
    )
    summary["command"] = args.command_line
    replacing(out)
    save_dataset(out, **arrays)
    atomic_write(Path(str(out) + ".json"), dumps(summary))
    n, t = arrays["states"].shape[:2]
    print(
        f"wrote {out}: {n} episode(s) of up to {t} steps (50 Hz) from profile {profile.name}; "
        f"summary in {out}.json"
    )
    print(f"conditioning: {', '.join(summary['conditioning'])}")
    print(
        f"{'clip':24s} {'label':10s} {'s':>5s} {'vx':>6s} {'vy':>6s} {'yaw/s':>6s} {'dz cm':>6s} "
        f"{'pen cm':>6s} {'float':>6s} {'clamps':>6s}  velocities"
    )
    for c in summary["clips"]:
        vx, vy, wz = c["speed_vx_vy_yaw_rate"]
        print(
            f"{Path(c['file']).name[:24]:24s} {c['label'][:10]:10s} {c['seconds']:5.1f} {vx:6.2f} {vy:6.2f} "
            f"{wz:6.2f} {100 * c['height_offset_m']:6.1f} {100 * c['foot_penetration_max_m']:6.1f} "
            f"{c['all_feet_above_1cm_fraction']:6.0%} {c['clamped_steps']:6d}  {c['velocities']}"
        )
    return 0
