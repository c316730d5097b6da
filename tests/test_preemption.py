"""Runs that survive the machines they run on: stop signals (SIGTERM, SIGHUP, SIGUSR1, Ctrl-C) save `last`
and exit with 128 + the signal; `last` is also saved by time, mid-epoch; `--resume auto` continues a run
directory's newest good checkpoint or starts one; and a kill storm in subprocesses (SIGKILL and SIGTERM
during updates, validation and saves, each run resumed with `--resume auto`) ends with the weights of the
uninterrupted run, bit for bit, while every checkpoint on disk loads.

Every run here is the suite's shared small configuration on the bundled data (conftest.SMALL), so the
compiled step comes from the in-process or persistent cache."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import jax
import numpy as np

import dynaflow.checkpoint.save as checkpoint_save
import dynaflow.train.loop as train_module
from dynaflow.checkpoint import load_checkpoint
from dynaflow.cli import main
from dynaflow.config import leaf_fields


def cli_args(cfg, **changes) -> list[str]:
    """`dynaflow train` flags for ``cfg`` (with ``changes``), as in tests/test_train.py."""
    values = cfg.replace(**changes).flat() if changes else cfg.flat()
    return [
        f"{leaf.flag}={values[name]}"
        for name, leaf in leaf_fields().items()
        if leaf.flag and values[name] is not None and name not in ("weights", "save_dir")
    ]


def assert_same_weights(a: dict, b: dict) -> None:
    """Parameters, EMA and optimiser state of two loaded checkpoints, bit for bit."""
    assert a["step"] == b["step"]
    for key in ("params", "ema_params"):
        for x, y in zip(jax.tree.leaves(a[key]), jax.tree.leaves(b[key]), strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    for x, y in zip(a["opt_state_leaves"], b["opt_state_leaves"], strict=True):
        np.testing.assert_array_equal(x, y)


def every_checkpoint_loads(run_dir: Path) -> list[str]:
    """Load every checkpoint of ``run_dir`` from a copy (so an interrupted save is left for the next run to
    recover): each named one, and ``last`` even when a kill between a save's renames left it missing."""
    copy = run_dir.parent / (run_dir.name + "-check")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(run_dir, copy)
    names = {p.name for p in copy.iterdir() if p.is_dir() and not p.name.startswith(".")} | {"last"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "restored from the interrupted save"
        for name in names:
            load_checkpoint(copy / name, with_opt_state=True)
    shutil.rmtree(copy)
    return sorted(names)


# --------------------------------------------------------------------------------------------
# Signals


STOPS = [("SIGTERM", 143), ("SIGHUP", 129), ("SIGUSR1", 138), ("SIGINT", 130)]


def test_stop_signals_finish_the_update_save_last_and_exit_with_their_code(
    small_config, tmp_path, capsys, monkeypatch
):
    """Each stop signal at update 3: `last` holds step 3, one line says what was saved and the command that
    continues, the exit code is 128 + the signal. With SIGTERM a second SIGTERM arrives in the middle of
    that save (between its two renames): the save finishes first, and `last` loads. The handlers are put
    back afterwards."""
    cfg = small_config(epochs=1, steps_per_epoch=6, val_windows=16, log_every=1)
    before = {name: signal.getsignal(getattr(signal, name)) for name, _ in STOPS}
    for name, code in STOPS:
        sig = getattr(signal, name)
        run = tmp_path / name
        fired = []

        def event(what, detail, sig=sig, fired=fired):
            if what == "update" and detail == 3:
                fired.append(what)
                os.kill(os.getpid(), sig)
            elif what == "rename" and fired == ["update"] and sig == signal.SIGTERM:
                fired.append(what)
                os.kill(os.getpid(), sig)  # a second signal during the save of `last`

        monkeypatch.setattr(train_module, "test_event", event)
        monkeypatch.setattr(checkpoint_save, "test_event", event)  # the save calls it
        assert main(["train", *cli_args(cfg), "--save-dir", str(run), "--quiet"]) == code, name
        lines = capsys.readouterr().err.strip().splitlines()
        label = "SIGINT (Ctrl-C)" if name == "SIGINT" else name
        assert lines == [
            f"dynaflow train: interrupted by {label} at step 3; saved {run / 'last'} (step 3); continue "
            f"with: dynaflow train --resume {run}"
        ], lines
        assert load_checkpoint(run / "last", with_opt_state=True)["step"] == 3
        assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no interrupted save left
        if name == "SIGTERM":
            assert fired == ["update", "rename"]
    assert {name: signal.getsignal(getattr(signal, name)) for name, _ in STOPS} == before


def test_a_stop_signal_during_the_last_validation_still_ends_with_its_code(
    small_config, tmp_path, capsys, monkeypatch
):
    """SIGTERM while the final epoch is validated: the run completes its save of the last step (nothing is
    lost by stopping there), then ends like any stopped run: one line naming the step `last` holds, and 143,
    so a scheduler that sent it sees the job as stopped, not as having ignored the signal."""

    def event(what, detail):
        if what == "validate" and detail == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(train_module, "test_event", event)
    run = tmp_path / "run"
    cfg = small_config(epochs=1, steps_per_epoch=2, val_windows=16)
    assert main(["train", *cli_args(cfg), "--save-dir", str(run), "--quiet"]) == 143
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        f"dynaflow train: interrupted by SIGTERM at step 2; saved {run / 'last'} (step 2); continue "
        f"with: dynaflow train --resume {run}"
    ], lines
    last = load_checkpoint(run / "last", with_opt_state=True)
    assert last["step"] == 2 and last["progress"]["best_val_loss"] is not None  # validated, then saved
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert "val_loss" in records[-1] and records[-1]["step"] == 2


