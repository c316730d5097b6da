"""A learning curve on clips (issue 26, item 1): how a model's own motion changes with updates.

    dynaflow train --data clips.npz --preset cpu --std-floor physical --trunk-loss window --chain 2 \\
        --rest-starts 0.25 --ease-in 0.5 --val-fraction 0 --steps-per-epoch 250 --save-interval 2 \\
        --max-steps 4000 --save-dir RUN
    python benchmarks/learning_curve.py --data clips.npz RUN/epoch_0002 RUN/epoch_0004 RUN/epoch_0008 ...

For every checkpoint, clip and seed: 10 s chained open loop from a settled stand under the clip's own
conditioning, scored on **Φ's own states** (the generated motion, no replay) by
:func:`dynaflow.evaluate.clips.clip_figures`: whether it stays upright and when it falls, the heading-frame
speed against the clip's, and the joint style error against standing still's. Prints one row per
checkpoint (the updates it was trained for, then medians over clips and seeds) and ``--json`` writes every
cell. The updates come from each checkpoint's own step, so a resumed run's checkpoints line up too.
"""

from __future__ import annotations

import json
import time

import numpy as np
from mocap import clip_command  # benchmarks/mocap.py, beside this script

from dynaflow.checkpoint import load_checkpoint
from dynaflow.data.sources.gaits import start_state
from dynaflow.evaluate.clips import clip_figures
from dynaflow.generate import rollout_long
from dynaflow.policy import DynaFlowPolicy


def score(policy, clips, seconds: float, seeds: int) -> list[dict]:
    """Every clip × seed: the figures of Φ's own chained motion from the settled stand."""
    x0, dt = start_state(policy.rollout), policy.rollout.ctrl_dt
    cells = []
    for clip in clips:
        for s in range(seeds):
            res = rollout_long(policy, x0, clip.cond, seconds=seconds, seed=s, replay=False)
            cells.append({"clip": clip.name, "seed": s, **clip_figures(res.states, clip, x0, dt)})
    return cells


def summary(cells: list[dict], seconds: float) -> dict:
    """Medians over the cells: time up (a run that stays up counts its whole length), speed ratio, style."""

    def median(key):
        v = [c[key] for c in cells if c[key] is not None]
        return float(np.median(v)) if v else None

    up = [seconds if c["fell_at_s"] is None else c["fell_at_s"] for c in cells]
    moving = [c for c in cells if c["speed_ok"] is not None]
    return {
        "runs": len(cells),
        "upright": float(np.mean([c["upright"] for c in cells])),
        "time_up_s_median": float(np.median(up)),
        "speed_ratio_median": median("speed_ratio"),
        "speed_ok": float(np.mean([c["speed_ok"] for c in moving])) if moving else None,
        "style_ratio_median": median("style_ratio"),
    }


def _shown(v, fmt: str) -> str:
    return "n/a" if v is None else format(v, fmt)


def main() -> None:
    args, clips = clip_command(__doc__, "checkpoints", "checkpoints of one run, in any order")
    head = ("updates", 8), ("upright", 8), ("time up", 8), ("speed/clip", 11), ("speed ok", 9), ("style", 6)
    print(" ".join(f"{name:>{width}s}" for name, width in head))
    rows = []
    updates = {ckpt: int(load_checkpoint(ckpt)["step"]) for ckpt in args.checkpoints}
    for ckpt in sorted(updates, key=updates.get):
        t0 = time.perf_counter()
        cells = score(DynaFlowPolicy.from_checkpoint(ckpt), clips, args.seconds, args.seeds)
        s = {"checkpoint": ckpt, "updates": updates[ckpt], **summary(cells, args.seconds)}
        rows.append({**s, "cells": cells})
        print(
            f"{s['updates']:8d} {100 * s['upright']:7.0f}% {s['time_up_s_median']:7.1f}s "
            f"{_shown(s['speed_ratio_median'], '.2f'):>11s} {_shown(s['speed_ok'], '.0%'):>9s} "
            f"{_shown(s['style_ratio_median'], '.2f'):>6s}   ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"data": args.data, "seconds": args.seconds, "seeds": args.seeds, "rows": rows}, fh)


if __name__ == "__main__":
    main()
