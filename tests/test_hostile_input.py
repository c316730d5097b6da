"""Hostile and clumsy input, through the real command line: bad flag values, data files and numbers. Every
error is one line naming the flag, file or key (no traceback), the exit code is not 0, and no file on disk
changes. Property-based where the input space is large (Hypothesis draws flag values and NPZ contents); the
cases a user actually met are listed one by one. Runs, outputs and checkpoints: ``test_hostile_runs.py``.

Nothing here compiles a training step."""

from __future__ import annotations

import typing
import zipfile

import numpy as np
import pytest
from hostile import FAST, assert_one_line, run_cli, snapshot
from hypothesis import given
from hypothesis import strategies as st

from dynaflow.config import leaf_fields

# --------------------------------------------------------------------------------------------
# Flags: every train flag's invalid values, drawn from the config's own checks


def _invalid_values(leaf) -> st.SearchStrategy[str]:
    base = typing.get_args(leaf.type) or (leaf.type,)
    kind = [t for t in base if t is not type(None)][0]
    c = leaf.check
    text = st.sampled_from(["abc", "", "1,2", "--", "0x1g"])
    if kind is int:
        low = c.get("ge", c.get("gt", -(2**31)) + (1 if "gt" in c else 0))
        bad = [
            st.integers(max_value=low - 1, min_value=low - 1000).map(str),
            st.sampled_from(["1.5", "nan", "inf"]),
            text,
        ]
        if "lt" in c:
            bad.append(st.integers(min_value=c["lt"], max_value=c["lt"] + 10).map(str))
        return st.one_of(bad)
    if kind is float:
        bad = [st.sampled_from(["nan", "inf", "-inf", "1e999"]), text]
        if "gt" in c:
            bad.append(st.floats(max_value=c["gt"], min_value=c["gt"] - 1e6, allow_nan=False).map(repr))
        if "ge" in c:
            bad.append(
                st.floats(max_value=c["ge"], min_value=c["ge"] - 1e6, allow_nan=False, exclude_max=True).map(
                    repr
                )
            )
        if "lt" in c:
            bad.append(st.floats(min_value=c["lt"], max_value=c["lt"] + 1e6, allow_nan=False).map(repr))
        return st.one_of(bad)
    if "choices" in c:
        return st.text(min_size=1, max_size=8).filter(
            lambda s: s not in c["choices"] and not s.startswith("-")
        )
    if kind is dict:  # --weights
        return st.sampled_from(
            [
                "joints=2",
                "joint_pos",
                "joint_pos=abc",
                "joint_pos=-1",
                "joint_pos=nan",
                "base_pos=0,base_quat=0,joint_pos=0,base_linvel=0,base_angvel=0,joint_vel=0",
            ]
        )
    return st.nothing()


CHECKED = [
    (name, leaf) for name, leaf in leaf_fields().items() if leaf.flag and (leaf.check or name == "weights")
]


@FAST
@given(data=st.data())
def test_every_bad_train_flag_value_is_one_line_and_writes_nothing(data, gait_npz, tmp_path_factory, capsys):
    name, leaf = data.draw(st.sampled_from(CHECKED), label="flag")
    value = data.draw(_invalid_values(leaf), label="value")
    tmp = tmp_path_factory.mktemp("flags")
    before = snapshot(tmp, gait_npz)
    code, err = run_cli(
        capsys, "train", "--data", gait_npz, "--save-dir", tmp / "run", f"{leaf.flag}={value}"
    )
    assert_one_line(code, err, leaf.flag)
    assert snapshot(tmp, gait_npz) == before and not (tmp / "run").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--n-heads", "0"], "--n-heads: expected an integer >= 1, got 0"),
        (["--d-model", "0"], "--d-model: expected an integer >= 1, got 0"),
        (["--n-heads", "-1"], "--n-heads: expected an integer >= 1, got -1"),
        (["--d-model", "30", "--n-heads", "4"], "--n-heads: 4 does not divide d_model (30)"),
        (["--log-every", "0"], "--log-every: expected an integer >= 1, got 0"),
        (["--lr", "inf"], "--lr: expected a finite number, got inf"),
        (["--steps-per-epoch", "-1"], "--steps-per-epoch: expected an integer >= 1, got -1"),
        (["--val-windows", "-1"], "--val-windows: expected an integer >= 0, got -1"),
        (["--max-steps", "0"], "--max-steps: expected an integer >= 1, got 0"),
        (["--epochs", "abc"], "argument --epochs: expected an integer, got 'abc'"),
        (["--method", "ppo"], "--method"),
        (["--weights", "joints=2"], "--weights: unknown state group 'joints'"),
    ],
)
def test_bad_train_flags_named(flags, message, gait_npz, tmp_path, capsys):
    code, err = run_cli(capsys, "train", "--data", gait_npz, "--save-dir", tmp_path / "run", *flags)
    assert_one_line(code, err, message)
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------------------------
# Data files


