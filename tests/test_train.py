"""Training: learning happens, resume is exact, bad updates are skipped, data parallel matches one device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from dynaflow.checkpoint import load_checkpoint


def test_loss_falls_and_validation_tre_halves(trained_run):
    hist = trained_run.history
    val = [h for h in hist if "val_tre" in h]
    assert val[0]["step"] == 0 and val[-1]["step"] >= 300
    assert val[-1]["val_tre"] <= 0.5 * val[0]["val_tre"], [round(h["val_tre"], 3) for h in val]
    assert val[-1]["val_loss"] <= 0.5 * val[0]["val_loss"]
    train_losses = [h["train_loss"] for h in hist if "train_loss" in h]
    assert np.mean(train_losses[-5:]) < 0.5 * np.mean(train_losses[:3])
    lines = (trained_run.run_dir / "metrics.jsonl").read_text().splitlines()
    step_rec = json.loads(lines[1])
    assert {"train_loss", "lr", "grad_norm", "steps_per_s", "skipped_updates"} <= set(step_rec)
    names = {p.name for p in trained_run.run_dir.iterdir()}
    assert {"last", "best", "epoch_0004", "epoch_0008", "epoch_0012", "metrics.jsonl"} <= names
    assert load_checkpoint(trained_run.run_dir / "last")["step"] == int(trained_run.state.step)


def test_resume_continues_exactly(small_config, rollout, tmp_path):
    """12 steps + resume to 20 == 20 steps in one go (parameters, EMA, optimiser state, step)."""
    from dynaflow.train import train

    kw = dict(epochs=3, steps_per_epoch=8, dropout=0.1, val_windows=16, save_interval=1)
    full = train(
        small_config(save_dir=str(tmp_path / "full"), max_steps=20, **kw), rollout=rollout, progress=False
    )
    train(small_config(save_dir=str(tmp_path / "part"), max_steps=12, **kw), rollout=rollout, progress=False)
    assert load_checkpoint(tmp_path / "part" / "last")["step"] == 12
    # resume through the command line: the stored config, with --max-steps raised
    from dynaflow.cli import main

    assert main(["train", "--resume", str(tmp_path / "part"), "--max-steps", "20", "--quiet"]) == 0
    resumed = load_checkpoint(tmp_path / "part" / "last", with_opt_state=True)
    assert resumed["step"] == 20
    assert resumed["config"]["train"]["max_steps"] == 20
    for a, b in [
        (full.state.params, resumed["params"]["params"]),
        (full.state.ema, resumed["ema_params"]["params"]),
        (jax.tree.leaves(full.state.opt_state), resumed["opt_state_leaves"]),
    ]:
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_nonfinite_updates_are_skipped_then_stop_the_run(small_config, rollout, tmp_path, monkeypatch):
    import dynaflow.train as tr

    real = tr.gather_windows

    def poisoned(dataset, index, horizon):
        X, c = real(dataset, index, horizon)
        if len(index) == 16:  # training batches only
            X = X.copy()
            X[:, 3, 20] = np.nan
        return X, c

    monkeypatch.setattr(tr, "gather_windows", poisoned)
    cfg = small_config(
        save_dir=str(tmp_path / "nan"), epochs=2, steps_per_epoch=4, max_nonfinite=3, val_windows=16
    )
    with pytest.raises(tr.TrainingStopped, match="3 consecutive non-finite losses or gradients at step 3"):
        tr.train(cfg, rollout=rollout, progress=False)
    ck = load_checkpoint(tmp_path / "nan" / "last")
    assert ck["step"] == 3 and ck["config"]["skipped_updates"] == 3
    fresh = load_checkpoint(tmp_path / "nan" / "last")["params"]
    assert all(np.isfinite(np.asarray(v)).all() for v in jax.tree.leaves(fresh))


TWO_DEVICE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from dynaflow.cli import enable_compilation_cache
    enable_compilation_cache()
    from dynaflow.train import TrainConfig, train
    cfg = TrainConfig(**json.loads(sys.argv[1]))
    res = train(cfg, progress=False)
    losses = [h["train_loss"] for h in res.history if "train_loss" in h]
    leaves = jax.tree.leaves(res.state.params)
    print(json.dumps({"devices": jax.local_device_count(), "losses": losses,
                      "checksum": float(sum(jnp.sum(jnp.abs(x)) for x in leaves))}))
    """
)


def test_two_devices_match_one(small_config, tmp_path):
    """The batch is sharded over devices: 2 forced host devices give the same losses as 1."""
    results = {}
    for n in (1, 2):
        cfg = small_config(
            save_dir=str(tmp_path / f"d{n}"), epochs=1, steps_per_epoch=4, log_every=1, val_fraction=0.0
        )
        env = {
            **os.environ,
            "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}",
            "JAX_PLATFORMS": "cpu",
        }
        proc = subprocess.run(
            [sys.executable, "-c", TWO_DEVICE_SCRIPT, json.dumps(cfg.__dict__)],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        results[n] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert results[1]["devices"] == 1 and results[2]["devices"] == 2
    np.testing.assert_allclose(results[2]["losses"], results[1]["losses"], rtol=2e-4)
    np.testing.assert_allclose(results[2]["checksum"], results[1]["checksum"], rtol=1e-4)
