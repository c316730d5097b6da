"""Where one demo-size training update spends its time: XLA's per-op costs, grouped by source.

    python benchmarks/profile_step.py                  # the demo's size (--preset cpu: B 32, H 16, d 128)
    python benchmarks/profile_step.py --top 40 --json profile.json

Runs the real compiled train step (``dynaflow.train.make_train_step``, the bundled demo's recipe) under
``jax.profiler.trace`` and reads the trace back (``jax.profiler.ProfileData``): every XLA thunk the CPU
ran, its wall time, and the HLO instruction it came from. Each instruction's metadata names the Python
line that emitted it, so the table groups the time by the function that wrote the code (an MJX stage,
the DiT, the optimiser, ...) and by pass (forward, the backward's recomputation, the backward itself).

The run uses this process's device layout (``dynaflow.platform``): the figures are what ``dynaflow
train`` gets. Times are summed over the threads, so with two devices they add to about twice the wall
time. The profiler adds its own cost to every operation (a few microseconds with JAX's defaults, ~30 us
with the per-core layout's older fusion emitter, which runs 4.5 times as many operations): read the
shares and the operation counts, and time updates with ``benchmarks/update_speed.py``
(``DYNAFLOW_CPU_DEVICES=1`` profiles JAX's one-device layout, the table in BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import collections
import functools
import glob
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import demo_step  # noqa: E402  (benchmarks/ is not a package)

_INSTR = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = ")
_CALLS = re.compile(r"calls=%([\w.\-]+)")
_OPNAME = re.compile(r'op_name="([^"]*)"')
_FRAME = re.compile(r"stack_frame_id=(\d+)")
_TABLE_ROW = re.compile(r"^(\d+) (.*)$")


def _tables(hlo_text: str) -> dict[str, dict[int, str]]:
    """The stack-frame tables at the head of a compiled module's text (FileNames, FunctionNames,
    FileLocations, StackFrames), each ``{id: row}``."""
    tables: dict[str, dict[int, str]] = {}
    current = None
    for line in hlo_text.splitlines():
        if line in ("FileNames", "FunctionNames", "FileLocations", "StackFrames"):
            current = tables.setdefault(line, {})
        elif current is not None and (m := _TABLE_ROW.match(line)):
            current[int(m.group(1))] = m.group(2)
        elif line.startswith(("%", "ENTRY", "HloModule")):
            current = None
    return tables


def _frames(tables) -> dict[int, list[tuple[str, str, int]]]:
    """stack_frame_id -> [(file, function, line), ...] from the innermost frame outwards."""
    num = re.compile(r"(\w+)=(\d+)")
    files = {k: v.strip('"') for k, v in tables.get("FileNames", {}).items()}
    funcs = {k: v.strip('"') for k, v in tables.get("FunctionNames", {}).items()}
    locs = {
        k: dict((a, int(b)) for a, b in num.findall(v)) for k, v in tables.get("FileLocations", {}).items()
    }
    frames = {
        k: dict((a, int(b)) for a, b in num.findall(v)) for k, v in tables.get("StackFrames", {}).items()
    }
    out = {}
    for fid in frames:
        chain, seen, f = [], set(), fid
        while f in frames and f not in seen:
            seen.add(f)
            loc = locs.get(frames[f]["file_location_id"], {})
            chain.append(
                (
                    files.get(loc.get("file_name_id"), "?"),
                    funcs.get(loc.get("function_name_id"), "?"),
                    loc.get("line", 0),
                )
            )
            parent = frames[f].get("parent_frame_id", 0)
            f = parent if parent != f else 0
        out[fid] = chain
    return out


@functools.cache
def _source_line(path: str, line: int) -> str:
    try:
        return Path(path).read_text().splitlines()[line - 1].strip()
    except (OSError, IndexError):
        return ""


def where(chain: list[tuple[str, str, int]]) -> str:
    """A label for a stack: the innermost project frame (its function and, for the physics step, the
    line: which MJX stage it called) and the innermost library frame below it."""

    def short(path):
        for marker in ("site-packages/", "src/"):
            if marker in path:
                path = path.split(marker)[-1]
        return path.removesuffix(".py").replace("/", ".")

    ours = next((fr for fr in chain if "dynaflow" in fr[0]), None)
    leaf = chain[0] if chain else ("?", "?", 0)
    if ours is None:
        return f"{short(leaf[0])}:{leaf[1]}"
    label = f"{short(ours[0])}:{ours[1]}"
    if ours[1] in ("mjx_step_implicit", "_solve_implicit", "_control_step", "loss", "step"):
        label += f" [{_source_line(ours[0], ours[2])[:60]}]"
    if leaf is not ours and "dynaflow" not in leaf[0]:
        label += f" <- {short(leaf[0])}:{leaf[1]}"
    return label


def pass_of(op_name: str) -> str:
    """Forward or backward (the transposed computation) from JAX's name stack; the backward includes
    the rematerialised forward of each physics substep."""
    return "backward" if "transpose(" in op_name else "forward"


def instruction_sources(hlo_text: str) -> dict[str, tuple[str, str]]:
    """HLO instruction name -> (where, pass) from the compiled module's metadata; a fusion takes the
    stack of the first fused instruction that has one."""
    frames = _frames(_tables(hlo_text))
    comp_frame: dict[str, int] = {}
    instr: dict[str, tuple[int | None, str, str | None]] = {}
    comp = None
    for line in hlo_text.splitlines():
        if line.startswith("%") and line.rstrip().endswith("{"):
            comp = line[1:].split(" ", 1)[0]
            continue
        m = _INSTR.match(line)
        if not m:
            continue
        fm, om, cm = _FRAME.search(line), _OPNAME.search(line), _CALLS.search(line)
        fid = int(fm.group(1)) if fm else None
        if fid is not None and comp is not None:
            comp_frame.setdefault(comp, fid)
        instr[m.group(1)] = (fid, om.group(1) if om else "", cm.group(1) if cm else None)
    out = {}
    for name, (fid, op_name, calls) in instr.items():
        fid = fid if fid is not None else comp_frame.get(calls)
        out[name] = (where(frames.get(fid, [])) if fid is not None else "(no source)", pass_of(op_name))
    return out


def thunk_events(trace_dir: str) -> list[tuple[str, float]]:
    """(name, seconds) of every XLA op event the CPU ran in the trace."""
    from jax.profiler import ProfileData

    files = glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)
    if not files:
        raise RuntimeError(f"{trace_dir}: the profiler wrote no trace")
    events = []
    for plane in ProfileData.from_file(files[0]).planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            if line.name in ("python", "Python") or "TraceMe" in line.name:
                continue
            for ev in line.events:
                stats = dict(ev.stats)
                name = stats.get("hlo_op", ev.name)
                if "hlo_op" in stats or "hlo_module" in stats:
                    events.append((str(name), ev.duration_ns * 1e-9))
    return events


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--horizon", type=int, default=16)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--n-heads", type=int, default=4)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10, help="updates traced (after 3 warm-up updates)")
    ap.add_argument("--top", type=int, default=25, help="rows of the per-source table")
    ap.add_argument("--json", help="also write the tables here")
    args = ap.parse_args()

    step_fn, state, batch = demo_step(args.batch, args.horizon, args.d_model, args.n_heads, args.depth)
    compiled = step_fn.lower(state, *batch).compile()
    sources = instruction_sources(compiled.as_text())
    for _ in range(3):
        state, m = step_fn(state, *batch)
    jax.block_until_ready(m)
    with tempfile.TemporaryDirectory() as trace_dir:
        t0 = time.perf_counter()
        with jax.profiler.trace(trace_dir):
            for _ in range(args.steps):
                state, m = step_fn(state, *batch)
            jax.block_until_ready(m)
        wall = (time.perf_counter() - t0) / args.steps
        events = thunk_events(trace_dir)

    by_source: dict[tuple[str, str], list[float]] = collections.defaultdict(lambda: [0.0, 0])
    by_pass: dict[str, float] = collections.Counter()
    by_kind: dict[str, float] = collections.Counter()
    for name, seconds in events:
        loc, kind = sources.get(name, (f"(unmapped) {name.split('.')[0]}", "?"))
        by_source[loc, kind][0] += seconds / args.steps
        by_source[loc, kind][1] += 1 / args.steps
        by_pass[kind] += seconds / args.steps
        by_kind[re.sub(r"[.\d]+$", "", name)] += seconds / args.steps
    total = sum(by_pass.values())
    n_ops = len(events) / args.steps
    print(
        f"one update B={args.batch} H={args.horizon} d={args.d_model}: {wall * 1e3:.1f} ms wall, "
        f"{n_ops:,.0f} XLA ops, {total * 1e3:.1f} ms in ops (summed over threads; "
        f"{1e6 * total / max(n_ops, 1):.2f} us per op), {jax.device_count()} device(s)"
    )
    print("\nby pass:")
    for kind, s in sorted(by_pass.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:10s} {s * 1e3:8.1f} ms  {100 * s / total:5.1f} %")
    print("\nby op kind:")
    for kind, s in sorted(by_kind.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {kind:28s} {s * 1e3:8.1f} ms  {100 * s / total:5.1f} %")
    print(f"\nby source (top {args.top}):  ms/update   ops/update  share  pass  function")
    rows = sorted(by_source.items(), key=lambda kv: -kv[1][0])
    for (loc, kind), (s, n) in rows[: args.top]:
        print(f"  {s * 1e3:9.2f} {n:12,.0f} {100 * s / total:6.1f} %  {kind:8s}  {loc}")
    if args.json:
        out = {
            "wall_ms": wall * 1e3,
            "ops_per_update": n_ops,
            "op_ms": total * 1e3,
            "by_pass_ms": {k: v * 1e3 for k, v in by_pass.items()},
            "by_source": [
                {"where": loc, "pass": kind, "ms": s * 1e3, "ops": n} for (loc, kind), (s, n) in rows
            ],
        }
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    from dynaflow.platform import configure_cpu

    configure_cpu()  # the layout dynaflow train runs with (DYNAFLOW_CPU_DEVICES=1: JAX's defaults)
    jax.config.update("jax_enable_compilation_cache", False)
    np.set_printoptions(precision=3)
    main()
