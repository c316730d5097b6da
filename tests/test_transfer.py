"""Changed worlds and the transfer suite: each perturbation changes what it names, MJX's randomised
worlds match the MuJoCo C ones, a run's figures, and `dynaflow evaluate --transfer` end to end."""

from __future__ import annotations

import json

import jax
import mujoco
import numpy as np
import pytest

from dynaflow.physics import random_smooth_actions, replay_in_mujoco, stays_up
from dynaflow.physics.rollout import random_worlds
from dynaflow.physics.worlds import (
    OBS_NOISE_STD,
    TRANSFER_MATRIX,
    Perturbation,
    build_world,
    noisy_observation,
    perturbation_by_name,
    replay_in_world,
)
from dynaflow.robots.go2 import JOINTS, TRUNK_BODY


@pytest.fixture(scope="module")
def standing(rollout):
    from dynaflow.data.sources.gaits import start_state

    return start_state(rollout)


def test_each_world_changes_what_it_names(rollout, standing):
    nominal = rollout.mj_model
    trunk = mujoco.mj_name2id(nominal, mujoco.mjtObj.mjOBJ_BODY, TRUNK_BODY)
    feet = np.flatnonzero(nominal.geom_priority == 1)
    assert len(feet) == 4
    for p in TRANSFER_MATRIX:
        w = build_world(rollout, p)
        m = w.model
        assert w.n_substeps == (10 if p.reference_solver else rollout.n_substeps)
        np.testing.assert_allclose(m.geom_friction[feet, 0], p.friction or 0.8)
        np.testing.assert_allclose(m.body_mass[trunk], nominal.body_mass[trunk] * p.trunk_mass_scale)
        np.testing.assert_allclose(
            m.body_ipos[trunk] - nominal.body_ipos[trunk], p.payload_offset, atol=1e-12
        )
        np.testing.assert_allclose(m.actuator_gainprm[:, 0], 50 * p.gain_scale)
        np.testing.assert_allclose(m.actuator_forcerange, nominal.actuator_forcerange * p.torque_scale)
        assert w.latency_s == pytest.approx(p.latency_s)
        assert (m.nhfield == 1) == bool(p.bumps_m)
        X = replay_in_world(rollout, w, standing, np.zeros((50, 12)))
        assert stays_up(X), p.name  # standing survives every world
    # the training simulator and the reference one are the worlds the rest of the project replays in
    U = random_smooth_actions(np.random.default_rng(0), 1, 30, 0.5)[0]
    for name, fidelity in (("nominal", "same"), ("reference", "reference")):
        X = replay_in_world(rollout, build_world(rollout, perturbation_by_name(name)), standing, U)
        np.testing.assert_array_equal(X, replay_in_mujoco(rollout, standing, U, fidelity))
    bumps = build_world(rollout, perturbation_by_name("bumps 2 cm")).model
    heights = bumps.hfield_data * bumps.hfield_size[0, 2]
    assert heights.min() == 0 and heights.max() == pytest.approx(0.02)


def test_latency_push_and_noise(rollout, standing):
    w = build_world(rollout, Perturbation("late", latency_s=0.020))  # one control step = 4 physics steps
    w.reset(standing)
    a, b = standing[JOINTS] + 0.1, standing[JOINTS] - 0.1
    w.step(a)
    np.testing.assert_allclose(w.data.ctrl, standing[JOINTS])  # the servos still hold the start pose
    w.step(b)
    np.testing.assert_allclose(w.data.ctrl, a)  # a arrives one control step late

    zeros = np.zeros((200, 12))
    calm = replay_in_world(rollout, build_world(rollout, TRANSFER_MATRIX[0]), standing, zeros)
    push = Perturbation("push", push=(0.0, 60.0), push_at=1.0, push_seconds=0.2)
    pushed = replay_in_world(rollout, build_world(rollout, push), standing, zeros)
    np.testing.assert_array_equal(calm[:50], pushed[:50])  # identical until the push at 1 s
    assert pushed[80, 1] - calm[80, 1] > 0.005  # a standing robot, feet held by friction, gives way

    rng = np.random.default_rng(0)
    obs = np.stack([noisy_observation(standing, 1.0, rng) for _ in range(2000)])
    np.testing.assert_allclose(np.linalg.norm(obs[:, 3:7], axis=1), 1.0, atol=1e-12)
    assert np.std(obs[:, 25:37] - standing[25:37]) == pytest.approx(OBS_NOISE_STD["joint_vel"], rel=0.05)
    np.testing.assert_array_equal(noisy_observation(standing, 0.0, rng), standing)
    assert perturbation_by_name("obs noise").observes and not perturbation_by_name("push 30 N").observes


