"""Shared fixtures: one rollout object (and so one set of compiled functions) for the session."""

from __future__ import annotations

import pytest

from dynaflow.cli import enable_compilation_cache

# The CLI's persistent compilation cache: a second test run on the same machine skips most compiles.
enable_compilation_cache()


@pytest.fixture(scope="session")
def rollout():
    from dynaflow import create_go2_rollout

    return create_go2_rollout()


@pytest.fixture(scope="session")
def rollout_remat():
    """remat=True, used for the float64 gradient checks (so remat is covered too)."""
    from dynaflow import create_go2_rollout

    return create_go2_rollout(remat=True)


# ---- learning core: one small synthetic dataset and one trained run shared by all tests ----

SMALL_MODEL = dict(d_model=64, n_heads=4, depth=2, dropout=0.0)
TRAIN_STEPS = 600
GAITS4 = ("trot", "pace", "bound", "pronk")


@pytest.fixture(scope="session")
def synthetic_npz(tmp_path_factory, rollout):
    from dynaflow.data import save_dataset
    from dynaflow.demos.synthetic import synthetic_demos

    path = tmp_path_factory.mktemp("data") / "synthetic.npz"
    save_dataset(path, **synthetic_demos(rollout, episodes=24, steps=60, seed=0))
    return path


@pytest.fixture(scope="session")
def small_config(synthetic_npz, tmp_path_factory):
    """A factory of small, fast training configs on the synthetic dataset."""
    from dynaflow.train import TrainConfig

    def make(**overrides):
        base = dict(
            data=str(synthetic_npz),
            batch=16,
            horizon=8,
            lr=3e-3,
            ema_decay=0.9,
            stride=1,
            steps_per_epoch=50,
            val_windows=64,
            save_interval=4,
            log_every=10,
            save_dir=str(tmp_path_factory.mktemp("run")),
            **SMALL_MODEL,
        )
        base.update(overrides)
        return TrainConfig(**base)

    return make


@pytest.fixture(scope="session")
def trained_run(small_config, rollout):
    """TRAIN_STEPS updates of the small model; its run directory holds last / best / epoch_* checkpoints."""
    from dynaflow.train import train

    cfg = small_config(epochs=TRAIN_STEPS // 50)
    return train(cfg, rollout=rollout, progress=False)


@pytest.fixture(scope="session")
def smoke_ppo():
    """Smoke-sized Brax PPO settings: 64 environments, ~100k steps, 64x64 networks."""
    from dynaflow.demos.teacher import PPOConfig

    return PPOConfig(
        num_timesteps=100_000,
        num_envs=64,
        episode_length=200,
        unroll_length=10,
        batch_size=64,
        num_minibatches=4,
        num_updates_per_batch=2,
        num_evals=2,
        num_eval_envs=64,
        policy_hidden=(64, 64),
        value_hidden=(64, 64),
    )


@pytest.fixture(scope="session")
def teacher_run(tmp_path_factory, smoke_ppo):
    """A smoke-sized PPO teacher with the four gaits."""
    from dynaflow.demos.teacher import default_config, train_teacher

    run_dir = tmp_path_factory.mktemp("teacher") / "smoke"
    return train_teacher(run_dir, default_config(gaits=GAITS4), smoke_ppo, verbose=False)
