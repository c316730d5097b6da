"""The ``dynaflow`` command."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from dynaflow.jsonio import dumps


def enable_compilation_cache() -> Path:
    """Turn on JAX's persistent compilation cache (compiles are a user-visible cost on a CPU)."""
    import jax

    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dynaflow" / "jax"
    path = Path(os.environ.get("DYNAFLOW_JAX_CACHE", default))
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    return path


def cmd_physics(args: argparse.Namespace) -> int:
    """Check Phi on this machine: standing, MJX vs MuJoCo C, one gradient; print the figures."""
    import jax
    import jax.numpy as jnp

    from dynaflow.physics import create_go2_rollout, random_smooth_actions, replay_in_mujoco, upright

    if args.batch < 1 or args.horizon < 1:
        raise SystemExit(
            f"dynaflow physics: --batch and --horizon must be >= 1, got {args.batch}, {args.horizon}"
        )
    rollout = create_go2_rollout(n_substeps=args.substeps)
    x0 = rollout.home_state()
    print(
        f"Go2 model: {rollout.mj_model.nbody - 1} bodies, {rollout.mj_model.nu} PD actuators, "
        f"ctrl_dt {rollout.ctrl_dt} s, {rollout.n_substeps} substeps of {rollout.sim_dt * 1e3:.1f} ms, "
        f"action_scale {rollout.action_scale} rad; JAX on {jax.devices()[0].platform}"
    )

    t0 = time.perf_counter()
    stand = np.asarray(rollout(x0, np.zeros((250, 12))))
    print(
        f"standing 5 s (MJX, compile included {time.perf_counter() - t0:.1f} s): base z "
        f"{stand[:, 2].min():.3f}..{stand[:, 2].max():.3f} m, min uprightness {upright(stand).min():.4f}"
    )

    U = random_smooth_actions(
        np.random.default_rng(args.seed), args.batch, args.horizon, 1.0, rollout.ctrl_dt
    )
    xb = np.tile(x0, (args.batch, 1))
    t0 = time.perf_counter()
    X = np.asarray(rollout(xb, U))
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    X = np.asarray(rollout(xb, U))
    run_s = time.perf_counter() - t0
    Xc = replay_in_mujoco(rollout, x0, U, fidelity=args.fidelity)
    err = np.abs(X - Xc)
    steps = args.batch * args.horizon * rollout.n_substeps
    print(
        f"MJX rollout B={args.batch} H={args.horizon}: {run_s * 1e3:.1f} ms "
        f"({steps / run_s:,.0f} physics steps/s; first call {compile_s:.1f} s)"
    )
    print(
        f"MJX vs MuJoCo C ({args.fidelity}): max |error| base pos {err[..., :3].max():.2e} m, "
        f"quat {err[..., 3:7].max():.2e}, joints {err[..., 7:19].max():.2e} rad, "
        f"velocities {err[..., 19:].max():.2e}"
    )

    def loss(u):
        return jnp.sum(rollout(jnp.asarray(xb, jnp.float32), u)[:, -1, :3])

    grad = jax.jit(jax.grad(loss))
    t0 = time.perf_counter()
    g = np.asarray(grad(jnp.asarray(U, jnp.float32)))
    print(
        f"gradient d(final base position)/dU: finite {bool(np.isfinite(g).all())}, "
        f"max |g| {np.abs(g).max():.3g} (first call {time.perf_counter() - t0:.1f} s)"
    )
    ok = (
        np.abs(stand[:, 2] - 0.27).max() <= 0.03
        and upright(stand).min() > 0.95
        and (args.fidelity != "same" or err[..., :19].max() <= 1e-3)
        and np.isfinite(g).all()
    )
    print("physics check:", "OK" if ok else "FAILED")
    return 0 if ok else 1


# --------------------------------------------------------------------------------------------
# train / sample / evaluate


def _parse_floats(text: str, flag: str, n: int | None = None) -> np.ndarray:
    try:
        vals = np.array([float(v) for v in text.replace(",", " ").split()], np.float32)
    except ValueError as e:
        raise ValueError(f"{flag}: expected numbers separated by commas or spaces, got {text!r}") from e
    if n is not None and vals.shape != (n,):
        raise ValueError(f"{flag}: expected {n} numbers, got {vals.size}")
    return vals


def _parse_weights(text: str | None) -> dict[str, float] | None:
    if text is None:
        return None
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep:
            raise ValueError(
                f"--weights: expected group=value pairs like joint_pos=2,base_pos=1, got {part!r}"
            )
        try:
            out[name.strip()] = float(value)
        except ValueError as e:
            raise ValueError(f"--weights: {name.strip()!r} needs a number, got {value!r}") from e
    return out


