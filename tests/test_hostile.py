"""Hostile and clumsy input, through the real command line: every error is one line naming the flag, file
or key (no traceback), the exit code is not 0, and no file on disk changes. Property-based where the input
space is large (Hypothesis draws flag values, NPZ contents and config.json edits); the cases a user actually
met are listed one by one.

Nothing here compiles a training step except the Ctrl-C and full-disk cases, which reuse the suite's shared
small configuration (see conftest.py)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import typing
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynaflow.cli import main
from dynaflow.config import leaf_fields

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def snapshot(*roots) -> dict[str, str]:
    """Every file under ``roots`` with its content hash (what "no file changed" compares)."""
    out = {}
    for root in roots:
        root = Path(root)
        files = (
            [root]
            if root.is_file()
            else sorted(p for p in root.rglob("*") if p.is_file())
            if root.exists()
            else []
        )
        for p in files:
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_cli(capsys, *argv) -> tuple[int, str]:
    """Exit code and stderr of `dynaflow ARGV` (argparse's own errors included)."""
    try:
        code = main(list(map(str, argv)))
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err.strip()
    return code, err


def assert_one_line(code: int, err: str, *names: str) -> None:
    assert code not in (0, None), err
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "error" in lines[0] or "interrupted" in lines[0], err
    for name in names:
        assert name in lines[0], (name, err)


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


# --------------------------------------------------------------------------------------------
# Outputs: checked before any work, never an input, never a half-written file


def test_unusable_outputs_fail_first(trained_run, tmp_path, capsys, gait_npz):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    ck = trained_run.run_dir / "best"
    before = snapshot(tmp_path, trained_run.run_dir, gait_npz)
    cases = [
        (["train", "--data", gait_npz, "--save-dir", afile], "afile"),
        (["train", "--data", gait_npz, "--save-dir", afile / "sub"], "afile is a file, not a directory"),
        (
            [
                "sample",
                "--checkpoint",
                ck,
                "--x0",
                "home",
                "--cond",
                "0 0 0 1 0 0 0",
                "--out",
                afile / "x.npz",
            ],
            "is a file",
        ),
        (
            ["sample", "--checkpoint", ck, "--x0", "home", "--cond", "0 0 0 1 0 0 0", "--out", tmp_path],
            "expected a .npz file path",
        ),
        (["render", "--npz", gait_npz, "--out", afile / "r.mp4"], "is a file"),
        (
            ["evaluate", "--checkpoint", ck, "--dataset", gait_npz, "--out", afile],
            "exists and is not a directory",
        ),
        (["render", "--npz", gait_npz, "--out", gait_npz], "unsupported video suffix '.npz'"),
        (["data", "kinematic", "--source", gait_npz, "--out", gait_npz], "would overwrite an input"),
        (
            [
                "render",
                "--checkpoint",
                ck,
                "--dataset",
                tmp_path / "g.npz",
                "--out",
                tmp_path / "g.motion.npz.mp4",
            ],
            "no such",
        ),
    ]
    for argv, message in cases:
        code, err = run_cli(capsys, *argv)
        assert_one_line(code, err, message)
    assert snapshot(tmp_path, trained_run.run_dir, gait_npz) == before


def test_render_never_writes_over_its_dataset(trained_run, gait_npz, tmp_path, capsys):
    """`render --checkpoint CK --dataset g.npz --out g.mp4` once overwrote g.npz with the motion."""
    data = tmp_path / "g.npz"
    shutil.copy(gait_npz, data)
    before = snapshot(data)
    code, _ = run_cli(
        capsys,
        "render",
        "--checkpoint",
        trained_run.run_dir,
        "--dataset",
        data,
        "--seconds",
        "0.2",
        "--width",
        "64",
        "--height",
        "48",
        "--fast",
        "--out",
        tmp_path / "g.gif",
    )
    assert code == 0 and snapshot(data) == before
    assert (tmp_path / "g.motion.npz").is_file() and (tmp_path / "g.gif").is_file()


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


# --------------------------------------------------------------------------------------------
# Checkpoints: config.json edits, runs, resume, trust


def _json_values():
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-5, 10**12),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=5),
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
        max_leaves=6,
    )


def _paths(obj, prefix=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))


@FAST
@given(data=st.data())
def test_any_config_json_edit_loads_or_is_one_named_line(data, trained_run, tmp_path_factory):
    from dynaflow.checkpoint import CheckpointError, load_checkpoint

    ck = tmp_path_factory.mktemp("ck") / "c"
    shutil.copytree(trained_run.run_dir / "best", ck)
    cfg = json.loads((ck / "config.json").read_text())
    path = data.draw(st.sampled_from(sorted(_paths(cfg))), label="key")
    value = data.draw(_json_values(), label="value")
    node = cfg
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    (ck / "config.json").write_text(json.dumps(cfg))
    try:
        load_checkpoint(ck)
    except CheckpointError as e:
        assert "\n" not in str(e) and "config.json" in str(e) or ".npz" in str(e), str(e)