def test_bad_perturbations_are_named():
    with pytest.raises(ValueError, match=r"perturbation 'x': friction=-1 is out of range"):
        Perturbation("x", friction=-1)
    with pytest.raises(ValueError, match=r"latency_s=nan"):
        Perturbation("x", latency_s=float("nan"))
    with pytest.raises(ValueError, match=r"unknown 'ice'; known: nominal, reference, friction 0.4"):
        perturbation_by_name("ice")


def test_randomised_mjx_worlds_match_mujoco_c(rollout, standing):
    """Domain randomisation inside Φ: a world given to the MJX rollout is the MuJoCo C world of the same
    changes (friction, mass and CoM, gains, torque limits, latency), and strength 0 is the nominal model."""
    U = random_smooth_actions(np.random.default_rng(1), 3, 12, 0.8)
    x0 = np.tile(standing, (3, 1))
    world = {
        "friction": np.array([0.4, 1.2, 0.8]),
        "mass": np.array([1.2, 0.8, 1.0]),
        "com": np.array([[0.03, 0.0, 0.0], [0.0, 0.015, 0.0], [0.0, 0.0, 0.0]]),
        "gain": np.array([0.8, 1.2, 1.0]),
        "torque": np.array([0.8, 1.0, 1.0]),
        "delay": np.array([2, 4, 0]),
    }
    X = np.asarray(rollout(x0, U, world=world))
    for b in range(3):
        p = Perturbation(
            "w",
            friction=float(world["friction"][b]),
            trunk_mass_scale=float(world["mass"][b]),
            payload_offset=tuple(world["com"][b]),
            gain_scale=float(world["gain"][b]),
            torque_scale=float(world["torque"][b]),
            latency_s=world["delay"][b] * rollout.sim_dt,
        )
        Xc = replay_in_world(rollout, build_world(rollout, p), standing, U[b])
        nominal = replay_in_mujoco(rollout, standing, U[b])
        assert np.abs(X[b] - Xc).max() < 1e-2
        if b < 2:
            assert np.abs(nominal - Xc).max() > 0.5  # the changes matter
    zero = random_worlds(jax.random.PRNGKey(0), 3, rollout, 0.0)  # strength 0: the nominal model
    nominal = replay_in_mujoco(rollout, standing, U)
    assert np.abs(np.asarray(rollout(x0, U, world=zero)) - nominal).max() < 1e-3
    full = {k: np.asarray(v) for k, v in random_worlds(jax.random.PRNGKey(0), 512, rollout, 1.0).items()}
    assert 0.4 <= full["friction"].min() and full["friction"].max() <= 1.2
    assert set(np.unique(full["delay"])) == {0, 1, 2, 3, 4}
    with pytest.raises(ValueError, match=r"world: expected batched"):
        rollout(standing, U[0], world=world)