_TRAIN_FLAGS = {  # flag -> (TrainConfig field, type, help)
    "--data": (
        "data",
        str,
        "demonstration NPZ (states (N, T, 37), optional conditionings / episode_lengths)",
    ),
    "--method": (
        "method",
        str,
        "dynaflow (default), or a baseline in the same harness: state-fm (flow matching on states), "
        "state-fm-id (plus inverse dynamics; needs actions), bc (flow matching of action chunks; "
        "needs actions)",
    ),
    "--epochs": ("epochs", int, "epochs (default 100)"),
    "--batch": ("batch", int, "batch size, split over all local devices (default 32)"),
    "--horizon": ("horizon", int, "control steps H per window; windows hold H + 1 states (default 10)"),
    "--lr": ("lr", float, "peak AdamW learning rate, warmup then cosine to 1%% (default 1e-4)"),
    "--weight-decay": ("weight_decay", float, "AdamW weight decay (default 0)"),
    "--ema-decay": ("ema_decay", float, "EMA decay of the weights (default 0.995)"),
    "--d-model": ("d_model", int, "transformer width (default 384)"),
    "--n-heads": ("n_heads", int, "attention heads (default 6)"),
    "--depth": ("depth", int, "DiT blocks (default 3)"),
    "--dropout": ("dropout", float, "dropout rate (default 0.1)"),
    "--save-dir": ("save_dir", str, "run directory: checkpoints and metrics.jsonl (default checkpoints)"),
    "--save-interval": ("save_interval", int, "keep a checkpoint every N epochs (default 10)"),
    "--seed": ("seed", int, "seed of initialisation, split, data order and noise (default 0)"),
    "--val-fraction": ("val_fraction", float, "fraction of episodes held out for validation (default 0.1)"),
    "--stride": ("stride", int, "step between window starts (default 1)"),
    "--steps-per-epoch": ("steps_per_epoch", int, "cap on updates per epoch (default: one pass)"),
    "--max-steps": ("max_steps", int, "stop after this many updates in total"),
    "--time-budget": ("time_budget_s", float, "stop after this many seconds of wall time (saves last)"),
    "--warmup-steps": ("warmup_steps", int, "learning-rate warmup (default 5%% of updates, <= 1000)"),
    "--grad-clip": ("grad_clip", float, "global gradient-norm clip (default 1.0)"),
    "--sigma": ("sigma", float, "std of the source X0 ~ N(x0, sigma^2 I), normalised units (default 1)"),
    "--time-dist": ("time_distribution", str, "flow time distribution: uniform or logit_normal"),
    "--val-windows": ("val_windows", int, "validation windows scored each epoch (default 256)"),
    "--max-nonfinite": ("max_nonfinite", int, "stop after N consecutive non-finite updates (default 20)"),
    "--log-every": ("log_every", int, "metrics.jsonl line every N updates (default 10)"),
    "--wandb": ("wandb", str, "Weights & Biases: online, offline or disabled (default)"),
    "--wandb-project": ("wandb_project", str, "W&B project (default dynaflow)"),
    "--wandb-name": ("wandb_name", str, "W&B run name"),
}


def cmd_train(args: argparse.Namespace) -> int:
    """Train DynaFlow on a demonstration NPZ (or resume a run)."""
    from dynaflow.train import TrainConfig, config_from_checkpoint, train

    explicit = (args.coordinator, args.num_processes, args.process_id)
    if args.local_device_ids is not None and not args.distributed and all(v is None for v in explicit):
        raise ValueError("--local-device-ids needs --coordinator (explicit layout) or --distributed")
    if args.distributed or any(v is not None for v in explicit):
        from dynaflow import distributed

        local_ids = None
        if args.local_device_ids is not None:
            local_ids = [int(v) for v in _parse_floats(args.local_device_ids, "--local-device-ids")]
        distributed.initialize(args.coordinator, args.num_processes, args.process_id, local_ids)
    kwargs = {field: getattr(args, field) for field, _, _ in _TRAIN_FLAGS.values()}
    kwargs["weights"] = _parse_weights(args.weights)
    given = {k: v for k, v in kwargs.items() if v is not None}
    if args.resume:
        config = config_from_checkpoint(args.resume, **given)
    else:
        if "data" not in given:
            raise ValueError("--data is required (or --resume a run)")
        config = TrainConfig(**given)
    result = train(config, resume=args.resume, progress=not args.quiet)
    import jax

    steps = int(result.state.step)
    if jax.process_index() == 0:
        print(f"trained {steps} steps; checkpoints in {result.run_dir} (last, best, epoch_*)")
    else:
        print(f"process {jax.process_index()}: trained {steps} steps; process 0 wrote the files")
    return 0


