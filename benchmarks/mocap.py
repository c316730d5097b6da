"""Motion capture to executable motion: score checkpoints clip by clip (issue: From motion capture).

    dynaflow data import dog_trot.txt dog_pace.txt --robot laikago --out clips.npz
    dynaflow demo --data clips.npz --out demo_clips            # trains DynaFlow and state-fm on the clips
    python benchmarks/mocap.py --data clips.npz demo_clips/runs/dynaflow demo_clips/runs/state-fm

For every clip of the dataset and seed: 10 s chained open loop from a settled stand under the clip's own
conditioning, the actions replayed in MuJoCo C's reference simulator, scored by
:mod:`dynaflow.evaluate.clips` (upright, speed and direction against the clip's, turning, joint style
against standing still, contact pattern, and when the runs that fell went down). Prints a row per clip
and the totals; ``--json`` writes them.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

from dynaflow.data import load_dataset
from dynaflow.evaluate.clips import clip_suite, clips_of, read_summary
from dynaflow.policy import DynaFlowPolicy
from dynaflow.runtime import enable_compilation_cache


def clip_command(doc: str, runs: str, runs_help: str) -> tuple[argparse.Namespace, list]:
    """The command line of a script that scores runs on a clips NPZ (this one and ``learning_curve.py``):
    its arguments, and the clips of ``--data`` (at most ``--max-clips``), the compilation cache on."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(runs, nargs="+", help=runs_help)
    p.add_argument("--data", required=True, help="the clips NPZ the runs were trained on")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--max-clips", type=int, default=8, help="evenly spaced episodes of a larger dataset")
    p.add_argument("--json", help="write every cell and summary here")
    args = p.parse_args()
    enable_compilation_cache()
    clips = clips_of(load_dataset(args.data), read_summary(args.data), args.max_clips)
    print(f"{platform.machine()}, {len(clips)} clips of {args.data}, {args.seconds:g} s, {args.seeds} seeds")
    return args, clips


def main() -> None:
    args, clips = clip_command(__doc__, "runs", "checkpoints or run directories")
    out = {}
    for run in args.runs:
        policy = DynaFlowPolicy.from_checkpoint(run)
        t0 = time.perf_counter()
        res = clip_suite(policy, clips, seconds=args.seconds, seeds=args.seeds)
        res.pop("kept")
        out[run] = res
        print(f"\n== {run} ({policy.method}, scored on {res['fidelity']}; {time.perf_counter() - t0:.0f} s)")
        print(
            f"{'clip':22s} {'clip vx vy wz':>18s} {'achieved':>18s} {'up':>5s} {'speed':>6s} {'dir':>5s} "
            f"{'turn':>5s} {'style':>6s} {'fell s':>6s} {'diag/lat (clip)':>24s}"
        )

        def pct(v):
            return "  n/a" if v is None else f"{100 * v:4.0f}%"

        for name, s in res["summary"]["clips"].items():
            cs = [c for c in res["cells"] if c["clip"] == name]
            a = [sum(c["achieved"][k] for c in cs) / len(cs) for k in range(3)]
            w = cs[0]["clip_speed"]
            style = s["style_ratio_median"]
            falls = [c["fell_at_s"] for c in cs if c["fell_at_s"] is not None]
            fell = f"{np.median(falls):6.1f}" if falls else "     -"  # median over the runs that fell
            con = cs[0]["contacts"]
            cc = cs[0]["clip_contacts"]
            print(
                f"{name[:22]:22s} {w[0]:6.2f}{w[1]:6.2f}{w[2]:6.2f} {a[0]:6.2f}{a[1]:6.2f}{a[2]:6.2f} "
                f"{pct(s['upright'])} {pct(s['speed_ok'])} {pct(s['direction_ok'])} {pct(s['turn_ok'])} "
                f"{'n/a' if style is None else f'{style:6.2f}'} {fell} "
                f"{con['diagonal']:+.2f}/{con['lateral']:+.2f} ({cc['diagonal']:+.2f}/{cc['lateral']:+.2f})"
            )
        a = res["summary"]["all"]
        print(
            "all: "
            + ", ".join(
                f"{k} {pct(a[k]).strip()}"
                for k in (
                    "upright",
                    "upright_same",
                    "upright_phi",
                    "speed_ok",
                    "direction_ok",
                    "turn_ok",
                    "style_ok",
                    "contacts_ok",
                )
            )
            + f", style ratio median {a['style_ratio_median']:.2f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
