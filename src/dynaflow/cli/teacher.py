"""``dynaflow teacher``: the PPO teacher (Brax): train it, collect demonstrations with it."""

from __future__ import annotations

import argparse
from pathlib import Path

from dynaflow.cli.common import (
    add_command,
    non_negative_int,
    npz_output,
    positive_float,
    positive_int,
    replacing,
)

#: ``teacher train --preset``: ``gpu`` is the configuration the defaults describe (4096 environments,
#: 100 M steps); ``smoke`` runs in about a minute on a 2-core CPU (it does not learn to walk).
PRESETS = {
    "gpu": {},
    "smoke": dict(
        num_envs=64,
        num_timesteps=100_000,
        episode_length=200,
        batch_size=64,
        num_minibatches=4,
        unroll_length=10,
        num_evals=2,
        hidden="64,64",
    ),
}
_DEFAULTS = dict(
    num_envs=4096,
    num_timesteps=100_000_000,
    episode_length=1000,
    batch_size=256,
    num_minibatches=32,
    unroll_length=20,
    num_evals=10,
    learning_rate=3e-4,
    hidden="512,256,128",
)


def add_parser(sub) -> None:
    p = add_command(sub, "teacher", "the PPO teacher (Brax): train it, collect demonstrations with it")
    tsub = p.add_subparsers(dest="subcommand", required=True, metavar="STEP", parser_class=type(p))
    _add_train(tsub)
    _add_collect(tsub)


def _add_train(tsub) -> None:
    q = add_command(
        tsub,
        "train",
        "train the Go2 joystick policy with Brax PPO",
        "Brax PPO on the Go2 joystick task in MJX. The defaults (--preset gpu) are sized for a GPU; "
        "--preset smoke runs in about a minute on a CPU and does not learn to walk. Explicit flags win.",
    )
    q.add_argument("--exp-name", required=True, help="run name: logs go to LOGDIR/NAME/")
    q.add_argument("--logdir", default="logs", help="where runs go")
    q.add_argument("--preset", choices=tuple(PRESETS), default="gpu", help="a set of defaults")
    _add_ppo_sizes(q)
    q.add_argument(
        "--gaits", default="", help="gait conditioning, e.g. trot,pace,bound,pronk (default: none)"
    )
    q.add_argument(
        "--randomize", action="store_true", help="observation noise, pushes, random initial joints"
    )
    q.add_argument("--restore", default=None, help="a teacher checkpoint to continue from")
    q.add_argument("--seed", type=non_negative_int("--seed"), default=0, help="seed of PPO")
    q.set_defaults(func=run_train)


def _add_ppo_sizes(q: argparse.ArgumentParser) -> None:
    """PPO's sizes; unset, they come from ``--preset`` (the defaults their help names)."""
    q.add_argument(
        "--num-envs",
        type=positive_int("--num-envs"),
        help=f"parallel environments (default {_DEFAULTS['num_envs']})",
    )
    q.add_argument(
        "--num-timesteps",
        type=positive_int("--num-timesteps"),
        help=f"environment steps in all (default {_DEFAULTS['num_timesteps']:,})",
    )
    q.add_argument(
        "--episode-length",
        type=positive_int("--episode-length"),
        help=f"control steps per episode (default {_DEFAULTS['episode_length']})",
    )
    q.add_argument(
        "--batch-size",
        type=positive_int("--batch-size"),
        help=f"PPO batch size (default {_DEFAULTS['batch_size']})",
    )
    q.add_argument(
        "--num-minibatches",
        type=positive_int("--num-minibatches"),
        help=f"minibatches per update (default {_DEFAULTS['num_minibatches']})",
    )
    q.add_argument(
        "--unroll-length",
        type=positive_int("--unroll-length"),
        help=f"steps per unroll (default {_DEFAULTS['unroll_length']})",
    )
    q.add_argument(
        "--num-evals",
        type=positive_int("--num-evals"),
        help=f"evaluations during training (default {_DEFAULTS['num_evals']})",
    )
    q.add_argument(
        "--learning-rate",
        type=positive_float("--learning-rate"),
        help=f"Adam learning rate (default {_DEFAULTS['learning_rate']})",
    )
    q.add_argument("--hidden", help=f"policy and value MLP sizes (default {_DEFAULTS['hidden']})")


def _add_collect(tsub) -> None:
    q = add_command(
        tsub,
        "collect",
        "roll a teacher out in batched MJX and write the NPZ schema",
        "Roll a trained teacher out with random commands; episodes that fall are dropped. Train DynaFlow on "
        "the result with `dynaflow train --data OUTPUT`.",
    )
    q.add_argument(
        "--checkpoint", required=True, help="a run directory (its newest checkpoint) or a checkpoint"
    )
    q.add_argument(
        "--num-episodes", type=positive_int("--num-episodes"), default=1000, help="episodes to roll out"
    )
    q.add_argument(
        "--episode-seconds", type=positive_float("--episode-seconds"), default=5.0, help="seconds per episode"
    )
    q.add_argument("--output", required=True, help="output .npz")
    q.add_argument("--seed", type=non_negative_int("--seed"), default=0, help="seed of the commands")
    q.set_defaults(func=run_collect)


def run_train(args: argparse.Namespace) -> int:
    from dynaflow.data.sources.teacher import PPOConfig, default_config, train_teacher

    values = {**_DEFAULTS, **PRESETS[args.preset]}
    values.update({k: getattr(args, k) for k in _DEFAULTS if getattr(args, k) is not None})
    gaits = tuple(g.strip() for g in args.gaits.split(",") if g.strip()) if args.gaits else ()
    try:
        hidden = tuple(int(v) for v in str(values["hidden"]).split(","))
    except ValueError:
        raise ValueError(
            f"--hidden: expected layer sizes like 512,256,128, got {values['hidden']!r}"
        ) from None
    if not hidden or min(hidden) < 1:
        raise ValueError(f"--hidden: expected positive layer sizes, got {values['hidden']!r}")
    ppo = PPOConfig(
        num_timesteps=values["num_timesteps"],
        num_envs=values["num_envs"],
        episode_length=values["episode_length"],
        batch_size=values["batch_size"],
        num_minibatches=values["num_minibatches"],
        unroll_length=values["unroll_length"],
        num_evals=values["num_evals"],
        num_eval_envs=min(values["num_envs"], 128),
        learning_rate=values["learning_rate"],
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


def run_collect(args: argparse.Namespace) -> int:
    from dynaflow.data import save_dataset
    from dynaflow.data.sources.teacher import collect

    out = npz_output(args.output, "--output")
    arrays, summary = collect(args.checkpoint, args.num_episodes, args.episode_seconds, args.seed)
    if not summary["kept"]:
        raise ValueError(f"{args.checkpoint}: every collected episode fell; train the teacher longer")
    replacing(out)
    save_dataset(out, **arrays)
    print(
        f"wrote {out}: {summary['kept']} of {summary['episodes']} episodes kept "
        f"({summary['dropped']} fell), {summary['steps']} steps each, "
        f"{summary['env_steps_per_s']:,.0f} env steps/s (compile included); "
        f"train on it with: dynaflow train --data {out} --preset cpu --save-dir runs/teacher-data"
    )
    return 0
