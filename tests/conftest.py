"""Shared fixtures. Compiles are most of the suite's time on a CPU, so the tests share them:

* one rollout object (and so one set of compiled physics functions) for the session;
* **one training configuration** (:data:`SMALL`: model size, horizon, batch, dropout) on **one dataset** (the
  bundled gait data), which is also what ``dynaflow demo``'s reduced mode trains. A train step's learning
  rate, schedule and run length are arguments of the compiled step, so every test that trains (the trained
  run, resume, the non-finite guard, the demo, the baselines, the CLI) reuses one compiled step per method;
* JAX's persistent compilation cache (``$DYNAFLOW_JAX_CACHE``), so a second run of the suite compiles little.

See ``tests/README.md`` for fast subsets while developing.
"""

from __future__ import annotations

import pytest

from dynaflow.runtime import enable_compilation_cache

enable_compilation_cache()

#: The one small training configuration of the suite (the demo's reduced mode trains the same model).
SMALL = dict(horizon=8, batch=16, d_model=64, n_heads=4, depth=1, dropout=0.0)
TRAIN_STEPS = 500
GAITS4 = ("trot", "pace", "bound", "pronk")


@pytest.fixture(scope="session")
def rollout():
    from dynaflow import create_go2_rollout

    return create_go2_rollout()


@pytest.fixture(scope="session")
def rollout_remat():
    """remat=True, used for the float64 gradient checks (so remat is covered too)."""
    from dynaflow import create_go2_rollout

    return create_go2_rollout(remat=True)


@pytest.fixture(scope="session")
def gait_npz():
    """The bundled gait dataset (100 episodes x 4 s, 7-D conditioning, recorded actions)."""
    from dynaflow.data import bundled_dataset

    return bundled_dataset()


@pytest.fixture(scope="session")
def trot_npz(gait_npz, tmp_path_factory):
    """The bundled data's trot episodes (20 x 4 s): one gait family, learnable in a few hundred updates."""
    from dynaflow.data import load_dataset, save_dataset

    ds = load_dataset(gait_npz)
    trot = ds.conditionings[:, 0, 3] > 0.5
    path = tmp_path_factory.mktemp("data") / "trot.npz"
    save_dataset(path, ds.states[trot], conditionings=ds.conditionings[trot], actions=ds.actions[trot])
    return path


@pytest.fixture(scope="session")
def synthetic_npz(tmp_path_factory, rollout):
    """A small synthetic dataset (4-D conditioning) for the tests of data handling."""
    from dynaflow.data import save_dataset
    from dynaflow.data.sources.synthetic import synthetic_demos

    path = tmp_path_factory.mktemp("data") / "synthetic.npz"
    save_dataset(path, **synthetic_demos(rollout, episodes=12, steps=40, seed=0))
    return path


@pytest.fixture(scope="session")
def small_config(gait_npz, tmp_path_factory):
    """A factory of :data:`SMALL` training configs (flat overrides) on the bundled data, each writing to a
    fresh directory unless ``save_dir`` is given."""
    from dynaflow.config import TrainConfig

    def make(**overrides):
        base = dict(
            data=str(gait_npz),
            lr=3e-3,
            ema_decay=0.9,
            steps_per_epoch=50,
            val_windows=32,
            save_interval=2,
            log_every=10,
            save_dir=str(tmp_path_factory.mktemp("run")),
            **SMALL,
        )
        base.update(overrides)
        return TrainConfig.from_flat(**base)

    return make


@pytest.fixture(scope="session")
def trained_run(small_config, trot_npz, rollout):
    """TRAIN_STEPS updates of the small model on the trot episodes; its run directory holds last / best /
    epoch_* checkpoints."""
    from dynaflow.train import train

    cfg = small_config(data=str(trot_npz), epochs=TRAIN_STEPS // 50)
    return train(cfg, rollout=rollout, progress=False)


@pytest.fixture(scope="session")
def policy(trained_run, rollout):
    """The trained run's best checkpoint as a policy (sharing the session's rollout)."""
    from dynaflow.policy import DynaFlowPolicy

    return DynaFlowPolicy.from_checkpoint(trained_run.run_dir / "best", rollout=rollout)


@pytest.fixture(scope="session")
def smoke_ppo():
    """Smoke-sized Brax PPO settings: 64 environments, ~100k steps, 64x64 networks."""
    from dynaflow.data.sources.teacher import PPOConfig

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
    from dynaflow.data.sources.teacher import default_config, train_teacher

    run_dir = tmp_path_factory.mktemp("teacher") / "smoke"
    return train_teacher(run_dir, default_config(gaits=GAITS4), smoke_ppo, verbose=False)
