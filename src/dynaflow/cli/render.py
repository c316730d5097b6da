"""``dynaflow render``: a motion to MP4 or GIF (MuJoCo's offscreen renderer; OSMesa on a CPU)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dynaflow.cli.common import add_command, non_negative_int, positive_float, positive_int, replacing


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "render",
        "render motion to MP4 or GIF (MuJoCo offscreen; OSMesa on a CPU)",
        "Render a checkpoint's motion (generated open loop from a demonstration episode's first state, "
        "optionally with that demonstration as a translucent ghost) or the states of an NPZ.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="generate from this checkpoint (chained, open loop), then render")
    src.add_argument("--npz", help="render the 'states' of this NPZ ((T, 37) or (B, T, 37): see --sample)")
    p.add_argument("--out", required=True, help="output .mp4 or .gif")
    p.add_argument("--ghost-demo", action="store_true", help="draw the demonstration as a translucent ghost")
    p.add_argument(
        "--dataset",
        help="with --checkpoint: the demonstrations giving x0, c and the ghost (default: the checkpoint's "
        "own training data when it is there, else the bundled data)",
    )
    p.add_argument(
        "--episode",
        type=non_negative_int("--episode"),
        help="with --checkpoint: the episode (default: the first held-out one of its training data, else 0)",
    )
    p.add_argument(
        "--seconds",
        type=positive_float("--seconds"),
        default=4.0,
        help="with --checkpoint: seconds to generate",
    )
    p.add_argument(
        "--sample", type=non_negative_int("--sample"), default=0, help="with --npz: which motion of a batch"
    )
    p.add_argument(
        "--fps", type=positive_float("--fps"), default=50.0, help="frames per second (50: one per state)"
    )
    p.add_argument(
        "--fast",
        action="store_true",
        help="no shadows, reflections or anti-aliasing: ~6x faster with CPU (OSMesa) rendering",
    )
    p.add_argument("--width", type=positive_int("--width"), default=640, help="frame width in pixels")
    p.add_argument("--height", type=positive_int("--height"), default=360, help="frame height in pixels")
    p.add_argument(
        "--seed", type=non_negative_int("--seed"), default=0, help="with --checkpoint: sampling seed"
    )
    p.add_argument(
        "--use-ema",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --checkpoint: the EMA weights (the default) or the raw ones",
    )
    p.set_defaults(func=run)


def motion_path(video: Path) -> Path:
    """Where ``render --checkpoint`` saves the motion it rendered: ``NAME.motion.npz`` beside the video."""
    return video.with_name(f"{video.stem}.motion.npz")


def _dataset_for(policy, given: str | None) -> Path:
    """The demonstrations a checkpoint is rendered against: ``--dataset``, else its own training data (when
    the file is there), else the bundled data."""
    from dynaflow.data import bundled_dataset

    if given is not None:
        return Path(given)
    own = policy.train_config.data
    if own and Path(own).is_file():
        return Path(own)
    return bundled_dataset()


def run(args: argparse.Namespace) -> int:
    from dynaflow.fileio import FileProblem, check_output, read_npz, write_npz
    from dynaflow.render import check_motion, check_video_path, render_motion

    out = check_output(check_video_path(args.out), "video", inputs=[args.npz, args.dataset])
    ghost = None
    if args.checkpoint:
        from dynaflow.cli.common import load_policy
        from dynaflow.data import load_dataset
        from dynaflow.generate import motion_for_episode

        motion_file = check_output(motion_path(out), "motion file", inputs=[args.dataset])
        policy = load_policy(args)
        data_path = _dataset_for(policy, args.dataset)
        motion = motion_for_episode(policy, load_dataset(data_path), args.episode, args.seconds, args.seed)
        print(
            f"rendering {policy.method} from episode {int(motion['episode'])} of {data_path}", file=sys.stderr
        )
        states = motion["states"]
        replacing(motion_file)
        write_npz(motion_file, motion)
        ghost = motion["demo"] if args.ghost_demo else None
    else:
        try:
            f = read_npz(args.npz, "motion file")
        except FileProblem as e:
            raise ValueError(str(e)) from e
        if "states" not in f:
            raise ValueError(f"{args.npz}: key 'states' missing; found {', '.join(f) or 'nothing'}")
        states = f["states"]
        if args.ghost_demo:
            if "demo" not in f:
                raise ValueError(f"{args.npz}: key 'demo' missing: --ghost-demo needs the demonstration")
            ghost = f["demo"]
        if states.ndim == 3:
            if not args.sample < len(states):
                raise ValueError(f"--sample: {args.npz} holds {len(states)} motions, got {args.sample}")
            states = states[args.sample]
            ghost = ghost[args.sample] if ghost is not None and ghost.ndim == 3 else ghost
        check_motion(f"{args.npz}: key 'states'", states)
        if ghost is not None:
            check_motion(f"{args.npz}: key 'demo'", ghost)
    replacing(out)
    path = render_motion(
        states, out, ghost=ghost, fps=args.fps, width=args.width, height=args.height, fast=args.fast
    )
    print(f"wrote {path}: {len(states)} frames at {args.fps:g} fps, {args.width}x{args.height}")
    if args.checkpoint:
        print(f"wrote {motion_path(out)} (the rendered motion)")
    return 0