def test_a_stop_signal_before_the_loop_is_one_line_too(small_config, tmp_path, capsys, monkeypatch):
    """SIGTERM while the data are loaded (before training's handlers): one line, exit 143, nothing written."""
    real = train_module.prepare_data

    def prepare(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **k)

    monkeypatch.setattr(train_module, "prepare_data", prepare)
    cfg = small_config(epochs=1, steps_per_epoch=2)
    assert main(["train", *cli_args(cfg), "--save-dir", str(tmp_path / "run"), "--quiet"]) == 143
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "dynaflow train: interrupted by SIGTERM outside the training loop (no checkpoint was being written; "
        "those on disk are complete)"
    ]
    assert not (tmp_path / "run").exists()


def test_time_based_checkpoints_save_last_mid_epoch(small_config, rollout, tmp_path, monkeypatch):
    """--save-every-minutes: `last` is written during an epoch once that much time has passed (never at the
    step that ends an epoch, whose own save follows); 0 saves at epoch ends only. A fresh run holds `last`
    at step 0 from the start."""
    from dynaflow.train import train

    saves = []
    real = train_module.Checkpointer._write

    def write(self, state, names, step, *rest):
        saves.append((step, tuple(names)))
        real(self, state, names, step, *rest)

    monkeypatch.setattr(train_module.Checkpointer, "_write", write)
    kw = dict(epochs=2, steps_per_epoch=4, val_windows=16)
    train(small_config(save_every_minutes=1e-6, **kw), rollout=rollout, progress=False)
    lasts = [step for step, names in saves if "last" in names]
    assert lasts == [0, 1, 2, 3, 4, 5, 6, 7, 8], saves
    saves.clear()
    train(small_config(save_every_minutes=0, **kw), rollout=rollout, progress=False)
    assert [step for step, names in saves if "last" in names] == [0, 4, 8], saves


# --------------------------------------------------------------------------------------------
# --resume auto


