"""The PPO teacher: a smoke run trains, collects valid NPZ data, and its states are exactly Φ's."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dynaflow.data import make_dataset
from dynaflow.physics import replay_in_mujoco


@pytest.fixture(scope="module")
def collected(teacher_run):
    from dynaflow.data.sources.teacher import collect

    return collect(teacher_run["run_dir"], num_episodes=12, episode_seconds=1.0, seed=1)


def test_smoke_training_learns_and_logs(teacher_run):
    run_dir = teacher_run["run_dir"]
    lines = [json.loads(line) for line in (run_dir / "progress.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines][0] == 0 and lines[-1]["step"] >= 100_000
    for r in lines:
        assert {"reward", "tracking_error", "episode_length"} <= set(r)
    assert lines[-1]["reward"] > lines[0]["reward"]
    assert lines[-1]["episode_length"] > lines[0]["episode_length"]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir())  # Brax checkpoints
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["env"]["gaits"] == ["trot", "pace", "bound", "pronk"]


def test_collection_schema_and_exact_states(collected, rollout):
    arrays, summary = collected
    assert summary["kept"] + summary["dropped"] == 12 and summary["kept"] >= 6
    ds = make_dataset(**arrays)
    assert ds.states.shape[1:] == (51, 37) and ds.cond_dim == 7  # (vx, vy, yaw rate) + 4-gait one-hot
    assert set(np.unique(ds.conditionings[..., 3:].sum(-1))) == {1.0}
    X, U = arrays["states"], arrays["actions"][:, :-1]
    np.testing.assert_allclose(np.asarray(rollout(X[:, 0], U)), X, atol=1e-5)  # the project's Φ, exactly
    Xc = replay_in_mujoco(rollout, X[:, 0], U)
    assert np.abs(Xc[..., :19] - X[..., :19]).max() < 1e-3


def test_restore_loads_the_trained_parameters(teacher_run, smoke_ppo):
    import dataclasses

    import jax

    from dynaflow.data.sources.teacher import default_config, latest_checkpoint, train_teacher

    ckpt = latest_checkpoint(teacher_run["run_dir"])
    ppo = dataclasses.replace(smoke_ppo, num_timesteps=0, num_evals=0)
    env_config = default_config(gaits=("trot", "pace", "bound", "pronk"))
    restored = train_teacher(
        teacher_run["run_dir"].parent / "restored", env_config, ppo, restore=ckpt, verbose=False
    )
    for a, b in zip(
        jax.tree.leaves(restored["params"][1]), jax.tree.leaves(teacher_run["params"][1]), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_teacher_cli_errors(tmp_path, capsys):
    from dynaflow.cli import main

    assert (
        main(["teacher", "collect", "--checkpoint", str(tmp_path), "--output", str(tmp_path / "x.npz")]) == 2
    )
    assert "no teacher checkpoint" in capsys.readouterr().err


def test_train_accepts_teacher_data(collected, small_config, rollout, tmp_path):
    from dynaflow.data import save_dataset
    from dynaflow.train import train

    arrays, _ = collected
    path = save_dataset(tmp_path / "teacher.npz", **arrays)
    cfg = small_config(data=str(path), save_dir=str(tmp_path / "run"), max_steps=2, epochs=1, val_windows=16)
    result = train(cfg, rollout=rollout, progress=False)
    assert int(result.state.step) == 2
