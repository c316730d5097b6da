"""Training: learning happens, resume is exact, bad updates are skipped, data parallel matches one device."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from dynaflow.checkpoint import load_checkpoint


def test_loss_falls_and_validation_tre_halves(trained_run):
    hist = trained_run.history
    val = [h for h in hist if "val_tre" in h]
    assert val[0]["step"] == 0 and val[-1]["step"] >= 500
    assert val[-1]["val_tre"] <= 0.5 * val[0]["val_tre"], [round(h["val_tre"], 3) for h in val]
    assert val[-1]["val_loss"] <= 0.5 * val[0]["val_loss"]
    train_losses = [h["train_loss"] for h in hist if "train_loss" in h]
    assert np.mean(train_losses[-5:]) < 0.5 * np.mean(train_losses[:3])
    lines = (trained_run.run_dir / "metrics.jsonl").read_text().splitlines()
    step_rec = json.loads(lines[1])
    assert {"train_loss", "lr", "grad_norm", "steps_per_s", "skipped_updates"} <= set(step_rec)
    names = {p.name for p in trained_run.run_dir.iterdir()}
    assert {"last", "best", "epoch_0002", "epoch_0004", "epoch_0010", "metrics.jsonl"} <= names
    assert set(trained_run.saved) == {p for p in names if p != "metrics.jsonl"}
    assert load_checkpoint(trained_run.run_dir / "last")["step"] == int(trained_run.state.step)


def test_resume_continues_exactly(small_config, rollout, tmp_path):
    """12 steps + resume to 20 == 20 steps in one go (parameters, EMA, optimiser state, step)."""
    from dynaflow.train import train

    kw = dict(epochs=3, steps_per_epoch=8, val_windows=16, save_interval=1)
    full = train(
        small_config(save_dir=str(tmp_path / "full"), max_steps=20, **kw), rollout=rollout, progress=False
    )
    train(small_config(save_dir=str(tmp_path / "part"), max_steps=12, **kw), rollout=rollout, progress=False)
    assert load_checkpoint(tmp_path / "part" / "last")["step"] == 12
    # resume through the command line: the stored config, with --max-steps raised
    from dynaflow.cli import main

    part_log = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    with open(
        tmp_path / "part" / "metrics.jsonl", "a"
    ) as f:  # a record logged after the checkpoint, then a kill
        f.write(json.dumps({"step": 14, "train_loss": 123.0}) + "\n")
    assert main(["train", "--resume", str(tmp_path / "part"), "--max-steps", "20", "--quiet"]) == 0
    resumed = load_checkpoint(tmp_path / "part" / "last", with_opt_state=True)
    assert resumed["step"] == 20
    assert resumed["train_config"].max_steps == 20
    # the log continues from the checkpoint: what was logged after it (then lost) is not repeated
    records = [json.loads(line) for line in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records]
    assert (
        steps == sorted(steps) and steps[-1] == 20 and not any(r.get("train_loss") == 123.0 for r in records)
    )
    assert records[: len(part_log)] == [json.loads(line) for line in part_log]
    for a, b in [
        (full.state.params, resumed["params"]["params"]),
        (full.state.ema, resumed["ema_params"]["params"]),
        (jax.tree.leaves(full.state.opt_state), resumed["opt_state_leaves"]),
    ]:
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_nonfinite_updates_are_skipped_then_stop_the_run(small_config, rollout, tmp_path, monkeypatch):
    import dynaflow.train as tr
    import dynaflow.train.batches as batches

    real = batches.gather_windows

    def poisoned(dataset, index, horizon):
        X, c = real(dataset, index, horizon)
        if len(index) == 16:  # training batches only
            X = X.copy()
            X[:, 3, 20] = np.nan
        return X, c

    monkeypatch.setattr(batches, "gather_windows", poisoned)
    cfg = small_config(
        save_dir=str(tmp_path / "nan"), epochs=2, steps_per_epoch=4, max_nonfinite=3, val_windows=16
    )
    with pytest.raises(
        tr.TrainingStopped, match="3 consecutive non-finite losses, gradients or weights at step 3"
    ):
        tr.train(cfg, rollout=rollout, progress=False)
    ck = load_checkpoint(tmp_path / "nan" / "last")
    assert ck["step"] == 3 and ck["progress"]["skipped_updates"] == 3
    fresh = load_checkpoint(tmp_path / "nan" / "last")["params"]
    assert all(np.isfinite(np.asarray(v)).all() for v in jax.tree.leaves(fresh))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _train_cmd(cfg, save_dir) -> list[str]:
    """`dynaflow train` with ``cfg``'s values as flags (4 steps, a log line each), through the CLI."""
    from dynaflow.config import leaf_fields

    values = cfg.replace(epochs=1, steps_per_epoch=4, log_every=1, val_windows=16, save_dir=save_dir).flat()
    args = [
        f"{leaf.flag}={values[name]}"
        for name, leaf in leaf_fields().items()
        if leaf.flag and values[name] is not None and name != "weights"
    ]
    return [sys.executable, "-m", "dynaflow.cli", "train", *args]