def test_resume_auto_starts_continues_skips_damaged_and_never_replaces(small_config, tmp_path, capsys):
    """--resume auto --save-dir D: starts a run when D is absent; continues it at the newest checkpoint
    that loads (a damaged `last` is skipped with one line); a finished run is left as it is; D holding only
    checkpoints that do not load is refused, not replaced; --save-dir is required."""
    cfg = small_config(epochs=2, steps_per_epoch=3, val_windows=16, save_interval=1)
    run = tmp_path / "run"
    auto = ["train", "--resume", "auto", "--save-dir", str(run), "--quiet"]
    assert main([*auto, *cli_args(cfg)]) == 0
    err = capsys.readouterr().err
    assert f"--resume auto: no checkpoint in {run}; starting a new run" in err
    assert load_checkpoint(run / "last")["step"] == 6
    # damage `last`: the newest checkpoint that loads (step 6: best or epoch_0002) is continued
    params = run / "last" / "params.npz"
    params.write_bytes(params.read_bytes()[:-100])
    assert main([*auto, "--epochs", "3"]) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith(f"dynaflow train: --resume auto: skipping {run / 'last'}: {params}"), lines
    assert "do not match the hash" in lines[0] and lines[1].startswith("resuming ")
    assert lines[1].split()[1] in (str(run / "best"), str(run / "epoch_0002")), lines
    assert load_checkpoint(run / "last")["step"] == 9
    # run again: nothing left to do
    capsys.readouterr()
    assert main([*auto, "--epochs", "3"]) == 0
    assert load_checkpoint(run / "last")["step"] == 9
    assert f"nothing left to train: {run} is at step 9, the end of its run" in capsys.readouterr().out
    # nothing loads: refused, and nothing is replaced
    for ck in [p for p in run.iterdir() if p.is_dir()]:
        (ck / "opt_state.npz").write_bytes(b"not a zip")
    snapshot = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert main([*auto, *cli_args(cfg)]) == 2
    err = capsys.readouterr().err
    assert "holds an earlier run" in err.strip().splitlines()[-1]
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == snapshot
    assert main(["train", "--resume", "auto", *cli_args(cfg)]) == 2
    assert "--resume auto needs --save-dir" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# The kill storm


def storm_command(cfg) -> list[str]:
    """The storm's `dynaflow train` command line, for a subprocess (`last` saved by time, nearly every
    update)."""
    return [
        sys.executable,
        "-m",
        "dynaflow.cli",
        "train",
        *cli_args(cfg, save_every_minutes=0.002),
        "--quiet",
    ]


def at(name, first_step=None):
    """The moment ``dynaflow-test: NAME ...`` (a validation: of the untrained model or of an epoch)."""
    if name == "validate":
        return lambda what, detail: what == name and (detail == "0") == (first_step == 0)
    return lambda what, detail: what == name


def storm_plan(rng: np.random.Generator) -> list:
    """The kills: (moment, its n-th occurrence in that run, signals)."""
    K, T, U = signal.SIGKILL, signal.SIGTERM, signal.SIGUSR1
    # (SIGTERM at an update and before the first one: test_stop_signals_... and ..._before_the_loop_...)
    return [
        (at("update"), rng.integers(1, 4), [K]),
        (at("rename"), rng.integers(1, 4), [K]),  # between a save's two renames: `last` is missing
        (at("validate", 1), 1, [U]),  # an epoch's validation: it finishes, is saved, then the run stops
        (at("rename"), rng.integers(1, 4), [T, T]),  # the second signal waits for the save to finish
    ]


STORM_ENV = {
    "DYNAFLOW_TEST_EVENTS": "1",
    "DYNAFLOW_TEST_PAUSE": "validate=0.3,save=0.3,rename=0.3",
}