def test_an_earlier_run_is_never_replaced_silently(trained_run, gait_npz, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run.run_dir, run)
    before = snapshot(run)
    code, err = run_cli(capsys, "train", "--data", gait_npz, "--save-dir", run, "--epochs", "1")
    assert_one_line(code, err, f"--save-dir {run}: holds an earlier run", "--resume", "--overwrite")
    assert snapshot(run) == before
    code, err = run_cli(capsys, "train", "--resume", run, "--overwrite")
    assert_one_line(code, err, "--overwrite: not with --resume")


def test_resume_writes_to_the_checkpoints_own_run(trained_run, tmp_path, capsys):
    """A config.json naming another save_dir (planted, or a moved run) does not redirect a resume."""
    run = tmp_path / "moved"
    shutil.copytree(trained_run.run_dir, run)
    elsewhere = tmp_path / "elsewhere"
    cfg_path = run / "last" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["train"]["log"]["save_dir"] = str(elsewhere)
    cfg_path.write_text(json.dumps(cfg))
    step = cfg["progress"]["step"]
    epochs = cfg["train"]["epochs"] + 1
    code = main(
        ["train", "--resume", str(run), "--epochs", str(epochs), "--max-steps", str(step + 2), "--quiet"]
    )
    err = capsys.readouterr().err
    assert code == 0 and not elsewhere.exists()
    assert f"into {run}" in err and f"on data {cfg['train']['data']}" in err
    assert json.loads((run / "last" / "config.json").read_text())["progress"]["step"] == step + 2


def test_symlinked_checkpoint_files_are_refused(trained_run, tmp_path, capsys):
    ck = tmp_path / "ck"
    shutil.copytree(trained_run.run_dir / "best", ck)
    outside = tmp_path / "secret.npz"
    shutil.move(ck / "ema_params.npz", outside)
    os.symlink(outside, ck / "ema_params.npz")
    code, err = run_cli(
        capsys,
        "sample",
        "--checkpoint",
        ck,
        "--x0",
        "home",
        "--cond",
        "0 0 0 1 0 0 0",
        "--out",
        tmp_path / "s.npz",
    )
    assert_one_line(code, err, "ema_params.npz: is a symbolic link")


# --------------------------------------------------------------------------------------------
# Faults while training: Ctrl-C and a full disk


def test_ctrl_c_saves_last_and_stops_cleanly(small_config, gait_npz, tmp_path, capsys, monkeypatch):
    import dynaflow.train as tr

    before = signal.getsignal(signal.SIGINT)

    real = tr.RunLog.record

    def record(self, rec):
        real(self, rec)
        if rec.get("step") == 3:
            os.kill(os.getpid(), signal.SIGINT)  # as a terminal's Ctrl-C would

    monkeypatch.setattr(tr.RunLog, "record", record)
    flags = [
        "--data",
        gait_npz,
        "--horizon",
        "8",
        "--batch",
        "16",
        "--d-model",
        "64",
        "--n-heads",
        "4",
        "--depth",
        "1",
    ]
    flags += [
        "--dropout",
        "0",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "10",
        "--log-every",
        "1",
        "--val-windows",
        "16",
    ]
    code, err = run_cli(capsys, "train", *flags, "--save-dir", tmp_path / "run", "--quiet")
    assert code == 130, err
    assert_one_line(code, err, "interrupted by SIGINT (Ctrl-C) at step", "--resume")
    from dynaflow.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "run" / "last")["step"] in (3, 4)
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back


def test_a_full_disk_while_saving_is_one_line_and_loses_nothing(
    small_config, rollout, tmp_path, capsys, monkeypatch
):
    import dynaflow.checkpoint as ckpt
    from dynaflow.train import train

    cfg = small_config(
        save_dir=str(tmp_path / "run"), epochs=2, steps_per_epoch=2, val_windows=16, save_interval=1
    )
    train(cfg, rollout=rollout, progress=False)
    before = snapshot(tmp_path / "run" / "last")
    real = ckpt._write_npz

    def full(path, arrays):
        real(path, arrays)
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(ckpt, "_write_npz", full)
    code, err = run_cli(capsys, "train", "--resume", tmp_path / "run", "--epochs", "3", "--quiet")
    resumed, err = err.splitlines()  # what is resumed is said first; then the error, in one line
    assert resumed.startswith(f"resuming {tmp_path / 'run' / 'last'}")
    assert_one_line(code, err, "no space left on the device")
    assert snapshot(tmp_path / "run" / "last") == before
    assert not [p for p in (tmp_path / "run").iterdir() if ".tmp-" in p.name]