def _two_process_env(n_local: int) -> dict[str, str]:
    """The environment of a process of ``n_local`` CPU devices."""
    # The processes run 4 steps, so compiling is nearly all their time: LLVM's lowest optimisation
    # level compiles about a third faster (same floating-point semantics: XLA enables no fast-math).
    return {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={n_local} --xla_backend_optimization_level=0",
        "JAX_PLATFORMS": "cpu",
    }


def _metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _train_in_two_processes(cfg, tmp_path) -> list[tuple[str, str]]:
    """`dynaflow train --coordinator` in two processes of two CPU devices each, saving to tmp_path / p0 and
    p1: both exit 0. Their (stdout, stderr)."""
    port = _free_port()
    procs = [
        subprocess.Popen(
            _train_cmd(cfg, str(tmp_path / f"p{pid}"))
            + [f"--coordinator=localhost:{port}", "--num-processes=2", f"--process-id={pid}"]
            + ["--time-budget=3600"],  # budget checks are agreed between processes each step
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_two_process_env(2),
        )
        for pid in (0, 1)
    ]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    return outs


def _assert_same_training(ref_dir, got_dir) -> None:
    """Two runs log the same steps, losses, validation scores and gradient norms, and end with the same
    parameters."""
    ref, got = _metrics(ref_dir), _metrics(got_dir)
    assert [r["step"] for r in got] == [r["step"] for r in ref] == [0, 1, 2, 3, 4, 4]
    for key in ("train_loss", "val_loss", "val_tre", "grad_norm"):
        a = [r[key] for r in ref if key in r]
        b = [r[key] for r in got if key in r]
        assert len(a) == len(b) > 0
        np.testing.assert_allclose(b, a, rtol=2e-4, err_msg=key)
    pa = jax.tree.leaves(load_checkpoint(ref_dir / "last")["params"])
    pb = jax.tree.leaves(load_checkpoint(got_dir / "last")["params"])
    # Adam moves a parameter whose gradient is ~0 by ~lr either way, so compare the whole vector.
    diff = np.sqrt(sum(np.sum((np.asarray(b) - np.asarray(a)) ** 2) for a, b in zip(pa, pb, strict=True)))
    norm = np.sqrt(sum(np.sum(np.asarray(a) ** 2) for a in pa))
    assert diff <= 1e-4 * norm, (diff, norm)


