"""What joining processes costs: `dynaflow train` as 1 process with N devices vs N processes of 1 device.

    python benchmarks/distributed.py                    # N = 2 CPU devices, the demo's model size
    python benchmarks/distributed.py --devices 4 --steps 60

Both layouts run the same global batch on the same N devices (forced CPU host devices), so the
difference is the cost of the multi-process path: Gloo all-reduces of the gradients between processes
instead of in-process ones, each process gathering its own block of the batch, and the per-step
agreement on the time budget (``--time-budget`` is set, so that check is included). Prints the median
steps/s of each layout (first logging interval, which holds the compile, excluded) and their ratio.
On a GPU cluster the same comparison is one host's N GPUs in one process vs N processes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _rates(run_dir: Path) -> list[float]:
    recs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["steps_per_s"] for r in recs if "steps_per_s" in r][1:]  # the first interval compiles


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=2)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--horizon", type=int, default=16)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--no-time-budget", action="store_true", help="leave out the per-step budget agreement")
    args = ap.parse_args()
    n = args.devices
    tmp = Path(tempfile.mkdtemp(prefix="dynaflow_dist_"))
    data = tmp / "data.npz"
    subprocess.run(
        [sys.executable, "-m", "dynaflow.cli", "data", "synthetic", "--out", str(data), "--episodes", "32"],
        check=True,
        capture_output=True,
    )
    common = [
        sys.executable, "-m", "dynaflow.cli", "train", "--quiet", f"--data={data}", f"--batch={args.batch}",
        f"--horizon={args.horizon}", f"--d-model={args.d_model}", f"--depth={args.depth}", "--n-heads=4",
        "--epochs=1", f"--steps-per-epoch={args.steps}", f"--max-steps={args.steps}", "--log-every=10",
        "--val-windows=0", "--val-fraction=0",
    ] + ([] if args.no_time_budget else ["--time-budget=36000"])  # fmt: skip

    def env(local):
        flags = f"--xla_force_host_platform_device_count={local}"
        return {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}

    subprocess.run(common + [f"--save-dir={tmp / 'one'}"], check=True, env=env(n))
    port = _free_port()
    procs = [
        subprocess.Popen(
            common
            + [f"--save-dir={tmp / f'p{i}'}", f"--coordinator=localhost:{port}", f"--num-processes={n}"]
            + [f"--process-id={i}"],
            env=env(1),
            stdout=subprocess.DEVNULL,
        )
        for i in range(n)
    ]
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"a process of the {n}-process run failed (exit {p.returncode})")
    one, many = np.median(_rates(tmp / "one")), np.median(_rates(tmp / "p0"))
    print(f"machine: {platform.machine()} {os.cpu_count()} cores; {n} CPU devices; B={args.batch} "
          f"H={args.horizon} d={args.d_model} depth={args.depth}, {args.steps} steps, "
          f"time budget {'off' if args.no_time_budget else 'on'}")  # fmt: skip
    print(f"1 process x {n} devices: {one:.2f} steps/s")
    print(f"{n} processes x 1 device: {many:.2f} steps/s ({many / one:.2f}x)")


if __name__ == "__main__":
    main()
