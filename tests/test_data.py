"""The demonstration NPZ schema: validation messages, episode split, windows, normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from dynaflow.data import (
    DatasetError,
    Normalizer,
    gather_windows,
    load_dataset,
    relative_xy,
    save_dataset,
    split_episodes,
    window_index,
)


def states(n=3, t=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, t, 37)).astype(np.float32)
    x[..., 3:7] = [1.0, 0.0, 0.0, 0.0]
    return x


def write(tmp_path, name="d.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_round_trip_and_optional_keys(tmp_path):
    X = states()
    path = save_dataset(
        tmp_path / "ok.npz", X, conditionings=np.ones((3, 12, 5)), actions=np.zeros((3, 12, 12))
    )
    ds = load_dataset(path)
    np.testing.assert_array_equal(ds.states, X)
    assert ds.cond_dim == 5 and ds.actions.shape == (3, 12, 12) and list(ds.lengths) == [12, 12, 12]


@pytest.mark.parametrize(
    "arrays, message",
    [
        (
            dict(actions=np.zeros((3, 12, 12))),
            r"key 'states': missing \(required, shape \(N, T, 37\)\); found actions",
        ),
        (dict(states=np.zeros((12, 37))), r"key 'states': expected shape \(N, T, 37\), got \(12, 37\)"),
        (dict(states=np.zeros((3, 12, 36))), r"key 'states': expected shape \(N, T, 37\), got \(3, 12, 36\)"),
        (dict(states="S", conditionings=np.zeros((3, 11, 2))), r"key 'conditionings': expected N, T = 3, 12"),
        (
            dict(states="S", conditionings=np.zeros((3, 12))),
            r"key 'conditionings': expected shape \(N, T, C\)",
        ),
        (
            dict(states="S", actions=np.zeros((2, 12, 12))),
            r"key 'actions': expected N, T = 3, 12 .* got \(2, 12, 12\)",
        ),
        (dict(states="S", actions=np.zeros((3, 12, 8))), r"key 'actions': expected shape \(N, T, 12\)"),
        (dict(states="NAN"), r"key 'states': contains NaN or inf \(first at episode 1, step 4, dim 20\)"),
        (dict(states="QUAT"), r"key 'states': base quaternion .* norm 2.000 at episode 2, step 3"),
        (
            dict(states="S", episode_lengths=np.array([12, 13, 5])),
            r"key 'episode_lengths': episode 1 has length 13",
        ),
        (
            dict(states="S", episode_lengths=np.array([12, 5])),
            r"key 'episode_lengths': expected shape \(3,\)",
        ),
        (dict(states=np.array([["a"] * 37] * 2)[None]), r"key 'states': expected a numeric array"),
    ],
)
def test_bad_files_are_rejected_with_a_named_message(tmp_path, arrays, message):
    good = states()
    if isinstance(arrays.get("states"), str):
        kind = arrays["states"]
        if kind == "NAN":
            good[1, 4, 20] = np.nan
        elif kind == "QUAT":
            good[2, 3, 3:7] = [2.0, 0, 0, 0]
        arrays = {**arrays, "states": good}
    path = write(tmp_path, **arrays)
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_padding_after_episode_end_is_not_validated(tmp_path):
    X = states()
    X[0, 8:] = np.nan  # padding beyond the episode's length
    ds = load_dataset(write(tmp_path, states=X, episode_lengths=np.array([8, 12, 12])))
    assert list(ds.lengths) == [8, 12, 12]
    with pytest.raises(DatasetError, match=r"episode 0 has 8 states, fewer than horizon \+ 1 = 9"):
        window_index(ds, np.arange(3), horizon=8)


def test_unreadable_files(tmp_path, monkeypatch):
    with pytest.raises(DatasetError, match="no such dataset file"):
        load_dataset(tmp_path / "missing.npz")
    with pytest.raises(DatasetError, match=r"is a directory, expected a dataset file \(.npz file\)"):
        load_dataset(tmp_path)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(DatasetError, match=r"not a valid .npz file \(not a zip archive\)"):
        load_dataset(bad)
    good = save_dataset(tmp_path / "trunc.npz", states())
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="not a valid .npz file"):
        load_dataset(good)
    obj = tmp_path / "obj.npz"
    np.savez(obj, states=np.array([states()[0], None], dtype=object))
    with pytest.raises(DatasetError, match="key 'states' holds Python objects") as info:
        load_dataset(obj)
    assert "pickle.load" not in str(info.value)  # never advice to unpickle
    garbage = tmp_path / "garbage.npz"
    import zipfile

    with zipfile.ZipFile(garbage, "w") as z:
        z.writestr("states.npy", b"this is not an array")
    with pytest.raises(DatasetError, match="member 'states' is not a NumPy array"):
        load_dataset(garbage)
    real_open = open

    def denied(path, *args, **kwargs):
        if str(path) == str(good):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", denied)
    with pytest.raises(DatasetError, match=r"trunc.npz: cannot read the dataset file \(permission denied\)"):
        load_dataset(good)


def test_values_are_checked_as_float32(tmp_path):
    """A finite float64 that overflows float32 is refused like a NaN (training would see inf)."""
    X = states().astype(np.float64)
    X[1, 3, 20] = 1e39
    np.savez(tmp_path / "big.npz", states=X)
    with pytest.raises(
        DatasetError, match=r"key 'states': value 1e\+39 at episode 1, step 3, dim 20 does not fit"
    ):
        load_dataset(tmp_path / "big.npz")
    c = np.zeros(X.shape[:2] + (2,))
    c[0, 0, 1] = 1e300
    np.savez(tmp_path / "bigc.npz", states=states(), conditionings=c)
    with pytest.raises(DatasetError, match=r"key 'conditionings': value 1e\+300 at episode 0, step 0, dim 1"):
        load_dataset(tmp_path / "bigc.npz")


def test_split_is_by_episode_and_windows_stay_inside_episodes(tmp_path):
    ds = load_dataset(save_dataset(tmp_path / "d.npz", states(n=10, t=20)))
    train, val = split_episodes(ds, 0.2, seed=3)
    assert len(val) == 2 and not set(train) & set(val) and sorted([*train, *val]) == list(range(10))
    assert np.array_equal(split_episodes(ds, 0.2, seed=3)[1], val)  # deterministic
    idx = window_index(ds, train, horizon=5, stride=2)
    assert set(idx[:, 0]) == set(train) and idx[:, 1].max() + 5 < 20
    X, c = gather_windows(ds, idx[:3], 5)
    assert X.shape == (3, 6, 37) and c is None
    e, s = idx[1]
    np.testing.assert_array_equal(X[1], ds.states[e, s : s + 6])


def test_window_conditioning_is_the_first_step(tmp_path):
    cond = np.arange(3 * 12, dtype=np.float32).reshape(3, 12, 1)
    ds = load_dataset(save_dataset(tmp_path / "c.npz", states(), conditionings=cond))
    idx = np.array([[1, 4]])
    _, c = gather_windows(ds, idx, 3)
    assert c[0, 0] == cond[1, 4, 0]


def test_normalizer_zscores_all_but_the_quaternion_with_relative_xy():
    X = states(n=5, t=9)[:, :]
    X[..., 0] += 100.0  # a far-away start is the same motion
    norm = Normalizer.fit(X)
    assert np.all(norm.mean[3:7] == 0) and np.all(norm.std[3:7] == 1)
    Z = (relative_xy(X) - norm.mean) / norm.std
    rest = np.r_[0:3, 7:37]
    np.testing.assert_allclose(Z.reshape(-1, 37)[:, rest].mean(0), 0, atol=1e-4)
    assert abs(norm.mean[0]) < 5  # positions are relative to the window start, not absolute
    assert Normalizer.from_dict(norm.to_dict()).std.tolist() == norm.std.tolist()


def test_physical_std_floors_per_state_group():
    """``--std-floor physical``: a dimension the data holds constant (a kinematic clip's vertical velocity)
    gets its group's physical floor instead of 0.01; dimensions that move keep their own std."""
    from dynaflow.config import TrainConfig
    from dynaflow.data.windows import PHYSICAL_FLOORS
    from dynaflow.robots.go2 import STATE_GROUPS

    X = states(n=5, t=9).astype(np.float64)
    X[..., 21] = 0.3  # vertical velocity: constant
    X[..., 25] = np.random.default_rng(0).normal(0, 5.0, X.shape[:2])  # a joint velocity that moves a lot
    uniform, physical = Normalizer.fit(X), Normalizer.fit(X, "physical")
    assert uniform.std[21] == np.float32(0.01)
    assert physical.std[21] == np.float32(PHYSICAL_FLOORS["base_linvel"])
    assert physical.std[25] == uniform.std[25] > 1.0
    for group, floor in PHYSICAL_FLOORS.items():
        assert np.all(physical.std[STATE_GROUPS[group]] >= np.float32(floor))
    assert np.all(physical.std[3:7] == 1)
    with pytest.raises(ValueError, match=r"std_floor: expected one of .*, got 'tight'"):
        Normalizer.fit(X, "tight")
    assert TrainConfig.from_flat(std_floor="physical").std_floor == "physical"