def _resume_in_two_processes_and_stop_process_1(save_dir):
    """Both processes continue ``save_dir`` with `--resume auto` (to 9 epochs); process 1 gets SIGTERM at its
    update 6. The processes, their (stdout, stderr), and process 1's stderr lines as read."""
    port = _free_port()
    resume = [
        sys.executable,
        "-m",
        "dynaflow.cli",
        "train",
        "--resume",
        "auto",
        "--save-dir",
        str(save_dir),
        "--epochs",
        "9",
    ]
    procs = [
        subprocess.Popen(
            resume
            + ["--quiet", f"--coordinator=localhost:{port}", "--num-processes=2", f"--process-id={pid}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**_two_process_env(2), "DYNAFLOW_TEST_EVENTS": str(pid)},  # events from process 1 only
        )
        for pid in (0, 1)
    ]
    said = []
    for line in procs[1].stderr:
        said.append(line.strip())
        if line.startswith("dynaflow-test: update 6"):
            procs[1].send_signal(signal.SIGTERM)
    outs = [p.communicate(timeout=600) for p in procs]
    return procs, outs, said


def test_two_processes_of_two_devices_match_one_device(small_config, rollout, tmp_path):
    """Data parallel over devices and over processes (hosts): `dynaflow train --coordinator` in two
    processes with two CPU devices each (4 devices, Gloo collectives) gives the losses, validation
    scores and parameters of one process on one device (here, in-process). Only process 0 writes files."""
    from dynaflow.train import train

    cfg = small_config()
    one = cfg.replace(
        epochs=1, steps_per_epoch=4, log_every=1, val_windows=16, save_dir=str(tmp_path / "one")
    )
    train(one, rollout=rollout, progress=False)
    outs = _train_in_two_processes(cfg, tmp_path)
    assert "4 cpu device(s) in 2 processes" in outs[0][1]
    assert "process 1: trained 4 steps; process 0 wrote the files" in outs[1][0]
    assert not (tmp_path / "p1").exists()  # process 1 writes nothing
    _assert_same_training(tmp_path / "one", tmp_path / "p0")

    # A requeued job: both processes continue a run with `--resume auto --save-dir` (process 0 picks the
    # checkpoint, the other takes its choice); SIGTERM to process 1 alone: they agree to stop at the same
    # step, both exit 143, and process 0 writes the one checkpoint. The run is a state-fm one (this
    # process, one device): the resume and stop code is the same for every method, and process 1, which
    # never reads the persistent cache on a CPU (its cache keys differ from process 0's), would spend most
    # of the test compiling DynaFlow's step again.
    sfm = tmp_path / "sfm"
    train(one.replace(method="state-fm", save_dir=str(sfm)), rollout=rollout, progress=False)
    procs, outs, said = _resume_in_two_processes_and_stop_process_1(sfm)
    assert [p.returncode for p in procs] == [143, 143], (outs, said)
    line0 = outs[0][1].strip().splitlines()[-1]
    step = load_checkpoint(sfm / "last")["step"]
    assert 6 <= step < 12
    assert line0.startswith(f"dynaflow train: interrupted by SIGTERM at step {step}; saved "), line0
    assert said[-1] == (
        f"dynaflow train: process 1: interrupted by SIGTERM at step {step}; process 0 saved {sfm / 'last'}"
    ), said
    assert not (tmp_path / "p1").exists()
    steps = [r["step"] for r in _metrics(sfm)]
    assert steps[:6] == [0, 1, 2, 3, 4, 4]  # continued, not restarted


def test_randomised_training_rolls_out_in_sampled_worlds(small_config, rollout):
    """``--randomise``: the train step hands Φ one sampled world per window (a stand-in Φ records them) at
    the run's strength. (Without it Φ gets no world: every other training test runs that path.)"""
    import jax.numpy as jnp

    from dynaflow.methods import build_model
    from dynaflow.physics.rollout import WORLD_KEYS
    from dynaflow.train import TrainState, hyperparameters, init_opt_state, make_train_step

    real, seen = rollout, {}

    class RecordingPhi:
        sim_model, n_substeps = real.sim_model, real.n_substeps

        def rollout(self, x0, U, world=None):
            seen["keys"] = set(world)
            jax.debug.callback(lambda m: seen.setdefault("mass", np.asarray(m)), world["mass"])
            steps = jnp.pad(jnp.cumsum(U, axis=1), ((0, 0), (0, 0), (0, 25)))
            return jnp.concatenate([x0[:, None], x0[:, None] + steps], axis=1)

        __call__ = rollout

    cfg = small_config(randomise=0.5)
    model = build_model("dynaflow", 32, 2, 1, 0.0, 7)
    H, B = cfg.horizon, 4
    X1 = jnp.zeros((B, H + 1, 37)).at[:, :, 3].set(1.0)
    cond = jnp.zeros((B, 7))
    variables = dict(model.init(jax.random.PRNGKey(0), X1[:1], jnp.zeros((1,)), cond[:1]))
    params = variables["params"]
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        ema=params,
        opt_state=init_opt_state(params),
        key=jax.random.PRNGKey(1),
        nonfinite=jnp.zeros((), jnp.int32),
        skipped=jnp.zeros((), jnp.int32),
    )
    hyper = hyperparameters(cfg, 10)
    assert hyper["randomise"] == np.float32(0.5)
    step = jax.jit(make_train_step(model, RecordingPhi(), randomise=True))
    _, metrics = step(state, X1, cond, variables["normalizer"], hyper)
    assert np.isfinite(float(metrics["loss"]))
    assert seen["keys"] == set(WORLD_KEYS) and seen["mass"].shape == (B,)
    assert (
        np.all(np.abs(seen["mass"] - 1.0) <= 0.1 + 1e-6) and np.ptp(seen["mass"]) > 0
    )  # strength 0.5: ±10 %