def _arrays():
    shapes = st.tuples(st.integers(0, 3), st.integers(0, 6), st.sampled_from([1, 4, 7, 12, 36, 37, 38]))
    values = st.sampled_from([0.0, 1.0, np.nan, np.inf, 1e39, -1e300, 0.5])

    def array(shape_dtype):
        shape, dtype, fill = shape_dtype
        a = np.full(shape, fill, dtype=np.float64)
        if a.ndim == 3 and a.shape[-1] >= 7:
            a[..., 3] = 1.0 if np.isfinite(fill) and fill != 1e39 else fill
        return a.astype(dtype) if dtype != "bool" else a > 0

    one = st.tuples(
        st.one_of(shapes, st.tuples(st.integers(0, 4)), st.tuples(st.integers(1, 3), st.integers(1, 3))),
        st.sampled_from([np.float64, np.float32, np.int64, "bool"]),
        values,
    ).map(array)
    keys = st.sampled_from(["states", "conditionings", "actions", "episode_lengths", "junk"])
    return st.dictionaries(keys, one, max_size=4)


@FAST
@given(arrays=_arrays())
def test_any_npz_is_loaded_valid_or_refused_in_one_line(arrays, tmp_path_factory):
    from dynaflow.data import DatasetError, load_dataset

    path = tmp_path_factory.mktemp("npz") / "d.npz"
    with np.errstate(all="ignore"):
        np.savez(path, **arrays)
    before = snapshot(path)
    try:
        ds = load_dataset(path)
    except DatasetError as e:
        assert "\n" not in str(e) and str(path) in str(e)
    else:
        assert ds.states.dtype == np.float32 and ds.states.shape[-1] == 37
        valid = np.arange(ds.states.shape[1])[None] < ds.lengths[:, None]
        assert np.isfinite(ds.states[valid]).all()
    assert snapshot(path) == before


def test_unusable_data_paths_are_named(tmp_path, capsys, monkeypatch, gait_npz):
    garbage = tmp_path / "garbage.npz"
    with zipfile.ZipFile(garbage, "w") as z:
        z.writestr("states.npy", b"no array here")
    pickled = tmp_path / "pickled.npz"
    pickled.write_bytes(b"\x80\x04\x95\x00")
    cases = [
        (tmp_path, "is a directory"),
        (garbage, "member 'states' is not a NumPy array"),
        (pickled, "not a valid .npz file (not a zip archive)"),
        (tmp_path / "missing.npz", "no such dataset file"),
    ]
    for path, message in cases:
        code, err = run_cli(capsys, "train", "--data", path, "--save-dir", tmp_path / "run")
        assert_one_line(code, err, str(path), message)
        assert "pickle.load" not in err
    real_open = open

    def denied(p, *a, **k):
        if str(p) == str(gait_npz):
            raise PermissionError(13, "Permission denied", str(p))
        return real_open(p, *a, **k)

    monkeypatch.setattr("builtins.open", denied)
    code, err = run_cli(capsys, "train", "--data", gait_npz, "--save-dir", tmp_path / "run")
    assert_one_line(code, err, str(gait_npz), "permission denied")
    assert not (tmp_path / "run").exists()


def test_render_npz_problems_are_named(tmp_path, capsys):
    trunc = tmp_path / "t.npz"
    np.savez(trunc, states=np.zeros((5, 37)))
    trunc.write_bytes(trunc.read_bytes()[:40])
    cases = [
        (trunc, "not a valid .npz file"),
        (tmp_path, "is a directory"),
    ]
    bad = tmp_path / "bad.npz"
    np.savez(bad, states=np.full((5, 36), 1.0))
    cases.append((bad, "key 'states': expected a 2-D array"))
    for path, message in cases:
        code, err = run_cli(capsys, "render", "--npz", path, "--out", tmp_path / "x.gif")
        assert_one_line(code, err, str(path), message)
    assert not (tmp_path / "x.gif").exists()


# --------------------------------------------------------------------------------------------
# Sampling and generating from bad numbers


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sample", "--x0", " ".join(["0"] * 37), "--cond", "0 0 0 1 0 0 0"], "zero base quaternion"),
        (
            ["sample", "--x0", " ".join(["nan"] * 37), "--cond", "0 0 0 1 0 0 0"],
            "--x0: expected finite numbers",
        ),
        (["sample", "--x0", "home", "--cond", "nan 0 0 1 0 0 0"], "--cond: expected finite numbers"),
        (["sample", "--x0", "home", "--cond", "1e39 0 0 1 0 0 0"], "--cond: expected finite numbers"),
        (["generate", "--cond", "nan 0 0 1 0 0 0", "--seconds", "0.2"], "--cond: expected finite numbers"),
        (["generate", "--closed-loop", "--push=--5N@1s", "--seconds", "0.2"], "--push: '--5N@1s'"),
        (["generate", "--x0", " ".join(["0"] * 37), "--cond", "0 0 0 1 0 0 0", "--seconds", "0.2"], "zero"),
    ],
)
def test_bad_numbers_are_refused(argv, message, trained_run, tmp_path, capsys):
    out = tmp_path / "o.npz"
    code, err = run_cli(capsys, *argv[:1], "--checkpoint", trained_run.run_dir, *argv[1:], "--out", out)
    assert_one_line(code, err, message)
    assert not out.exists()
