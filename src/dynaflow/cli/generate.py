"""``dynaflow generate``: long-horizon motion, open-loop chaining or closed-loop replanning in MuJoCo C."""

from __future__ import annotations

import argparse
from pathlib import Path

from dynaflow.cli.common import (
    add_checkpoint_args,
    add_command,
    load_policy,
    non_negative_float,
    npz_output,
    parse_floats,
    positive_float,
    positive_int,
    replacing,
)
from dynaflow.robots.go2 import STATE_DIM


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "generate",
        "long-horizon motion: open-loop chaining or closed-loop replanning",
        "Chain the checkpoint's windows for --seconds (open loop, replayed in MuJoCo C in both simulators), "
        "or replan every --replan-every control steps from the measured state of a MuJoCo C simulation "
        "(--closed-loop, with optional pushes). Writes an NPZ, a .json summary and optionally a video.",
    )
    add_checkpoint_args(p)
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "--schedule",
        help="gait schedule, e.g. trot:0.5:4,turn:0.5:0.8:3,bound:0.3:3 (gait:vx:[vy:]yaw_rate:seconds)",
    )
    how.add_argument("--cond", help="a fixed conditioning vector (C numbers)")
    p.add_argument("--seconds", type=positive_float("--seconds"), default=10.0, help="length of the motion")
    p.add_argument(
        "--x0", default="start", help=f"initial state: start (settled standing), home, or {STATE_DIM} numbers"
    )
    p.add_argument(
        "--closed-loop", action="store_true", help="replan from the measured state of a MuJoCo C simulation"
    )
    p.add_argument(
        "--replan-every",
        type=positive_int("--replan-every"),
        default=None,
        help="control steps between replans (default: half the horizon)",
    )
    p.add_argument(
        "--fidelity",
        choices=("same", "reference"),
        default="same",
        help="closed loop: the simulator it runs in",
    )
    p.add_argument(
        "--push",
        action="append",
        default=[],
        help="closed loop: a push on the trunk, FORCE N@TIME s[:DURATION s][/x|-x|y|-y], e.g. 30N@5s "
        "(repeatable)",
    )
    add_hold_args(p, "closed loop")
    p.add_argument(
        "--out", default="motion.npz", help="output NPZ (states, actions, ...) and a .json summary beside it"
    )
    p.add_argument("--video", default=None, help="also render the motion to this .mp4 or .gif")
    p.set_defaults(func=run)


#: ``--hold-*`` flag -> (HoldGains field, help). The defaults are HoldGains' (docs/transfer.md).
HOLD_FLAGS = {
    "--hold-heading": ("heading", "rad/s of yaw-rate command per rad of heading error"),
    "--hold-yaw-rate": ("yaw_rate", "rad/s of yaw-rate command per rad/s of measured yaw-rate error"),
    "--hold-speed": ("speed", "m/s of vx command per m/s of measured vx error"),
    "--hold-speed-integral": ("speed_integral", "m/s of vx command per m of accumulated vx error"),
    "--hold-lateral": ("lateral", "m/s of vy command per m/s of measured vy error"),
    "--hold-integral-limit": ("integral_limit", "the accumulated vx error is held within ± this (m)"),
    "--hold-window": ("window", "seconds over which the measured heading and speed are averaged"),
    "--hold-settle": ("settle", "seconds from the start before speed is corrected"),
}


def add_hold_args(p: argparse.ArgumentParser, where: str) -> None:
    """``--hold-command/--no-hold-command`` and the holding gains (``--hold-*``, :data:`HOLD_FLAGS`)."""
    from dataclasses import fields

    from dynaflow.data.conditioning import HoldGains

    p.add_argument(
        "--hold-command",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"{where}: hold the commanded heading and speed, the conditioning corrected by the measured "
        "errors at each replan (the default; --no-hold-command feeds the command unchanged)",
    )
    defaults = {f.name: f.default for f in fields(HoldGains)}
    for flag, (name, text) in HOLD_FLAGS.items():
        p.add_argument(
            flag, type=non_negative_float(flag), default=defaults[name], help=f"{where}, holding: {text}"
        )


def hold_gains(args: argparse.Namespace):
    """The :class:`~dynaflow.data.conditioning.HoldGains` of the flags, or None with --no-hold-command."""
    from dynaflow.data.conditioning import HoldGains

    if not args.hold_command:
        return None
    return HoldGains(
        **{name: getattr(args, flag[2:].replace("-", "_")) for flag, (name, _) in HOLD_FLAGS.items()}
    )


