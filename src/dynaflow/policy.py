"""``DynaFlowPolicy``: a trained checkpoint, its rollout and its sampler behind one object."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from dynaflow.checkpoint import load_checkpoint, resolve_checkpoint
from dynaflow.data import Dataset, Normalizer, split_episodes
from dynaflow.methods import model_from_config
from dynaflow.model import ActionPredictor
from dynaflow.physics import Rollout
from dynaflow.sampling import sample_trajectory


@dataclass
class DynaFlowPolicy:
    """Sample physically consistent Go2 motions from a checkpoint, in physical units.

    ``policy = DynaFlowPolicy.from_checkpoint("checkpoints/dynaflow/best")``;
    ``X, U = policy.sample(x0, cond)`` gives states ``(B, H+1, 37)`` = Φ(x0, U) and actions ``(B, H, 12)``.
    The normaliser and noise scale travel inside the checkpoint's variables. A baseline checkpoint
    (``dynaflow train --method ...``) loads the same way; its ``U`` is None for ``state-fm`` (states
    only) and the inverse-dynamics actions for ``state-fm-id``, and its X is not a rollout of U unless
    the method is ``dynaflow`` or ``bc``."""

    model: ActionPredictor
    params: dict
    rollout: Rollout
    horizon: int
    normalizer: Normalizer
    sigma: float
    cond_dim: int | None
    config: dict
    path: Path | None = None

    @classmethod
    def from_checkpoint(cls, path: str | Path, use_ema: bool = True, rollout: Rollout | None = None):
        """Load ``path`` (a checkpoint directory, or a run directory: its ``best``, else ``last``)."""
        path = resolve_checkpoint(path, prefer=("best", "last"))
        ckpt = load_checkpoint(path)
        model = model_from_config(ckpt["model_config"])
        if rollout is None:
            rollout = ckpt["train_config"].sim.rollout()
        params = ckpt["ema_params"] if use_ema else ckpt["params"]
        return cls(
            model,
            jax.device_put(params),
            rollout,
            int(ckpt["model_config"]["horizon"]),
            ckpt["normalizer"],
            float(ckpt["sigma"]),
            ckpt["cond_dim"],
            ckpt["config"],
            path,
        )

    @property
    def method(self) -> str:
        """``dynaflow`` or the baseline this checkpoint was trained as."""
        return self.model.method.name

    @property
    def has_actions(self) -> bool:
        """Whether samples come with actions (False for a states-only model such as ``state-fm``)."""
        return self.model.method.has_actions

    @property
    def train_config(self):
        """The :class:`~dynaflow.config.TrainConfig` the checkpoint was trained with."""
        return self.config["train_config"]

    def sample(
        self,
        x0,
        cond=None,
        rng: jax.Array | int | None = None,
        ode_steps: int = 1,
        horizon: int | None = None,
        actions_only: bool = False,
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(X, U) for initial states ``x0`` ((B, 37), (B, 1, 37) or (37,)) and conditioning ``cond``.

        A batch of more than one is padded to the next power of two, at least 8 (one compiled sampler
        serves every batch size up to it); results depend on the padding only through the noise drawn,
        which ``rng`` fixes. ``actions_only``: return ``(None, U)`` without computing what only X needs (a
        closed-loop controller executes U and measures the states; DynaFlow then skips its rollout)."""
        if actions_only and not self.has_actions:
            raise ValueError(f"actions_only: a states-only model ({self.method}) has no actions")
        if (cond is None) != (self.cond_dim is None):
            raise ValueError(
                f"cond: this policy was trained with cond_dim={self.cond_dim}; "
                f"{'pass cond' if cond is None else 'it takes no cond'}"
            )
        if isinstance(rng, int) or rng is None:
            rng = jax.random.PRNGKey(0 if rng is None else rng)
        x0 = np.asarray(x0, np.float32)
        if x0.ndim == 1:
            x0 = x0[None]
        elif x0.ndim == 3 and x0.shape[1] == 1:
            x0 = x0[:, 0]
        n = x0.shape[0]
        pad = _bucket(n) - n
        if pad and x0.ndim == 2:
            x0 = np.concatenate([x0, np.repeat(x0[:1], pad, 0)])
            if cond is not None:
                cond = np.asarray(cond, np.float32)
                if cond.ndim == 2 and cond.shape[0] == n:
                    cond = np.concatenate([cond, np.repeat(cond[:1], pad, 0)])
        X, U = sample_trajectory(
            self.model.apply,
            self.params,
            self.rollout,
            x0,
            horizon=horizon or self.horizon,
            ode_steps=ode_steps,
            cond=cond,
            rng=rng,
            sigma=self.sigma,
            actions_only=actions_only,
        )
        return None if X is None else np.asarray(X)[:n], None if U is None else np.asarray(U)[:n]

    def generate_open_loop(
        self,
        x0,
        cond=None,
        seconds: float = 10.0,
        rng: int = 0,
        ode_steps: int = 1,
        timings: list[float] | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Long-horizon open-loop generation by chaining windows: each window starts at the previous
        window's last generated state. ``x0`` (B, 37); ``cond`` (B, C), or a callable ``t -> (B, C)``
        giving the conditioning at time t (s) for a schedule. Returns states (B, T+1, 37) and actions
        (B, T, 12) (None for a states-only model), T = round(seconds / ctrl_dt) (the last window is cut to
        length). ``timings``, when given, receives the wall time (s) of every sampler call."""
        x = np.atleast_2d(np.asarray(x0, np.float32))
        total = int(round(seconds / self.rollout.ctrl_dt))
        states, actions = [x[:, None]], []
        done, k = 0, 0
        while done < total:
            c = cond(done * self.rollout.ctrl_dt) if callable(cond) else cond
            t0 = time.perf_counter()
            X, U = self.sample(x, c, rng=rng + k, ode_steps=ode_steps)
            if timings is not None:
                timings.append(time.perf_counter() - t0)
            take = min(self.horizon, total - done)
            states.append(X[:, 1 : take + 1])
            if U is not None:
                actions.append(U[:, :take])
            x = X[:, take]
            done += take
            k += 1
        return np.concatenate(states, axis=1), np.concatenate(actions, axis=1) if actions else None


def _bucket(n: int) -> int:
    """The batch size a sampler call is padded to: 1 stays 1 (closed-loop replanning's latency), anything
    else goes to the next power of two, at least 8 (a handful of compiled samplers serve every size)."""
    return 1 if n <= 1 else max(8, 1 << (int(n) - 1).bit_length())


def check_conditioning(policy: DynaFlowPolicy, ds: Dataset) -> None:
    """One-line error when the dataset's conditioning does not fit the checkpoint's."""
    if (ds.cond_dim or None) != policy.cond_dim:
        raise ValueError(
            f"{ds.source}: key 'conditionings': the checkpoint takes cond_dim={policy.cond_dim}, "
            f"the dataset has {ds.cond_dim}"
        )


def held_out_episodes(policy: DynaFlowPolicy, ds: Dataset) -> tuple[np.ndarray, str]:
    """The checkpoint's validation episodes when ``ds`` is its training data, else every episode."""
    train = policy.train_config
    same = False
    try:
        same = train.data is not None and Path(train.data).resolve() == Path(ds.source).resolve()
    except (OSError, TypeError):
        pass
    if same:
        _, val = split_episodes(ds, train.val_fraction, train.seed)
        if len(val):
            return np.asarray(val), "held-out (the checkpoint's validation split)"
    return np.arange(ds.num_episodes), "all episodes of the dataset"
