"""``dynaflow export``: generated motion back out as AMP / motion_imitation clips."""

from __future__ import annotations

import argparse
from pathlib import Path

from dynaflow.cli.common import add_command, positive_float


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "export",
        "write generated motion as AMP / motion_imitation JSON clips (actions in a sibling .npz)",
        description=(
            "Write motions from `dynaflow generate` / `dynaflow sample` NPZ files (key 'states', (T, 37) "
            "or (N, T, 37)) as AMP / motion_imitation clips for a target robot profile. Each clip's actions "
            "(the Go2's joint targets, our joint order) go to CLIP.actions.npz beside it when the file has "
            "them. `dynaflow data import CLIP --robot PROFILE --keep-height` reads a clip back into the same "
            "motion."
        ),
    )
    p.add_argument("motion", help="an NPZ with 'states' (and optionally 'actions')")
    p.add_argument("--out", required=True, help="output .json clip (several motions: OUT_000.json, ...)")
    p.add_argument(
        "--robot", default="go2", help="target profile: go2, go1, a1, laikago or a JSON profile file"
    )
    p.add_argument("--episode", type=int, default=None, help="only this motion of an (N, T, 37) file")
    p.add_argument("--dt", type=positive_float("--dt"), default=0.02, help="the motion's control step (s)")
    p.add_argument(
        "--frame-duration",
        type=positive_float("--frame-duration"),
        default=None,
        help="seconds per clip frame (default: --dt; others resample)",
    )
    p.add_argument("--loop-mode", choices=("Clamp", "Wrap"), default="Clamp", help="the clip's LoopMode")
    p.add_argument("--quat", choices=("xyzw", "wxyz"), default="xyzw", help="quaternion order in the frames")
    p.add_argument(
        "--format",
        choices=("amp", "pose"),
        default="amp",
        help="amp: 61 numbers a frame (pose, toes, velocities); pose: 19 (motion_imitation)",
    )
    p.set_defaults(func=run, uses_jax=False)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from dynaflow.data.sources.clips import check_actions, export_clip, load_profile
    from dynaflow.fileio import FileProblem, atomic_write, check_output, read_npz, write_npz
    from dynaflow.jsonio import dumps
    from dynaflow.robots.go2 import STATE_DIM

    out = Path(args.out)
    if out.suffix.lower() not in (".json", ".txt"):
        raise ValueError(f"--out {out}: expected a .json (or .txt) clip path")
    check_output(out, "output", inputs=[args.motion])
    profile = load_profile(args.robot)
    arrays = read_npz(args.motion, "motion file")
    if "states" not in arrays:
        found = ", ".join(sorted(arrays)) or "nothing"
        raise FileProblem(f"{args.motion}: key 'states': missing (found {found})")
    states = np.asarray(arrays["states"])
    actions = arrays.get("actions")
    if states.ndim == 2:
        states = states[None]
        actions = None if actions is None else actions[None]
    if states.ndim != 3 or states.shape[-1] != STATE_DIM:
        raise FileProblem(
            f"{args.motion}: key 'states': expected shape (T, {STATE_DIM}) or (N, T, {STATE_DIM}), "
            f"got {states.shape}"
        )
    if actions is not None and np.asarray(actions).shape[0] != states.shape[0]:
        raise FileProblem(
            f"{args.motion}: key 'actions': {np.asarray(actions).shape} does not match states {states.shape}"
        )
    index = range(states.shape[0])
    if args.episode is not None:
        if not 0 <= args.episode < states.shape[0]:
            raise ValueError(f"--episode {args.episode}: the file has motions 0..{states.shape[0] - 1}")
        index = [args.episode]
    many = len(index) > 1
    for i in index:
        path = out.with_name(f"{out.stem}_{i:03d}{out.suffix}") if many else out
        try:
            acts = check_actions(None if actions is None else actions[i], states.shape[1])
            clip = export_clip(
                states[i],
                profile,
                dt=args.dt,
                loop_mode=args.loop_mode,
                quat_order=args.quat,
                frame_format=args.format,
                frame_duration=args.frame_duration,
            )
        except ValueError as e:
            raise ValueError(f"{args.motion}: motion {i}: {e}") from None
        atomic_write(path, dumps(clip))
        extra = ""
        if acts is not None:
            side = path.with_suffix(".actions.npz")
            write_npz(side, {"actions": acts.astype(np.float32), "ctrl_dt": np.float64(args.dt)})
            extra = f", actions in {side}"
        print(
            f"wrote {path}: {len(clip['Frames'])} frames of {len(clip['Frames'][0])} numbers every "
            f"{clip['FrameDuration']:g} s for {profile.name}{extra}"
        )
    return 0
