"""Motion capture with a walking prior: fine-tune a gait-library model on clips mixed with the gait library.

    dynaflow demo --out demo                                   # a model trained on the bundled gait library
    dynaflow data import dog_trot.txt dog_pace.txt --robot laikago --label trot,pace --out tp.npz
    python benchmarks/mocap_prior.py --prior demo/runs/dynaflow --data tp.npz --out prior_run \\
        [--share 0.5] [--ease-in 0.5] [--chain 2] [--lr 3e-4] [--time-budget 480]
    python benchmarks/mocap.py --data tp.npz prior_run/last

An experiment for the issue "From motion capture" (the warm-start and co-training leads), not a
training mode of the package: the clips must use the gait library's conditioning layout (labels among
trot, pace, bound, pronk). The clips' episodes are repeated so that they give about ``--share`` of the
training windows, the rest coming from the bundled gait library (``go2_gaits.npz``), and the prior run
is resumed on that mix with the recipe of ``dynaflow demo --data`` (:data:`dynaflow.demo.EXTERNAL_RECIPE`,
``--ease-in`` overridable) at a lower learning rate, its normaliser kept (the network's inputs are scaled
by it). The gait library keeps the walking the model already has; the clips pull it toward their style.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

from dynaflow.data import bundled_dataset, load_dataset
from dynaflow.data.schema import Dataset, save_dataset
from dynaflow.data.sources import gaits
from dynaflow.demo import EXTERNAL_RECIPE
from dynaflow.runtime import enable_compilation_cache
from dynaflow.train import config_from_checkpoint, train


def mix(prior: Dataset, clips: Dataset, share: float, min_steps: int) -> tuple[Dataset, int]:
    """``prior``'s episodes and ``clips``' repeated to about ``share`` of the windows of ``min_steps``
    (padded to one length, ``episode_lengths`` marking the valid steps); returns it and the repeat."""
    if prior.cond_dim != clips.cond_dim:
        raise SystemExit(
            f"{clips.source}: {clips.cond_dim} conditioning numbers, the gait library has {prior.cond_dim} "
            "(import the clips with --label among trot, pace, bound, pronk)"
        )
    T = max(prior.states.shape[1], clips.states.shape[1])

    def pad(a: np.ndarray) -> np.ndarray:
        return np.concatenate([a, np.repeat(a[:, -1:], T - a.shape[1], axis=1)], axis=1)

    w_prior = np.clip(prior.lengths - min_steps, 0, None).sum()
    w_clips = max(1, np.clip(clips.lengths - min_steps, 0, None).sum())
    rep = max(1, round(share / (1 - share) * w_prior / w_clips))
    states = np.concatenate([pad(prior.states), np.tile(pad(clips.states), (rep, 1, 1))])
    cond = np.concatenate([pad(prior.conditionings), np.tile(pad(clips.conditionings), (rep, 1, 1))])
    lengths = np.concatenate([prior.lengths, np.tile(clips.lengths, rep)])
    return Dataset(states, lengths, cond), rep


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prior", required=True, help="run directory (or checkpoint) trained on the gait library")
    p.add_argument("--data", required=True, help="clips NPZ in the gait layout")
    p.add_argument("--out", required=True, help="run directory of the fine-tuned model")
    p.add_argument("--share", type=float, default=0.5, help="fraction of training windows from the clips")
    p.add_argument("--ease-in", type=float, default=EXTERNAL_RECIPE["ease_in"])
    p.add_argument("--chain", type=int, default=EXTERNAL_RECIPE["chain"], help="windows chained per sample")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--time-budget", type=float, default=480.0)
    args = p.parse_args()
    if not 0 < args.share < 1:
        raise SystemExit(f"--share: expected a fraction in (0, 1), got {args.share}")
    enable_compilation_cache()
    prior_run = Path(args.prior)
    prior_ckpt = prior_run / "last" if (prior_run / "last").is_dir() else prior_run
    cfg = config_from_checkpoint(prior_ckpt)
    clips = load_dataset(args.data)
    window = cfg.horizon * args.chain + 1
    mixed, rep = mix(load_dataset(bundled_dataset()), clips, args.share, window)
    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"--out {out}: exists; choose a new directory")
    shutil.copytree(prior_ckpt, out / "last")  # resumed from here: weights, optimiser, normaliser
    mixed_path = save_dataset(out / "mix.npz", mixed.states, mixed.conditionings, None, mixed.lengths)
    n_prior = mixed.num_episodes - rep * clips.num_episodes
    print(f"{args.data}: {clips.num_episodes} clips x {rep}, {n_prior} gait-library episodes -> {mixed_path}")
    cfg = config_from_checkpoint(
        prior_ckpt,
        **{**EXTERNAL_RECIPE, "ease_in": args.ease_in, "chain": args.chain},
        data=str(mixed_path),
        val_fraction=0.0,
        time_budget_s=args.time_budget,
        lr=args.lr,
        save_dir=str(out),
    )
    result = train(cfg, resume=out / "last", rest_state=gaits.start_state, progress=False)
    print(f"fine-tuned to step {int(result.state.step)}; checkpoints in {out} ({', '.join(result.saved)})")


if __name__ == "__main__":
    main()
