"""``dynaflow sample``: motions from a checkpoint, written to an NPZ."""

from __future__ import annotations

import argparse

from dynaflow.cli.common import (
    add_checkpoint_args,
    add_command,
    load_policy,
    npz_output,
    parse_floats,
    replacing,
)
from dynaflow.robots.go2 import STATE_DIM


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "sample",
        "generate motions from a checkpoint",
        "Sample (states, actions) windows of the checkpoint's horizon from given initial states and "
        "conditionings, or from states drawn from a dataset; writes an NPZ (states, actions, x0, "
        "conditionings).",
    )
    add_checkpoint_args(p, samples=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--x0", help=f"initial state: {STATE_DIM} numbers, or 'home'")
    src.add_argument("--from-dataset", help="draw initial states (and their conditioning) from this NPZ")
    p.add_argument("--cond", help="conditioning vector (C numbers); overrides the dataset's")
    p.add_argument("--out", default="samples.npz", help="output .npz (states, actions, conditionings, x0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import jax
    import numpy as np

    from dynaflow.data import draw_start_states, load_dataset
    from dynaflow.fileio import write_npz

    out = npz_output(args.out, inputs=[args.from_dataset])
    policy = load_policy(args)
    n = args.num_samples
    cond = None
    if args.from_dataset:
        x0, cond = draw_start_states(load_dataset(args.from_dataset), n, np.random.default_rng(args.seed))
    elif args.x0 == "home":
        x0 = np.tile(policy.rollout.home_state().astype(np.float32), (n, 1))
    else:
        x0 = np.tile(parse_floats(args.x0, "--x0", STATE_DIM), (n, 1))
    if args.cond is not None:
        cond = np.tile(parse_floats(args.cond, "--cond", policy.cond_dim), (n, 1))
    if policy.cond_dim is not None and cond is None:
        raise ValueError(f"--cond: this checkpoint needs a {policy.cond_dim}-D conditioning")
    if cond is not None and cond.shape[1] != (policy.cond_dim or 0):
        raise ValueError(
            f"--cond: the checkpoint takes cond_dim={policy.cond_dim}, the data has {cond.shape[1]}"
        )
    X, U = policy.sample(x0, cond, rng=jax.random.PRNGKey(args.seed), ode_steps=args.ode_steps)
    arrays = {"states": X, "x0": x0}
    if U is not None:  # a states-only baseline (state-fm) has none
        arrays["actions"] = U
    if cond is not None:
        arrays["conditionings"] = cond
    replacing(out)
    write_npz(out, arrays)
    print(
        f"wrote {out}: states {X.shape}, actions {None if U is None else U.shape}"
        + (f", conditionings {cond.shape}" if cond is not None else "")
    )
    return 0
