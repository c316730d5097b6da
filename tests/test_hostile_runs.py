"""Hostile conditions around runs, through the real command line: unusable outputs, runs and checkpoints
on disk (config.json edits, an earlier run, a moved run, symbolic links), and faults while training (Ctrl-C,
a full disk). Every error is one line naming the flag, file or key, the exit code is not 0, and no file on
disk changes. Bad flag values, data files and numbers: ``test_hostile_input.py``.

Nothing here compiles a training step except the Ctrl-C and full-disk cases, which reuse the suite's shared
small configuration (see conftest.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal

from hostile import FAST, assert_one_line, run_cli, snapshot
from hypothesis import given
from hypothesis import strategies as st

from dynaflow.cli import main

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
    import dynaflow.checkpoint.save as ckpt  # the module whose save writes the files
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