def test_chained_windows_reach_the_loss_and_validation_scores_the_first(small_config):
    """``--chain K``: training samples are K·H + 1 states (the loss chains K windows, tests/test_flow.py),
    the normaliser and the validation TRE use windows of H + 1; ``--rest-starts`` puts the standing state
    into the loss's settings, with ``--ease-in`` in steps (refused without rest starts); the baselines
    refuse chains and rest starts (they have no rollout of their actions)."""
    from dynaflow.config import ConfigError, TrainConfig
    from dynaflow.train import device_batch, hyperparameters, prepare_data

    cfg = small_config(chain=3, trunk="window", std_floor="physical", rest_starts=0.25, ease_in=0.5)
    H = cfg.horizon
    data = prepare_data(cfg)
    assert int(data.train_idx[:, 1].max()) <= 200 - 3 * H  # every sample fits its episode
    X, c, A = device_batch(data, data.train_idx[:4], cfg, None)
    assert X.shape == (4, 3 * H + 1, 37) and c.shape == (4, 7) and A is None
    rest = np.zeros(37, np.float32)
    w = hyperparameters(cfg, 10, rest)["weights"]
    assert w["step"].shape == (H + 1, 37) and w["window"][19:25].all() and not w["step"][:, 19:25].any()
    assert w["rest_fraction"] == np.float32(0.25) and w["rest"].shape == (37,)
    assert w["ease_steps"] == pytest.approx(0.5 / cfg.sim.ctrl_dt)
    with pytest.raises(ConfigError, match="ease_in.*rest-starts"):
        cfg.replace(rest_starts=0.0).validate()
    assert "rest" not in hyperparameters(small_config(), 10)["weights"]  # off: the step has no rest path
    with pytest.raises(ValueError, match="standing state"):
        hyperparameters(cfg, 10)
    from dynaflow.train import train

    with pytest.raises(ConfigError, match="rest_state"):  # the standing state is the caller's to give
        train(cfg, progress=False)
    for flag in ("chain", "rest_starts"):
        with pytest.raises(ConfigError, match=flag):
            TrainConfig.from_flat(method="state-fm", **{flag: 2 if flag == "chain" else 0.5}).validate()
