"""Benchmark of the demonstration sources.

    python benchmarks/demos.py

* gait library (MuJoCo C, one thread, the scripted controller in Python): simulated episode-seconds per
  wall-second, for the issue's 200 episodes x 5 s;
* kinematic conversion of the same episodes;
* the PPO teacher's MJX environment: env steps/s (batched ``env.step`` with random actions, 20 steps per
  call) at 256 and 1024 environments;
* teacher collection throughput (``--teacher RUN_DIR``, a trained teacher): env steps/s, second call.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax

from dynaflow.data.sources.gaits import make_gait_dataset
from dynaflow.data.sources.kinematic import kinematic_from_gaits
from dynaflow.physics import create_go2_rollout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--envs", type=int, nargs="*", default=[256, 1024])
    ap.add_argument("--teacher", default=None, help="a trained teacher run directory, for collection")
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
    from dynaflow.data.sources.teacher import Go2Joystick, collect, default_config

    env = Go2Joystick(default_config(gaits=("trot", "pace", "bound", "pronk")))

    def run(state, key):
        def body(s, k):
            return jax.vmap(env.step)(
                s, jax.random.uniform(k, (s.obs.shape[0], 12), minval=-1, maxval=1)
            ), None

        return jax.lax.scan(body, state, jax.random.split(key, 20))[0]

    run = jax.jit(run)
    for n in args.envs:
        state = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), n))
        t0 = time.perf_counter()
        jax.block_until_ready(run(state, jax.random.PRNGKey(1)).obs)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        jax.block_until_ready(run(state, jax.random.PRNGKey(2)).obs)
        dt = time.perf_counter() - t0
        result[f"teacher_env_steps_per_s_{n}"] = 20 * n / dt
        print(
            f"teacher env (4 gaits, MJX): {n} envs: {20 * n / dt:,.0f} env steps/s "
            f"({20 * n * rollout.n_substeps / dt:,.0f} physics steps/s; first call {first:.1f} s)"
        )
    if args.teacher:
        collect(args.teacher, 256, 2.0)  # compile
        _, summary = collect(args.teacher, 256, 2.0, seed=1)
        result["collect_env_steps_per_s"] = summary["env_steps_per_s"]
        print(f"teacher collection: 256 episodes x 2 s: {summary['env_steps_per_s']:,.0f} env steps/s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