def run(args: argparse.Namespace) -> int:
    from dynaflow.generate import parse_pushes, parse_schedule, rollout_long

    out, summary_path = _check_outputs(args)
    pushes = parse_pushes(args.push)
    schedule = parse_schedule(args.schedule) if args.schedule is not None else None
    policy = load_policy(args)
    cond = _conditioning(args, policy, schedule)
    result = rollout_long(
        policy,
        _start_state(args, policy),
        cond,
        seconds=args.seconds,
        closed_loop=args.closed_loop,
        replan_every=args.replan_every,
        fidelity=args.fidelity,
        pushes=pushes,
        seed=args.seed,
        ode_steps=args.ode_steps,
        hold=hold_gains(args),
    )
    summary = result.summary()
    _write(args, out, summary_path, result, summary)
    _print_summary(args, policy, result, summary)
    print(f"wrote {out} and {summary_path}")
    if args.video:
        from dynaflow.render import render_motion

        replacing(args.video)
        path = render_motion(result.states, args.video, fast=True)
        print(f"wrote {path}")
    return 0


def _check_outputs(args: argparse.Namespace) -> tuple[Path, Path]:
    """The NPZ, its summary and the video (when asked for) may be written: before any work."""
    from dynaflow.fileio import check_output

    out = npz_output(args.out)
    summary_path = out.with_suffix(".json")
    check_output(summary_path, "summary")
    if args.video:
        from dynaflow.render import check_video_path

        check_output(check_video_path(args.video), "video")
    return out, summary_path


def _conditioning(args: argparse.Namespace, policy, schedule):
    """The conditioning: a gait schedule's function of time, a fixed vector (``--cond``), or None."""
    from dynaflow.generate import check_gait_model, schedule_fn

    if schedule is not None:
        check_gait_model(policy)
        return schedule_fn(schedule)
    if args.cond is not None:
        return parse_floats(args.cond, "--cond", policy.cond_dim)
    return None


def _start_state(args: argparse.Namespace, policy):
    """``--x0``: the settled standing start, the home pose, or the numbers given."""
    from dynaflow.generate import default_start

    if args.x0 == "start":
        return default_start(policy)
    if args.x0 == "home":
        return policy.rollout.home_state()
    return parse_floats(args.x0, "--x0", STATE_DIM)


def _write(args: argparse.Namespace, out: Path, summary_path: Path, result, summary: dict) -> None:
    """The motion NPZ (states, latencies, actions, conditionings, the held ones, replays) and its .json
    summary."""
    import numpy as np

    from dynaflow.fileio import atomic_write, write_npz
    from dynaflow.jsonio import dumps

    arrays = {"states": result.states.astype(np.float32), "latencies": np.asarray(result.latencies)}
    if result.actions is not None:
        arrays["actions"] = result.actions.astype(np.float32)
    if result.cond is not None:
        arrays["conditionings"] = result.cond
    if result.hold is not None:
        arrays["conditionings_fed"] = result.cond_fed  # the command as held: what the model was given
    for fid, R in result.replays.items():
        arrays[f"replay_{fid}"] = R.astype(np.float32)
    replacing(out, summary_path)
    write_npz(out, arrays)
    atomic_write(summary_path, dumps({"command": args.command_line, **summary}))


def _print_summary(args: argparse.Namespace, policy, result, summary: dict) -> None:
    from dynaflow.generate import default_replan_every

    mode = (
        f"closed loop in MuJoCo C ({args.fidelity}), replanning every "
        f"{args.replan_every or default_replan_every(policy)} steps"
        if args.closed_loop
        else "open loop (chained windows)"
    )
    print(
        f"{summary['seconds']:.1f} s {mode}: moved {summary['forward_m']:+.2f} m forward, "
        f"{summary['distance_m']:.2f} m in all, upright throughout: {summary['upright']}"
    )
    if "heading_error_rad" in summary:
        held = "held" if summary["hold_command"] else "not held (--no-hold-command)"
        print(
            f"command {held}: heading error at the end {summary['heading_error_rad']:+.2f} rad; "
            f"speed after the first second {summary['achieved_speed_mps']:.2f} m/s "
            f"(commanded {summary['commanded_speed_mps']:.2f})"
        )
    if "latency_ms_median" in summary:
        print(
            f"sampler: {summary['sampler_calls']} calls, "
            f"latency median {summary['latency_ms_median']:.1f} ms, "
            f"p95 {summary['latency_ms_p95']:.1f} ms (first call {summary['latency_ms_first']:.0f} ms); "
            f"{summary['real_time_factor']:.1f}x real time "
            f"({summary['real_time_factor_warm']:.1f}x after the first call)"
        )
    for fid in result.replays:
        print(
            f"open-loop replay in MuJoCo C ({fid}): upright {summary[f'replay_{fid}_upright']}, "
            f"forward {summary[f'replay_{fid}_forward_m']:+.2f} m, "
            f"drift {summary[f'replay_{fid}_drift_m']:.3f} m"
        )