def test_run_figures():
    from dynaflow.evaluate.transfer import run_figures

    dt, T = 0.02, 500
    t = np.arange(T + 1) * dt
    X = np.zeros((T + 1, 37))
    X[:, 2], X[:, 3] = 0.27, 1.0
    X[:, 0], X[:, 19] = 0.4 * t, 0.4  # 0.4 m/s straight ahead
    f = run_figures(X, (0.5, 0.0, 0.0), dt)
    assert f["upright"] and f["fell_at_s"] is None and f["distance_ratio"] == pytest.approx(0.8)
    assert f["drift_m"] == pytest.approx(1.0, abs=0.02) and f["heading_drift_rad"] == pytest.approx(0.0)
    assert f["on_speed"] and not run_figures(X, (0.6, 0.0, 0.0), dt)["on_speed"]  # within 25 %, or not
    Y = X.copy()
    Y[300:, 2] = 0.1  # the trunk drops at 6 s
    g = run_figures(Y, (0.5, 0.0, 0.0), dt)
    assert not g["upright"] and g["fell_at_s"] == pytest.approx(6.0)
    # a turn at 0.3 m/s and 0.4 rad/s, followed exactly
    yaw = 0.4 * t
    R = X.copy()
    R[:, 0] = np.concatenate([[0], np.cumsum(0.3 * np.cos(yaw[:-1]) * dt)])
    R[:, 1] = np.concatenate([[0], np.cumsum(0.3 * np.sin(yaw[:-1]) * dt)])
    R[:, 3], R[:, 6] = np.cos(yaw / 2), np.sin(yaw / 2)
    R[:, 19], R[:, 20] = 0.3 * np.cos(yaw), 0.3 * np.sin(yaw)
    h = run_figures(R, (0.3, 0.0, 0.4), dt)
    assert h["distance_ratio"] == pytest.approx(1.0, abs=1e-6) and h["drift_m"] < 1e-6
    assert abs(h["heading_drift_rad"]) < 1e-6 and h["on_speed"]
    assert run_figures(R, (0.0, 0.0, 0.0), dt)["distance_ratio"] is None


def test_evaluate_transfer_end_to_end(trained_run, trot_npz, tmp_path, capsys):
    from dynaflow.cli import main

    out = tmp_path / "report"
    worlds = "nominal,latency 20 ms,push 30 N,obs noise"
    args = ["evaluate", "--checkpoint", f"{trained_run.run_dir}/best", "--dataset", str(trot_npz)]
    args += ["--num-samples", "8", "--batch", "8", "--long-seconds", "0", "--no-best-action"]
    transfer = ["--transfer", "--transfer-seconds", "0.6", "--replan-every", "8"]
    assert main([*args, *transfer, "--transfer-worlds", worlds, "--out", str(out)]) == 0
    printed = capsys.readouterr().out  # after the progress: the headline (verdicts, then its tables)
    walks, table = printed.index("\n- Walks: "), printed.index("\n| metric |")  # then the full table
    assert walks < printed.index("\n- Transfer: ") < printed.index("\n### Does each gait walk?") < table
    doc = json.loads((out / "metrics.json").read_text())
    run = doc["runs"][0]
    result = run["transfer"]
    cells = result["cells"]
    commands = sum(len(c) for c in result["commands"].values())
    assert len([c for c in cells if c["mode"] == "open"]) == 3 * commands  # obs noise: closed loop only
    assert len([c for c in cells if c["mode"] == "closed"]) == 4 * commands
    assert {c["perturbation"] for c in cells} == set(worlds.split(","))
    for key in ("transfer_open_upright", "transfer_closed_upright", "transfer_closed_on_speed"):
        assert 0.0 <= run["metrics"][key] <= 1.0
    titles = [s["title"] for s in doc["sections"]]
    assert any(t.startswith("Transfer, open loop") for t in titles)
    assert any(t.startswith("Transfer, closed loop") for t in titles)
    assert (out / "plots" / "transfer.png").stat().st_size > 0
    assert "Transfer, closed loop" in (out / "report.md").read_text()
    assert main([*args, *transfer, "--transfer-worlds", "ice", "--out", str(tmp_path / "x")]) == 2


def test_holding_the_command_reduces_the_heading_error(policy):
    """The suite's closed loop with the command held against fed unchanged, 16 runs of a turn the small
    trot model under-steers (it turns at about a third of the commanded rate): holding asks for more and
    ends nearer the commanded heading (median over the last second), every run still upright."""
    from dynaflow.data.conditioning import HoldGains
    from dynaflow.evaluate.transfer import transfer_suite

    runs = {}
    for name, hold in (("off", None), ("on", HoldGains())):
        res = transfer_suite(
            policy,
            commands={"trot": [(0.3, 0.0, -0.3)]},
            perturbations=(perturbation_by_name("nominal"),),
            modes=("closed",),
            seconds=3.0,
            seeds=16,
            hold=hold,
        )
        assert res["hold"] == (None if hold is None else vars(hold))
        assert all(c["upright"] for c in res["cells"])
        runs[name] = np.median([abs(c["heading_drift_last_s_rad"]) for c in res["cells"]])
        assert res["summary"]["closed"]["all"]["heading_drift_abs_median"] is not None
    assert runs["on"] < runs["off"] - 0.03, runs
