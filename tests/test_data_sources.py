"""Demonstration sources (dynaflow.data.sources): the gait library, kinematic demonstrations, the bundled
dataset, and the `dynaflow data` commands."""

from __future__ import annotations

import numpy as np
import pytest

from dynaflow.data import bundled_dataset, load_dataset, make_dataset
from dynaflow.data.sources.gaits import GAITS, SPECS, make_gait_dataset
from dynaflow.data.sources.kinematic import kinematic_from_gaits
from dynaflow.physics import replay_in_mujoco, upright


@pytest.fixture(scope="module")
def gait_data(rollout):
    return make_gait_dataset(rollout, episodes=10, seconds=3.0, seed=3)


def circular_distance(a, b):
    d = (np.asarray(a) - np.asarray(b)) % 1.0
    return np.minimum(d, 1.0 - d)


def test_gait_library_schema_validity_and_determinism(gait_data, rollout):
    arrays, summary = gait_data
    ds = make_dataset(**arrays)  # the NPZ schema, validated
    assert ds.states.shape == (10, 151, 37) and ds.actions.shape == (10, 151, 12) and ds.cond_dim == 7
    assert summary["kept"] + sum(g["dropped"] for g in summary["gaits"].values()) == 10
    onehot = ds.conditionings[:, 0, 3:]
    assert set(onehot.sum(1)) <= {0.0, 1.0} and onehot.sum(0).tolist() == [2, 2, 2, 2]  # + 2 standing
    assert ds.states[:, :, 2].min() > 0.15 and upright(ds.states).min() > 0.8
    again, _ = make_gait_dataset(rollout, episodes=10, seconds=3.0, seed=3)
    for key in arrays:
        np.testing.assert_array_equal(arrays[key], again[key])


def test_gaits_track_commands_with_distinct_contact_patterns(gait_data):
    _, summary = gait_data
    for gait in GAITS:
        r = summary["gaits"][gait]
        assert r["kept"] == 2
        assert max(r["tracking_error_vx_vy_yaw"][:2]) < 0.1, (gait, r)
        assert circular_distance(r["phase_offsets_FL_FR_RL_RR"], SPECS[gait].offsets).max() < 0.15, (gait, r)


def test_replaying_the_actions_reproduces_the_states(gait_data, rollout):
    from dynaflow.data.sources.gaits import simulate_episode, start_state

    # the simulation itself (float64): replay_in_mujoco reproduces it exactly
    X, U, _ = simulate_episode(rollout, "trot", np.array([0.4, 0.1, 0.3]), 100, start_state(rollout))
    np.testing.assert_allclose(replay_in_mujoco(rollout, X[0], U), X, atol=1e-12)
    # the stored episodes (float32): the same up to the rounding of x0 and u
    arrays, _ = gait_data
    for i in range(3):
        Xs = arrays["states"][i].astype(np.float64)
        Xr = replay_in_mujoco(rollout, Xs[0], arrays["actions"][i, :-1].astype(np.float64))
        np.testing.assert_allclose(Xr[:, :19], Xs[:, :19], atol=2e-4)
        np.testing.assert_allclose(Xr[:, 19:], Xs[:, 19:], atol=2e-2)


def test_kinematic_demonstrations(gait_data):
    arrays, _ = gait_data
    K = kinematic_from_gaits(arrays["states"], arrays["conditionings"])
    ds = make_dataset(K, conditionings=arrays["conditionings"])
    assert ds.actions is None and K.shape == arrays["states"].shape
    np.testing.assert_allclose(K[..., 7:19], arrays["states"][..., 7:19], atol=1e-6)  # joints as simulated
    assert np.ptp(K[..., 2], axis=1).max() < 1e-6 and np.abs(K[..., 4:6]).max() < 1e-6  # glide, yaw only
    i = int(np.argmax(np.abs(arrays["conditionings"][:, 0, 0])))  # the fastest forward command
    vx = arrays["conditionings"][i, 0, 0]
    heading = K[i, -1, :2] - K[i, 0, :2]
    assert np.linalg.norm(heading) == pytest.approx(abs(vx) * 3.0, rel=0.2)
    fast = kinematic_from_gaits(arrays["states"], arrays["conditionings"], time_scale=1.5)
    np.testing.assert_allclose(fast[:, 2, 7:19], arrays["states"][:, 3, 7:19], atol=1e-6)


def test_bundled_dataset_is_small_complete_and_reproducible(rollout):
    path = bundled_dataset()
    assert path.stat().st_size <= 5 * 2**20
    ds = load_dataset(path)
    assert ds.states.shape == (100, 201, 37) and ds.actions is not None and ds.cond_dim == 7
    onehot = ds.conditionings[:, 0, 3:]
    assert onehot.sum(0).tolist() == [20, 20, 20, 20] and int((onehot.sum(1) == 0).sum()) == 20
    arrays, _ = make_gait_dataset(rollout, episodes=100, seconds=4.0, seed=0)  # the documented command
    np.testing.assert_allclose(arrays["states"], ds.states, atol=1e-4)
    np.testing.assert_array_equal(arrays["conditionings"], ds.conditionings)


def test_data_commands(tmp_path, capsys):
    from dynaflow.cli import main

    out = tmp_path / "g.npz"
    assert (
        main(
            ["data", "gaits", "--out", str(out), "--episodes", "5", "--seconds", "2", "--gaits", "trot,pronk"]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "trot" in text and "pronk" in text and "pace" not in text
    assert load_dataset(out).num_episodes == 5
    assert main(["data", "kinematic", "--source", str(out), "--out", str(tmp_path / "k.npz")]) == 0
    assert load_dataset(tmp_path / "k.npz").actions is None
    assert main(["data", "gaits", "--out", str(out), "--gaits", "trot,gallop"]) == 2
    assert "--gaits: expected some of trot,pace,bound,pronk,stand, got trot,gallop" in capsys.readouterr().err
    # a command never writes over its input
    assert main(["data", "kinematic", "--source", str(out), "--out", str(out)]) == 2
    assert "would overwrite an input of this command" in capsys.readouterr().err
    assert load_dataset(out).actions is not None


def test_train_accepts_gait_and_kinematic_sources(small_config, rollout, tmp_path, gait_data):
    from dynaflow.data import save_dataset
    from dynaflow.train import train

    arrays, _ = gait_data
    sources = {
        "gaits": save_dataset(tmp_path / "g.npz", **arrays),
        "kinematic": save_dataset(
            tmp_path / "k.npz",
            kinematic_from_gaits(arrays["states"], arrays["conditionings"]),
            conditionings=arrays["conditionings"],
        ),
    }
    for name, path in sources.items():
        cfg = small_config(
            data=str(path), save_dir=str(tmp_path / name), max_steps=2, epochs=1, val_windows=16
        )
        result = train(cfg, rollout=rollout, progress=False)
        assert int(result.state.step) == 2 and np.isfinite(result.history[-1]["val_loss"]), name
