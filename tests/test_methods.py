"""The methods (`dynaflow train --method ...`): each baseline trains a few steps on the shared small
configuration, samples, and is scored by the same evaluation; what each can and cannot claim shows in its
metrics. Each method is one object (dynaflow.methods): what it needs and what it produces is declared."""

from __future__ import annotations

import numpy as np
import pytest

from dynaflow.cli import main

STEPS = 40


@pytest.fixture(scope="module")
def baseline_runs(small_config, rollout):
    """A few updates of each baseline on the bundled gait data (which has recorded actions)."""
    from dynaflow.train import train

    runs = {}
    for method in ("state-fm", "state-fm-id", "bc"):
        cfg = small_config(method=method, epochs=1, steps_per_epoch=STEPS, val_windows=16)
        runs[method] = train(cfg, rollout=rollout, progress=False)
    return runs


def test_model_heads(rollout):
    import jax
    import jax.numpy as jnp

    from dynaflow.methods import create_action_predictor

    x = jnp.zeros((2, 9, 37)).at[..., 3].set(1.0).at[:, :, 0].set(5.0)
    t = jnp.zeros(2)
    m, p = create_action_predictor(horizon=8, d_model=32, n_heads=2, depth=1, method="state-fm")
    X = jax.jit(m.apply)(p, x, t)  # jitted: one compile instead of one per eager op
    assert X.shape == (2, 9, 37)
    np.testing.assert_allclose(X[:, 0], x[:, 0])  # row 0 is x0 itself
    np.testing.assert_allclose(X[:, 1:, 0], 5.0 + p["normalizer"]["mean"][0], atol=1e-6)  # x, y back
    m, p = create_action_predictor(horizon=8, d_model=32, n_heads=2, depth=1, method="state-fm-id")
    assert "idm" in p["params"]
    assert jax.jit(m.apply)(p, x, t, id_states=x).shape == (2, 8, 12)
    m, p = create_action_predictor(horizon=8, d_model=32, n_heads=2, depth=1, method="bc")
    assert jax.jit(m.apply)(p, x, t, u_t=jnp.zeros((2, 8, 12))).shape == (2, 8, 12)
    with pytest.raises(ValueError, match=r"u_t: expected shape \(2, 8, 12\)"):
        jax.jit(m.apply)(p, x, t, u_t=jnp.zeros((2, 7, 12)))
    with pytest.raises(ValueError, match="method: expected one of"):
        create_action_predictor(method="diffusion")


def test_each_baseline_trains_and_samples(baseline_runs, rollout):
    from dynaflow.policy import DynaFlowPolicy

    x0 = np.tile(rollout.home_state(), (3, 1))
    cond = np.zeros((3, 7), np.float32)
    shapes = {}
    for method, res in baseline_runs.items():
        losses = [r["train_loss"] for r in res.history if "train_loss" in r]
        assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], method
        policy = DynaFlowPolicy.from_checkpoint(res.run_dir, rollout=rollout)
        assert policy.method == method
        X, U = policy.sample(x0, cond, rng=1)
        shapes[method] = (X.shape, None if U is None else U.shape)
        if method == "bc":  # behaviour cloning's states are the rollout of its actions
            # (policies sample a batch of 3 padded to 8: roll out at that batch)
            pad = lambda a: np.concatenate([a, np.repeat(a[:1], 5, 0)])  # noqa: E731
            np.testing.assert_allclose(X, np.asarray(rollout(pad(x0), pad(U)))[:3], atol=1e-5)
    assert shapes == {
        "state-fm": ((3, 9, 37), None),
        "state-fm-id": ((3, 9, 37), (3, 8, 12)),
        "bc": ((3, 9, 37), (3, 8, 12)),
    }


def test_baselines_in_the_same_evaluation(baseline_runs, trained_run, trot_npz, tmp_path):
    """One report, one column per method; a states-only model has no SAE, the others do."""
    import json

    runs = [trained_run.run_dir] + [r.run_dir for r in baseline_runs.values()]
    args = ["evaluate", "--dataset", str(trot_npz), "--num-samples", "8", "--batch", "8"]
    args += ["--long-seconds", "0.5", "--long-per-gait", "2", "--out", str(tmp_path / "report")]
    for r in runs:
        args += ["--checkpoint", str(r)]
    assert main(args) == 0
    doc = json.loads((tmp_path / "report" / "metrics.json").read_text())
    m = {r["method"]: r["metrics"] for r in doc["runs"]}
    assert list(m) == ["dynaflow", "state-fm", "state-fm-id", "bc"]
    assert m["state-fm"]["sae_one_step_max"] is None and m["state-fm"]["exec_reference_success"] is None
    assert m["dynaflow"]["sae_one_step_max"] < 1e-3 and m["bc"]["sae_one_step_max"] < 1e-3
    assert m["state-fm-id"]["sae_one_step_max"] > m["dynaflow"]["sae_one_step_max"]  # states != f(x, ID)
    assert m["dynaflow"]["quat_norm_error_max"] < 1e-5  # a rollout keeps unit quaternions
    # the best-action SAE scores the states-only model too: no action explains its transitions
    assert m["state-fm"]["sae_best_action_max"] > 100 * m["dynaflow"]["sae_best_action_max"]
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| metric | dynaflow | state-fm | state-fm-id | bc |" in md
    assert (tmp_path / "report" / "report.html").read_text().count("data:image/png;base64") >= 3


def test_action_baselines_need_actions(small_config, tmp_path, rollout):
    from dynaflow.data import load_dataset, save_dataset
    from dynaflow.train import train

    cfg = small_config(method="bc")
    ds = load_dataset(cfg.data)
    states_only = tmp_path / "states_only.npz"
    save_dataset(states_only, ds.states, conditionings=ds.conditionings)
    with pytest.raises(ValueError, match=r"states_only.npz: key 'actions' missing; --method bc learns"):
        train(small_config(method="bc", data=str(states_only)), rollout=rollout, progress=False)
    with pytest.raises(ValueError, match=r"method: expected one of"):
        train(small_config(method="ppo"), rollout=rollout, progress=False)


def test_each_method_declares_what_it_needs_and_produces():
    from dynaflow.methods import METHODS

    assert list(METHODS) == ["dynaflow", "state-fm", "state-fm-id", "bc"]
    needs = {name: m.needs_actions for name, m in METHODS.items()}
    assert needs == {"dynaflow": False, "state-fm": False, "state-fm-id": True, "bc": True}
    assert [n for n, m in METHODS.items() if not m.has_actions] == ["state-fm"]
    assert [n for n, m in METHODS.items() if m.states_are_rollout] == ["dynaflow", "bc"]
