"""``DynaFlowPolicy``: a trained checkpoint, its rollout and its sampler behind one object."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from dynaflow.checkpoint import load_checkpoint, resolve_checkpoint
from dynaflow.data import Normalizer
from dynaflow.flow import sample_trajectory
from dynaflow.model import ActionPredictor, model_kwargs
from dynaflow.physics import Rollout, create_go2_rollout


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

    @classmethod
    def from_checkpoint(cls, path: str | Path, use_ema: bool = True, rollout: Rollout | None = None):
        """Load ``path`` (a checkpoint directory, or a run directory: its ``best``, else ``last``)."""
        ckpt = load_checkpoint(resolve_checkpoint(path, prefer=("best", "last")))
        cfg = ckpt["config"]
        model = ActionPredictor(**model_kwargs(cfg["model"]))
        if rollout is None:
            r = cfg.get("rollout", {})
            rollout = create_go2_rollout(
                ctrl_dt=r.get("ctrl_dt", 0.02),
                n_substeps=r.get("n_substeps", 4),
                action_scale=r.get("action_scale", 0.5),
                default_pose=r.get("default_pose"),
            )
        params = ckpt["ema_params"] if use_ema else ckpt["params"]
        return cls(
            model,
            jax.device_put(params),
            rollout,
            int(cfg["model"].get("horizon", 16)),
            ckpt["normalizer"],
            float(cfg.get("sigma", 1.0)),
            ckpt["cond_dim"],
            cfg,
        )

    @property
    def method(self) -> str:
        """``dynaflow`` or the baseline this checkpoint was trained as."""
        return self.model.method

    def sample(
        self,
        x0,
        cond=None,
        rng: jax.Array | int | None = None,
        ode_steps: int = 1,
        horizon: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(X, U) for initial states ``x0`` ((B, 37), (B, 1, 37) or (37,)) and conditioning ``cond``."""
        if (cond is None) != (self.cond_dim is None):
            raise ValueError(
                f"cond: this policy was trained with cond_dim={self.cond_dim}; "
                f"{'pass cond' if cond is None else 'it takes no cond'}"
            )
        if isinstance(rng, int) or rng is None:
            rng = jax.random.PRNGKey(0 if rng is None else rng)
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
        )
        return np.asarray(X), None if U is None else np.asarray(U)

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
