"""The transfer suite on one or more checkpoints, side by side: how many runs stay upright in changed
worlds, open and closed loop, per gait and per world, and how long the suite takes.

    python benchmarks/transfer.py --checkpoint dynaflow_demo/runs/dynaflow [--checkpoint OTHER]
        [--seeds 2] [--seconds 10] [--replan-every N] [--json out.json]

Each checkpoint must be a gait-conditioned model with actions (DynaFlow). Figures: for each mode the
fraction of runs upright for the whole run, within 25 % of the commanded speed (closed loop), the median
distance achieved / commanded, per gait and per world; the suite's wall time split into generation,
replay and closed loop.
"""

from __future__ import annotations

import argparse
import platform
import time

from dynaflow.evaluate.transfer import transfer_suite
from dynaflow.jsonio import dumps
from dynaflow.physics.worlds import TRANSFER_MATRIX
from dynaflow.policy import DynaFlowPolicy
from dynaflow.runtime import enable_compilation_cache


def _pct(v) -> str:
    return "  n/a" if v is None else f"{100 * v:4.0f}%"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", action="append", required=True, help="a run directory or checkpoint")
    ap.add_argument("--seeds", type=int, default=1, help="runs per command and world")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--replan-every", type=int, default=None, help="default: half the horizon")
    ap.add_argument("--batch", type=int, default=16, help="closed-loop runs per sampler call")
    ap.add_argument("--json", default=None, help="write every cell here")
    args = ap.parse_args()
    enable_compilation_cache()
    print(f"machine: {platform.machine()}, {platform.processor() or platform.platform()}")
    results = {}
    for ckpt in args.checkpoint:
        policy = DynaFlowPolicy.from_checkpoint(ckpt)
        t0 = time.perf_counter()
        res = transfer_suite(
            policy,
            seconds=args.seconds,
            seeds=args.seeds,
            replan_every=args.replan_every,
            batch=args.batch,
        )
        wall = time.perf_counter() - t0
        results[ckpt] = res
        print(
            f"\n== {ckpt} (randomise={policy.train_config.sim.randomise:g}) "
            f"suite {wall:.0f} s {res['timing_s']}"
        )
        for mode, s in res["summary"].items():
            a = s["all"]
            print(
                f"{mode:6s} loop: upright {_pct(a['upright'])} of {a['runs']}, "
                f"on speed {_pct(a['on_speed'])}, "
                f"distance ratio median {a['distance_ratio_median']:.2f}, vs nominal "
                f"{s['distance_vs_nominal_median'] or float('nan'):.2f}"
            )
            print("   by gait:  " + "  ".join(f"{g} {_pct(v['upright'])}" for g, v in s["by_gait"].items()))
            print(
                "   by world: "
                + "  ".join(f"{w} {_pct(v['upright'])}" for w, v in s["by_perturbation"].items())
            )
    if len(results) > 1:
        print("\nside by side (upright fraction; open / closed):")
        names = [p.name for p in TRANSFER_MATRIX]
        for w in names:
            row = []
            for res in results.values():
                cells = [
                    _pct(res["summary"][m]["by_perturbation"].get(w, {}).get("upright"))
                    if m in res["summary"]
                    else "  n/a"
                    for m in ("open", "closed")
                ]
                row.append(" / ".join(cells))
            print(f"  {w:14s} " + "   |   ".join(row))
    if args.json:
        with open(args.json, "w") as f:
            f.write(dumps(results))


if __name__ == "__main__":
    main()
