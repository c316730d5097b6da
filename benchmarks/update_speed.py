"""Training updates per second, side by side: checkouts and device layouts timed in alternation.

    git worktree add /tmp/base dbda79f
    python benchmarks/update_speed.py --config base=/tmp/base --config now=.          # the issue's A/B
    python benchmarks/update_speed.py --config plain=.:none --config tuned=.          # layouts, one checkout
    python benchmarks/update_speed.py --config one=. --config conv=.,solver=converged  # Φ's contact solves

Each ``--config NAME=CHECKOUT[:LAYOUT][,solver=SOLVER]`` starts one worker process that imports ``dynaflow``
from ``CHECKOUT/src``, builds the demo-size train step (``--preset cpu``: B 32, H 16, d 128, 4 heads, depth
2, no dropout; the bundled demo's loss), compiles it, and waits. The parent then asks the workers in turn
for ``--chunk`` updates each, ``--rounds`` times, so a noisy neighbour slows every configuration alike. An
update is what ``dynaflow train``'s loop does per step: put a host batch on the devices, run the step, read
the loss back. LAYOUT is ``auto`` (default: :func:`dynaflow.platform.configure_cpu`, as the CLI does, when
the checkout has it), ``none`` (JAX's defaults) or an XLA_FLAGS string. SOLVER is Φ's contact solve
(``dynaflow train --solver``; the checkout's default when not given).

Prints per-update medians, updates/s, each configuration's speed-up over the first, the compile times,
and each worker's losses (same seed and batches: a check that the work is the same).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def worker(args) -> None:
    """One configuration: compile the demo-size step, then run chunks of updates on request."""
    if args.layout == "auto":
        try:
            from dynaflow.platform import configure_cpu

            configure_cpu()
        except ImportError:  # a checkout from before the module existed: JAX's defaults
            pass
    elif args.layout != "none":
        os.environ["XLA_FLAGS"] = args.layout
    import jax

    import dynaflow

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_step import demo_step  # benchmarks/ is not a package; uses API dbda79f has too

    jax.config.update("jax_enable_compilation_cache", False)
    step, state, (X, C, norm, hyper) = demo_step(args.batch, 16, 128, 4, 2, solver=args.solver)
    X_host, C_host = np.asarray(X), np.asarray(C)  # a host batch, put on the devices every update

    def update(state):
        batch = jax.device_put(X_host, X.sharding), jax.device_put(C_host, C.sharding)
        state, m = step(state, *batch, norm, hyper)
        return state, float(m["loss"])

    t0 = time.perf_counter()
    state, loss = update(state)
    compile_s = time.perf_counter() - t0
    losses = [loss]
    info = {
        "dynaflow": str(Path(dynaflow.__file__).resolve().parent),
        "devices": len(X.sharding.device_set),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "compile_s": compile_s,
    }
    print(json.dumps(info), flush=True)
    for line in sys.stdin:
        n = int(line)
        t0 = time.perf_counter()
        for _ in range(n):
            state, loss = update(state)
            losses.append(loss)
        print(json.dumps({"seconds": time.perf_counter() - t0, "losses": losses[-n:]}), flush=True)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", action="append", default=[], help="NAME=CHECKOUT[:LAYOUT][,solver=SOLVER]")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--chunk", type=int, default=10, help="updates per turn")
    ap.add_argument("--warmup", type=int, default=5, help="updates per worker before timing")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--layout", default="auto", help=argparse.SUPPRESS)
    ap.add_argument("--solver", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.worker and not args.config:
        ap.error("give at least one --config NAME=CHECKOUT[:LAYOUT]")
    return args


def start_workers(args) -> dict[str, subprocess.Popen]:
    """One worker process per --config, by name, importing dynaflow from its checkout."""
    workers = {}
    for spec in args.config:
        name, _, rest = spec.partition("=")
        rest, _, solver = rest.partition(",solver=")
        checkout, _, layout = rest.partition(":")
        src = Path(checkout).resolve() / "src"
        if not (src / "dynaflow").is_dir():
            raise SystemExit(f"--config {spec}: {src}/dynaflow not found")
        env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
        env["PYTHONPATH"] = str(src)
        layout = layout or "auto"
        cmd = [sys.executable, __file__, "--worker", "--batch", str(args.batch), f"--layout={layout}"]
        cmd += ["--solver", solver] if solver else []
        workers[name] = subprocess.Popen(
            cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
    return workers


def wait_for_compiles(workers: dict[str, subprocess.Popen]) -> dict[str, dict]:
    """Each worker's first line (what it runs, its compile time); if one fails, all are killed."""
    info = {}
    for name, p in workers.items():  # they compile one after another's start, in parallel; wait for all
        line = p.stdout.readline()
        if not line:
            for other in workers.values():
                other.kill()
            raise SystemExit(f"worker {name} failed (exit {p.wait()})")
        info[name] = json.loads(line)
    return info


def turn(p: subprocess.Popen, n: int) -> dict:
    """Ask worker ``p`` for ``n`` updates; its answer (seconds, losses)."""
    p.stdin.write(f"{n}\n")
    p.stdin.flush()
    return json.loads(p.stdout.readline())


def time_in_turns(workers: dict[str, subprocess.Popen], args) -> tuple[dict, dict]:
    """Warm every worker up, then --rounds turns of --chunk updates each, in alternation; then end them.
    Seconds per update of each turn and the losses, by worker."""
    for p in workers.values():
        turn(p, args.warmup)
    times = {name: [] for name in workers}
    losses = {name: [] for name in workers}
    for _ in range(args.rounds):
        for name, p in workers.items():
            r = turn(p, args.chunk)
            times[name].append(r["seconds"] / args.chunk)
            losses[name] += r["losses"]
    for p in workers.values():
        p.stdin.close()
        p.wait()
    return times, losses


def report(args, workers, info: dict, times: dict, losses: dict) -> dict:
    """Print each configuration's speed against the first, and the first losses; the results by name."""
    first = next(iter(workers))
    base = float(np.median(times[first]))
    print(
        f"updates at B={args.batch}, H=16, d 128 (demo size), {platform.machine()}, {os.cpu_count()} cores;"
    )
    print(f"{args.rounds} rounds of {args.chunk} updates per configuration, in alternation")
    result = {}
    for name in workers:
        med = float(np.median(times[name]))
        result[name] = {
            **info[name],
            "ms_per_update_median": med * 1e3,
            "ms_per_update_min": float(np.min(times[name])) * 1e3,
            "updates_per_s": 1 / med,
            "speedup_vs_first": base / med,
            "first_losses": losses[name][:5],
        }
        print(
            f"  {name:10s} {med * 1e3:7.1f} ms/update (min {np.min(times[name]) * 1e3:6.1f})  "
            f"{1 / med:6.2f} updates/s  x{base / med:4.2f}  devices {info[name]['devices']}  "
            f"compile {info[name]['compile_s']:5.1f} s  {info[name]['dynaflow']}"
        )
    print("first losses:", {k: [round(x, 5) for x in v["first_losses"]] for k, v in result.items()})
    return result


def main() -> None:
    args = parse_args()
    if args.worker:
        return worker(args)
    workers = start_workers(args)
    info = wait_for_compiles(workers)
    times, losses = time_in_turns(workers, args)
    result = report(args, workers, info, times, losses)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
