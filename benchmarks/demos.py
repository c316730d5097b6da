"""Benchmark of the demonstration sources.

    python benchmarks/demos.py

* gait library (MuJoCo C, one thread, the scripted controller in Python): simulated episode-seconds per
  wall-second, for the issue's 200 episodes x 5 s;
* kinematic conversion of the same episodes.
The PPO teacher's MJX environment throughput is not measured yet (the teacher is not built).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

from dynaflow.demos.gaits import make_gait_dataset
from dynaflow.demos.kinematic import kinematic_from_gaits
from dynaflow.physics import create_go2_rollout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    rollout = create_go2_rollout()
    t0 = time.perf_counter()
    arrays, summary = make_gait_dataset(rollout, args.episodes, args.seconds, seed=0)
    wall = time.perf_counter() - t0
    sim_seconds = args.episodes * args.seconds
    t0 = time.perf_counter()
    kinematic_from_gaits(arrays["states"], arrays["conditionings"])
    kin = time.perf_counter() - t0
    result = {
        "machine": platform.processor() or platform.machine(),
        "episodes": args.episodes,
        "seconds": args.seconds,
        "kept": summary["kept"],
        "gait_library_wall_s": wall,
        "episode_seconds_per_wall_second": sim_seconds / wall,
        "kinematic_wall_s": kin,
    }
    print(
        f"gait library: {args.episodes} x {args.seconds:g} s in {wall:.1f} s = "
        f"{sim_seconds / wall:.0f} simulated seconds per wall-second ({summary['kept']} kept)"
    )
    print(f"kinematic conversion of the same: {kin:.2f} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