def _load_policy(args, checkpoint=None):
    from dynaflow.policy import DynaFlowPolicy

    return DynaFlowPolicy.from_checkpoint(checkpoint or args.checkpoint, use_ema=args.use_ema)


def cmd_sample(args: argparse.Namespace) -> int:
    """Sample motions from a checkpoint and write them to an NPZ."""
    import jax

    from dynaflow.data import load_dataset

    policy = _load_policy(args)
    n = args.num_samples
    if n < 1:
        raise ValueError(f"--num-samples: expected >= 1, got {n}")
    cond = None
    if args.from_dataset:
        ds = load_dataset(args.from_dataset)
        rng = np.random.default_rng(args.seed)
        valid_starts = [(e, s) for e in range(ds.num_episodes) for s in range(int(ds.lengths[e]))]
        pick = rng.choice(len(valid_starts), n, replace=len(valid_starts) < n)
        idx = np.array([valid_starts[i] for i in pick])
        x0 = ds.states[idx[:, 0], idx[:, 1]]
        if ds.conditionings is not None:
            cond = ds.conditionings[idx[:, 0], idx[:, 1]]
    elif args.x0 == "home":
        x0 = np.tile(policy.rollout.home_state().astype(np.float32), (n, 1))
    else:
        x0 = np.tile(_parse_floats(args.x0, "--x0", 37), (n, 1))
    if args.cond is not None:
        cond = np.tile(_parse_floats(args.cond, "--cond", policy.cond_dim), (n, 1))
    if policy.cond_dim is not None and cond is None:
        raise ValueError(f"--cond: this checkpoint needs a {policy.cond_dim}-D conditioning")
    if cond is not None and cond.shape[1] != (policy.cond_dim or 0):
        raise ValueError(
            f"--cond: the checkpoint takes cond_dim={policy.cond_dim}, the data has {cond.shape[1]}"
        )
    X, U = policy.sample(x0, cond, rng=jax.random.PRNGKey(args.seed), ode_steps=args.ode_steps)
    out = {"states": X, "x0": x0}
    if U is not None:  # a states-only baseline (state-fm) has none
        out["actions"] = U
    if cond is not None:
        out["conditionings"] = cond
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **out)
    print(
        f"wrote {args.out}: states {X.shape}, actions {None if U is None else U.shape}"
        + (f", conditionings {cond.shape}" if cond is not None else "")
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Score checkpoints on held-out demonstrations (every metric of dynaflow.evaluate); one checkpoint
    and ``--out X.json`` writes its metrics, otherwise ``--out DIR`` gets the side-by-side report."""
    import json

    from dynaflow.evaluate import evaluate_report, evaluate_run, format_table
    from dynaflow.evaluate.report import format_markdown_table

    options = dict(
        num_samples=args.num_samples,
        batch=args.batch,
        ode_steps=args.ode_steps,
        seed=args.seed,
        reference=not args.no_reference,
        long_seconds=args.long_seconds,
        long_per_group=args.long_per_gait,
        best_action=not args.no_best_action,
    )
    out = Path(args.out)
    if out.suffix == ".json":
        if len(args.checkpoint) != 1:
            raise ValueError(f"--out {out}: a .json file holds one checkpoint's metrics; give a directory")
        metrics = evaluate_run(_load_policy(args, args.checkpoint[0]), args.dataset, **options)["metrics"]
        metrics["checkpoint"] = str(args.checkpoint[0])
        metrics["use_ema"] = bool(args.use_ema)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(dumps(metrics))
        print(format_table(metrics))
        print(f"wrote {out}")
        return 0
    provenance = {
        "command": args.command_line,
        "dataset": str(args.dataset),
        "seeds": {"evaluation": args.seed},
        "use_ema": bool(args.use_ema),
    }
    paths = evaluate_report(
        args.checkpoint, args.dataset, out, provenance, use_ema=args.use_ema, videos=args.videos, **options
    )
    runs = json.loads(Path(paths["metrics"]).read_text())["runs"]
    print(format_markdown_table(runs, highlight=False))
    print(f"wrote {paths['markdown']}, {paths['html']} and {paths['metrics']}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """Long-horizon generation from a checkpoint: open-loop chaining or closed-loop replanning in MuJoCo C."""

    from dynaflow.rollout_long import (
        check_gait_model,
        default_start,
        parse_pushes,
        parse_schedule,
        rollout_long,
        schedule_fn,
    )

    policy = _load_policy(args)
    if args.schedule is not None:
        check_gait_model(policy)
        cond = schedule_fn(parse_schedule(args.schedule))
    elif args.cond is not None:
        cond = _parse_floats(args.cond, "--cond", policy.cond_dim)
    else:
        cond = None
    if args.x0 == "start":
        x0 = default_start(policy)
    elif args.x0 == "home":
        x0 = policy.rollout.home_state()
    else:
        x0 = _parse_floats(args.x0, "--x0", 37)
    result = rollout_long(
        policy,
        x0,
        cond,
        seconds=args.seconds,
        closed_loop=args.closed_loop,
        replan_every=args.replan_every,
        fidelity=args.fidelity,
        pushes=parse_pushes(args.push),
        seed=args.seed,
        ode_steps=args.ode_steps,
    )
    summary = result.summary()
    arrays = {"states": result.states.astype(np.float32), "latencies": np.asarray(result.latencies)}
    if result.actions is not None:
        arrays["actions"] = result.actions.astype(np.float32)
    if result.cond is not None:
        arrays["conditionings"] = result.cond
    for fid, R in result.replays.items():
        arrays[f"replay_{fid}"] = R.astype(np.float32)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays)
    out.with_suffix(".json").write_text(dumps({"command": args.command_line, **summary}))
    mode = (
        f"closed loop in MuJoCo C ({args.fidelity}), replanning every {args.replan_every} steps"
        if (args.closed_loop)
        else "open loop (chained windows)"
    )
    print(
        f"{summary['seconds']:.1f} s {mode}: moved {summary['forward_m']:+.2f} m forward, "
        f"{summary['distance_m']:.2f} m in all, upright throughout: {summary['upright']}"
    )
    if "latency_ms_median" in summary:
        print(
            f"sampler: {summary['sampler_calls']} calls, "
            f"latency median {summary['latency_ms_median']:.1f} ms, "
            f"p95 {summary['latency_ms_p95']:.1f} ms (first call {summary['latency_ms_first']:.0f} ms); "
            f"{summary['real_time_factor']:.1f}x real time "
            f"({summary['real_time_factor_warm']:.1f}x after the first call)"
        )
    for fid in result.replays:
        print(
            f"open-loop replay in MuJoCo C ({fid}): upright {summary[f'replay_{fid}_upright']}, "
            f"forward {summary[f'replay_{fid}_forward_m']:+.2f} m, "
            f"drift {summary[f'replay_{fid}_drift_m']:.3f} m"
        )
    print(f"wrote {out} and {out.with_suffix('.json')}")
    if args.video:
        from dynaflow.render import render_motion

        path = render_motion(result.states, args.video, fast=True)
        print(f"wrote {path}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    """Render generated motion (from a checkpoint, or an NPZ of states) to MP4 or GIF, optionally with the
    demonstration as a translucent ghost."""
    from dynaflow.render import render_motion

    out = Path(args.out)
    if out.suffix.lower() not in (".mp4", ".gif"):
        raise ValueError(f"--out {out}: expected a .mp4 or .gif path")
    ghost = None
    if args.checkpoint:
        from dynaflow.data import bundled_dataset, load_dataset
        from dynaflow.evaluate import check_conditioning, held_out_episodes
        from dynaflow.rollout_long import rollout_long

        policy = _load_policy(args)
        ds = load_dataset(args.dataset or bundled_dataset())
        check_conditioning(policy, ds)
        episode = args.episode if args.episode is not None else int(held_out_episodes(policy, ds)[0][0])
        if not 0 <= episode < ds.num_episodes:
            raise ValueError(f"--episode: expected 0..{ds.num_episodes - 1}, got {episode}")
        cond = None if ds.conditionings is None else ds.conditionings[episode, 0]
        res = rollout_long(policy, ds.states[episode, 0], cond, seconds=args.seconds, seed=args.seed)
        states = res.states
        demo = ds.states[episode, : min(len(states), int(ds.lengths[episode]))]
        arrays = {"states": states, "demo": demo, "episode": np.int64(episode)}
        if res.actions is not None:
            arrays["actions"] = res.actions
        np.savez(out.with_suffix(".npz"), **arrays)
        ghost = demo if args.ghost_demo else None
    else:
        with np.load(args.npz, allow_pickle=False) as f:
            if "states" not in f:
                raise ValueError(f"{args.npz}: key 'states' missing; found {', '.join(f.files) or 'nothing'}")
            states = f["states"]
            if args.ghost_demo:
                if "demo" not in f:
                    raise ValueError(f"{args.npz}: key 'demo' missing: --ghost-demo needs the demonstration")
                ghost = f["demo"]
        if states.ndim == 3:
            if not 0 <= args.sample < len(states):
                raise ValueError(f"--sample: {args.npz} holds {len(states)} motions, got {args.sample}")
            states = states[args.sample]
            ghost = ghost[args.sample] if ghost is not None and ghost.ndim == 3 else ghost
    path = render_motion(
        states, out, ghost=ghost, fps=args.fps, width=args.width, height=args.height, fast=args.fast
    )
    print(f"wrote {path}: {len(states)} frames at {args.fps:g} fps, {args.width}x{args.height}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The whole pipeline on the bundled data within a time budget; a report with plots and videos."""
    from dynaflow.demo import print_summary, run_demo

    summary = run_demo(args.out, args.budget_minutes, args.seed, args.data)
    print_summary(summary, Path(args.out))
    return 0


def cmd_data_gaits(args: argparse.Namespace) -> int:
    """Simulate the scripted gait library and write the NPZ (states, actions, conditionings)."""

    from dynaflow import create_go2_rollout
    from dynaflow.data import save_dataset
    from dynaflow.demos.gaits import COND_NAMES, SPECS, make_gait_dataset

    gaits = tuple(g.strip() for g in args.gaits.split(",") if g.strip())
    arrays, summary = make_gait_dataset(create_go2_rollout(), args.episodes, args.seconds, args.seed, gaits)
    save_dataset(args.out, compressed=args.compress, **arrays)
    summary["conditioning"] = list(COND_NAMES)
    Path(str(args.out) + ".json").write_text(dumps(summary))
    print(
        f"wrote {args.out}: {summary['kept']} of {summary['episodes']} episodes kept "
        f"({args.seconds:g} s each, 50 Hz) in {summary['wall_seconds']:.1f} s; summary in {args.out}.json"
    )
    print(
        f"{'gait':6s} {'kept':>5s} {'dropped':>8s}  |mean error| vx, vy (m/s), yaw rate (rad/s)   "
        "contact phase offsets FL FR RL RR (cycles; designed)"
    )
    for g, r in summary["gaits"].items():
        err = ", ".join(f"{v:.3f}" for v in r["tracking_error_vx_vy_yaw"])
        offs = " ".join(f"{v:.2f}" for v in r["phase_offsets_FL_FR_RL_RR"]) if g != "stand" else "-"
        designed = " ".join(f"{v:.2f}" for v in SPECS[g].offsets) if g != "stand" else "-"
        print(f"{g:6s} {r['kept']:5d} {r['dropped']:8d}  {err:38s}  {offs} ({designed})")
    return 0


def cmd_data_kinematic(args: argparse.Namespace) -> int:
    """Turn gait-library episodes into kinematic (dynamically infeasible) demonstrations."""
    from dynaflow.data import load_dataset, save_dataset
    from dynaflow.demos.kinematic import kinematic_from_gaits

    if args.source == "bundled":
        from dynaflow.data import bundled_dataset

        args.source = str(bundled_dataset())
    ds = load_dataset(args.source)
    if ds.conditionings is None or ds.conditionings.shape[-1] < 3:
        raise ValueError(
            f"{args.source}: key 'conditionings': needs the commanded (vx, vy, yaw rate) first, "
            "as `dynaflow data gaits` writes them"
        )
    states = kinematic_from_gaits(ds.states, ds.conditionings, time_scale=args.time_scale)
    save_dataset(args.out, states, conditionings=ds.conditionings, episode_lengths=ds.lengths)
    print(
        f"wrote {args.out}: {states.shape[0]} kinematic episodes (no actions), time scale {args.time_scale:g}"
    )
    return 0


def cmd_teacher_train(args: argparse.Namespace) -> int:
    """Train the PPO teacher (Brax) on the Go2 joystick task."""
    from dynaflow.demos.teacher import PPOConfig, default_config, train_teacher

    gaits = tuple(g.strip() for g in args.gaits.split(",") if g.strip()) if args.gaits else ()
    hidden = tuple(int(v) for v in args.hidden.split(","))
    ppo = PPOConfig(
        num_timesteps=args.num_timesteps,
        num_envs=args.num_envs,
        episode_length=args.episode_length,
        batch_size=args.batch_size,
        num_minibatches=args.num_minibatches,
        unroll_length=args.unroll_length,
        num_evals=args.num_evals,
        num_eval_envs=min(args.num_envs, 128),
        learning_rate=args.learning_rate,
        policy_hidden=hidden,
        value_hidden=hidden,
        seed=args.seed,
    )
    run_dir = Path(args.logdir) / args.exp_name
    result = train_teacher(
        run_dir, default_config(gaits=gaits, randomize=args.randomize), ppo, restore=args.restore
    )
    last = result["history"][-1] if result["history"] else {}
    print(
        f"teacher checkpoints in {run_dir / 'checkpoints'}; progress in {run_dir / 'progress.jsonl'}"
        + (
            f"; final reward {last['reward']:.3f}, tracking error {last['tracking_error']:.3f} m/s"
            if last
            else ""
        )
    )
    return 0


def cmd_teacher_collect(args: argparse.Namespace) -> int:
    """Roll a trained teacher out in batched MJX and write the NPZ schema."""
    from dynaflow.data import save_dataset
    from dynaflow.demos.teacher import collect

    arrays, summary = collect(args.checkpoint, args.num_episodes, args.episode_seconds, args.seed)
    if not summary["kept"]:
        raise ValueError(f"{args.checkpoint}: every collected episode fell; train the teacher longer")
    save_dataset(args.output, **arrays)
    print(
        f"wrote {args.output}: {summary['kept']} of {summary['episodes']} episodes kept "
        f"({summary['dropped']} fell), {summary['steps']} steps each, "
        f"{summary['env_steps_per_s']:,.0f} env steps/s (compile included)"
    )
    return 0


def cmd_data_synthetic(args: argparse.Namespace) -> int:
    """Write a small synthetic conditioned dataset (periodic motions simulated in MuJoCo C)."""
    from dynaflow import create_go2_rollout
    from dynaflow.data import save_dataset
    from dynaflow.demos.synthetic import synthetic_demos

    d = synthetic_demos(create_go2_rollout(), episodes=args.episodes, steps=args.steps, seed=args.seed)
    save_dataset(args.out, **d)
    print(f"wrote {args.out}: states {d['states'].shape}, conditionings {d['conditionings'].shape}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from dynaflow import __version__

    parser = argparse.ArgumentParser(prog="dynaflow", description=__doc__)
    parser.add_argument("--version", action="version", version=f"dynaflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("physics", help="check the differentiable Go2 simulator on this machine")
    p.add_argument("--batch", type=int, default=32, help="random action sequences to compare (default 32)")
    p.add_argument("--horizon", type=int, default=16, help="control steps per sequence (default 16)")
    p.add_argument("--substeps", type=int, default=4, help="physics steps per 20 ms control step")
    p.add_argument(
        "--fidelity",
        choices=("same", "reference"),
        default="same",
        help="MuJoCo C replay: the model's own options, or the converged reference solver",
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_physics)

    p = sub.add_parser(
        "demo", help="train DynaFlow and a baseline on the bundled data, evaluate, write a report with videos"
    )
    p.add_argument("--out", default="dynaflow_demo", help="output directory (default dynaflow_demo)")
    p.add_argument(
        "--budget-minutes",
        type=float,
        default=15.0,
        help="wall-time budget of the whole demo, compile included (default 15; below 5: reduced mode)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--data",
        default=None,
        help="a gait-conditioned NPZ instead of the bundled data (e.g. from `dynaflow data kinematic`)",
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="train DynaFlow on state-only demonstrations")
    for flag, (field, typ, help_text) in _TRAIN_FLAGS.items():
        p.add_argument(flag, dest=field, type=typ, default=None, help=help_text)
    p.add_argument(
        "--weights",
        default=None,
        help="loss weight per state group, e.g. joint_pos=2,base_quat=0.5 (default all 1)",
    )
    p.add_argument(
        "--resume",
        default=None,
        help="continue a run exactly from a checkpoint (or a run directory's last one)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    g = p.add_argument_group(
        "several processes / hosts",
        "run the same command in every process; --batch is the global batch, process 0 writes the files",
    )
    g.add_argument(
        "--distributed",
        action="store_true",
        help="join a multi-process run whose layout JAX detects (SLURM, Open MPI, Kubernetes...)",
    )
    g.add_argument("--coordinator", default=None, help="HOST:PORT of process 0 (explicit layout)")
    g.add_argument("--num-processes", type=int, default=None, help="number of processes (explicit layout)")
    g.add_argument("--process-id", type=int, default=None, help="this process's index, 0 .. N-1")
    g.add_argument(
        "--local-device-ids", default=None, help="the local devices this process uses, e.g. 0,1 (default all)"
    )
    p.set_defaults(func=cmd_train)

    def checkpoint_args(p, many=False):
        if many:
            p.add_argument(
                "--checkpoint",
                required=True,
                action="append",
                help="checkpoint directory (or run directory: best); repeat to compare methods side by side",
            )
        else:
            p.add_argument(
                "--checkpoint", required=True, help="checkpoint directory (or run directory: best)"
            )
        p.add_argument(
            "--use-ema",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="sample with the EMA weights (default) or the raw ones (--no-use-ema)",
        )
        p.add_argument("--ode-steps", type=int, default=1, help="Euler steps of the flow (default 1)")
        p.add_argument("--num-samples", type=int, default=100, help="motions to generate (default 100)")
        p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("sample", help="generate motions from a checkpoint")
    checkpoint_args(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--x0", help="initial state: 37 numbers, or 'home'")
    src.add_argument("--from-dataset", help="draw initial states (and their conditioning) from this NPZ")
    p.add_argument("--cond", help="conditioning vector (C numbers); overrides the dataset's")
    p.add_argument("--out", default="samples.npz", help="output NPZ (states, actions, conditionings, x0)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("evaluate", help="score checkpoints on held-out demonstrations; write a report")
    checkpoint_args(p, many=True)
    p.add_argument("--dataset", required=True, help="held-out demonstration NPZ")
    p.add_argument("--batch", type=int, default=32, help="samples per sampler call (default 32)")
    p.add_argument("--no-reference", action="store_true", help="skip the reference-simulator replay")
    p.add_argument(
        "--no-best-action",
        action="store_true",
        help="skip the best-action one-step SAE (an action search per transition through MJX)",
    )
    p.add_argument(
        "--long-seconds",
        type=float,
        default=10.0,
        help="long-horizon chaining length, 0 to skip (default 10)",
    )
    p.add_argument("--long-per-gait", type=int, default=2, help="long-horizon runs per gait (default 2)")
    p.add_argument("--videos", action="store_true", help="render each checkpoint's long-horizon motion (MP4)")
    p.add_argument(
        "--out",
        default="report",
        help="report directory (metrics.json, report.md, report.html, plots/); a .json path writes one "
        "checkpoint's metrics only (default report)",
    )
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("generate", help="long-horizon motion: open-loop chaining or closed-loop replanning")
    checkpoint_args(p)
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "--schedule",
        help="gait schedule, e.g. trot:0.5:4,turn:0.5:0.8:3,bound:0.3:3 (gait:vx:[vy:]yaw_rate:seconds)",
    )
    how.add_argument("--cond", help="a fixed conditioning vector (C numbers)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of the motion (default 10)")
    p.add_argument(
        "--x0", default="start", help="initial state: start (settled standing, default), home, or 37 numbers"
    )
    p.add_argument(
        "--closed-loop", action="store_true", help="replan from the measured state of a MuJoCo C simulation"
    )
    p.add_argument("--replan-every", type=int, default=4, help="control steps between replans (default 4)")
    p.add_argument(
        "--fidelity", choices=("same", "reference"), default="same", help="closed loop: the simulator"
    )
    p.add_argument(
        "--push",
        action="append",
        default=[],
        help="closed loop: a push on the trunk, FORCE N@TIME s[:DURATION s][/x|-x|y|-y], e.g. 30N@5s",
    )
    p.add_argument(
        "--out", default="motion.npz", help="output NPZ (states, actions, ...) and a .json summary"
    )
    p.add_argument("--video", default=None, help="also render the motion to this .mp4 or .gif")
    p.set_defaults(func=cmd_generate, num_samples=1)

    p = sub.add_parser("render", help="render motion to MP4 or GIF (MuJoCo offscreen; OSMesa on a CPU)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="generate from this checkpoint (chained, open loop), then render")
    src.add_argument("--npz", help="render the 'states' of this NPZ ((T, 37) or (B, T, 37): see --sample)")
    p.add_argument("--out", required=True, help="output .mp4 or .gif")
    p.add_argument("--ghost-demo", action="store_true", help="draw the demonstration as a translucent ghost")
    p.add_argument("--dataset", help="with --checkpoint: the demonstrations (default: the bundled data)")
    p.add_argument("--episode", type=int, help="with --checkpoint: the episode giving x0, c and the ghost")
    p.add_argument("--seconds", type=float, default=4.0, help="with --checkpoint: seconds to generate")
    p.add_argument("--sample", type=int, default=0, help="with --npz: which motion of a batch (default 0)")
    p.add_argument("--fps", type=float, default=50.0, help="frames per second (default 50: one per state)")
    p.add_argument(
        "--fast",
        action="store_true",
        help="no shadows, reflections or anti-aliasing: ~6x faster with CPU (OSMesa) rendering",
    )
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--use-ema", action=argparse.BooleanOptionalAction, default=True)
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("data", help="make demonstration datasets")
    dsub = p.add_subparsers(dest="data_command", required=True)
    q = dsub.add_parser(
        "synthetic", help="periodic conditioned motions simulated in MuJoCo C (tests, quickstart)"
    )
    q.add_argument("--out", required=True)
    q.add_argument("--episodes", type=int, default=32)
    q.add_argument("--steps", type=int, default=100, help="control steps per episode (50 Hz)")
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=cmd_data_synthetic)
    q = dsub.add_parser(
        "gaits", help="the scripted gait library (trot, pace, bound, pronk, stand) in MuJoCo C"
    )
    q.add_argument("--out", required=True)
    q.add_argument("--episodes", type=int, default=200, help="episodes, gaits in turn (default 200)")
    q.add_argument("--seconds", type=float, default=5.0, help="seconds per episode (default 5)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument(
        "--gaits", default="trot,pace,bound,pronk,stand", help="comma-separated (default: all five)"
    )
    q.add_argument("--compress", action="store_true", help="write a compressed NPZ")
    q.set_defaults(func=cmd_data_gaits)
    q = dsub.add_parser("kinematic", help="kinematic (infeasible) demonstrations from a gait-library NPZ")
    q.add_argument(
        "--source",
        required=True,
        help="an NPZ written by `dynaflow data gaits`, or 'bundled' (the shipped one)",
    )
    q.add_argument("--out", required=True)
    q.add_argument("--time-scale", type=float, default=1.0, help="play the joint motion this much faster")
    q.set_defaults(func=cmd_data_kinematic)

    p = sub.add_parser("teacher", help="the PPO teacher (Brax): train it, collect demonstrations with it")
    tsub = p.add_subparsers(dest="teacher_command", required=True)
    q = tsub.add_parser("train", help="train the Go2 joystick policy with Brax PPO")
    q.add_argument("--exp-name", required=True, help="run name: logs go to LOGDIR/NAME/")
    q.add_argument("--logdir", default="logs")
    q.add_argument("--num-envs", type=int, default=4096)
    q.add_argument("--num-timesteps", type=int, default=100_000_000)
    q.add_argument(
        "--episode-length", type=int, default=1000, help="control steps per episode (default 1000)"
    )
    q.add_argument("--batch-size", type=int, default=256)
    q.add_argument("--num-minibatches", type=int, default=32)
    q.add_argument("--unroll-length", type=int, default=20)
    q.add_argument("--num-evals", type=int, default=10)
    q.add_argument("--learning-rate", type=float, default=3e-4)
    q.add_argument("--hidden", default="512,256,128", help="policy and value MLP sizes")
    q.add_argument(
        "--gaits", default="", help="gait conditioning, e.g. trot,pace,bound,pronk (default: none)"
    )
    q.add_argument(
        "--randomize", action="store_true", help="observation noise, pushes, random initial joints"
    )
    q.add_argument("--restore", default=None, help="a teacher checkpoint to continue from")
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=cmd_teacher_train)
    q = tsub.add_parser("collect", help="roll a teacher out in batched MJX and write the NPZ schema")
    q.add_argument(
        "--checkpoint", required=True, help="a run directory (its newest checkpoint) or a checkpoint"
    )
    q.add_argument("--num-episodes", type=int, default=1000)
    q.add_argument("--episode-seconds", type=float, default=5.0)
    q.add_argument("--output", required=True)
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=cmd_teacher_collect)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dynaflow`` console script."""
    from dynaflow.checkpoint import CheckpointError
    from dynaflow.data import DatasetError
    from dynaflow.train import TrainingStopped

    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["dynaflow", *argv])  # reports record what produced them
    enable_compilation_cache()
    try:
        return args.func(args)
    except TrainingStopped as e:
        print(str(e), file=sys.stderr)
        return 1
    except (DatasetError, CheckpointError, ValueError, FileNotFoundError) as e:
        if os.environ.get("DYNAFLOW_DEBUG"):
            raise
        # one line that names the problem; DYNAFLOW_DEBUG=1 shows the traceback
        print(f"dynaflow {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