def run_until_stopped(command: list[str], env: dict, moment, nth, sigs, run: Path) -> int:
    """Run ``command`` and send ``sigs`` at the ``nth`` ``moment``: the run stops as the signal says (a kill
    leaves no traceback; a stop says so in its last line, with the command that continues), every
    checkpoint on disk loads. The exit code."""
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    seen, said = 0, []
    for line in proc.stderr:
        if not line.startswith("dynaflow-test: "):
            said.append(line.strip())
            continue
        what, _, detail = line.removeprefix("dynaflow-test: ").strip().partition(" ")
        seen += moment(what, detail)
        if seen == nth and sigs:
            for s in sigs:
                proc.send_signal(s)
            sigs = []
    code = proc.wait(timeout=600)
    assert code != 0 and not sigs, (code, said)  # every planned moment came before the run ended
    if code == -signal.SIGKILL:
        assert not [s for s in said if "Traceback" in s], said
    else:
        assert code == 128 + proc_signal(code), (code, said)
        assert said[-1].startswith("dynaflow train: interrupted by SIG"), said
        assert said[-1].endswith(f"continue with: dynaflow train --resume {run}"), said
    every_checkpoint_loads(run)
    return code


def logged_records(path: Path) -> list[dict]:
    """A run's metrics.jsonl, timings apart."""
    timing = ("steps_per_s", "epoch_seconds")
    lines = (path / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in timing} for line in lines]


def test_kill_storm_ends_with_the_uninterrupted_weights(small_config, tmp_path):
    """A seeded run killed at random moments in subprocesses (SIGKILL during an update and between a save's
    two renames, SIGUSR1 during an epoch's validation, SIGTERM twice during a save), restarted each
    time with the same `--resume auto` command line: it ends with the weights, EMA and optimiser state of
    the uninterrupted run bit for bit, and after every kill each checkpoint on disk loads. `last` is saved
    by time after nearly every update (--save-every-minutes 0.002), so most resumes start mid-epoch.

    The storm trains `state-fm`: what it checks (the loop's saves, restores and log) is the same code for
    every method, and each of its six processes then starts in a third of DynaFlow's time (no MJX step to
    trace). DynaFlow's own resume is exact by test_train.py's resume tests, in one process and in two."""
    cfg = small_config(
        method="state-fm", epochs=5, steps_per_epoch=6, val_windows=16, save_interval=2, log_every=1
    )
    run, ref = tmp_path / "storm", tmp_path / "reference"
    command = storm_command(cfg)
    # the uninterrupted run, through the same command (so on the same device layout)
    done = subprocess.run([*command, "--save-dir", str(ref)], stderr=subprocess.PIPE, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    command += ["--resume", "auto", "--save-dir", str(run)]
    plan = storm_plan(np.random.default_rng(28))
    env = {**os.environ, **STORM_ENV}
    stops = [run_until_stopped(command, env, moment, nth, sigs, run) for moment, nth, sigs in plan]
    K, T, U = signal.SIGKILL, signal.SIGTERM, signal.SIGUSR1
    assert stops == [-K, -K, 128 + U, 128 + T]
    # the last run is not stopped: no pauses
    env.pop("DYNAFLOW_TEST_PAUSE")
    proc = subprocess.run(command, stderr=subprocess.PIPE, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    every_checkpoint_loads(run)
    final = load_checkpoint(run / "last", with_opt_state=True)
    assert final["step"] == 30
    assert_same_weights(final, load_checkpoint(ref / "last", with_opt_state=True))
    # and the log is the uninterrupted run's (timings apart): what a kill lost is logged once, again
    assert logged_records(run) == logged_records(ref)
    for name in ("epoch_0002", "epoch_0004", "best"):
        assert_same_weights(
            load_checkpoint(run / name, with_opt_state=True), load_checkpoint(ref / name, with_opt_state=True)
        )


def proc_signal(code: int) -> int:
    """The signal behind an exit code: -N (killed by N) or 128 + N (stopped cleanly on N)."""
    return -code if code < 0 else code - 128


def test_every_command_exits_with_the_stopping_signals_code():
    """A stop escaping another command that trains (`dynaflow demo`) keeps 128 + the signal."""
    from dynaflow.cli import describe
    from dynaflow.train import TrainingInterrupted

    for name, code in STOPS:
        e = TrainingInterrupted("dynaflow train: interrupted by X at step 3", getattr(signal, name))
        assert describe(e) == (code, "interrupted by X at step 3")
