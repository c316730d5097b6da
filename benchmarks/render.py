"""Benchmark of offscreen rendering: frames/s of ``dynaflow.render`` at default and fast quality.

    python benchmarks/render.py                  # 500 frames (10 s of motion) at 640 x 360

The motion is a 10 s open-loop trot of the gait library (MuJoCo C), so the tracking camera moves as it
does for generated motion. Prints the backend, then one line per mode (render only, and render + H.264
encoding to a temporary MP4); the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from dynaflow.data.sources.gaits import simulate_episode, start_state
from dynaflow.physics import create_go2_rollout
from dynaflow.render import configure_gl, render_frames, render_motion


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=500)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    args = ap.parse_args()

    backend = configure_gl()
    rollout = create_go2_rollout()
    X, _, _ = simulate_episode(
        rollout, "trot", np.array([0.5, 0.0, 0.0]), args.frames - 1, start_state(rollout)
    )
    ghost = X.copy()
    ghost[:, 1] += 0.3  # beside the robot, as a demonstration drawn next to a generation would be
    render_frames(X[:2], width=args.width, height=args.height)  # context creation, first-use costs
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, kwargs in [
            ("default", {}),
            ("default + ghost", {"ghost": ghost}),
            ("fast", {"fast": True}),
            ("fast + ghost", {"fast": True, "ghost": ghost}),
        ]:
            t0 = time.perf_counter()
            render_frames(X, width=args.width, height=args.height, **kwargs)
            render_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            render_motion(X, Path(tmp) / "m.mp4", width=args.width, height=args.height, **kwargs)
            video_s = time.perf_counter() - t0
            results[name] = {"render_fps": len(X) / render_s, "mp4_fps": len(X) / video_s}
    print(f"{len(X)} frames at {args.width}x{args.height}, backend {backend}, {platform.machine()}")
    for name, r in results.items():
        print(
            f"  {name:<16s} render {r['render_fps']:6.1f} frames/s   "
            f"render + H.264 {r['mp4_fps']:6.1f} frames/s"
        )
    print(json.dumps({"frames": len(X), "size": [args.width, args.height], "backend": backend, **results}))


if __name__ == "__main__":
    main()
