"""Φ(x0, U) (dynaflow.physics): standing, MJX vs MuJoCo C agreement, the implicit step against mjx.step,
gradients, batching, bad input, and the `dynaflow physics` self-check."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynaflow.physics import random_smooth_actions, replay_in_mujoco, upright
from dynaflow.physics.check import final_position_gradients
from dynaflow.robots.go2 import STATE_GROUPS

STAND_STEPS = 250  # 5 s at 50 Hz


def assert_same_trajectory(a, b):
    """Equal up to float32 rounding: 1e-5 on positions, 1e-3 on velocities (5 ms differences)."""
    a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_allclose(a[..., :19], b[..., :19], atol=1e-5)
    np.testing.assert_allclose(a[..., 19:], b[..., 19:], atol=1e-3)


@pytest.fixture(scope="module")
def agreement(rollout):
    """32 random smooth action sequences (H = 16) from home, through MJX and MuJoCo C ("same")."""
    U = random_smooth_actions(np.random.default_rng(0), 32, 16, amplitude=1.0)
    x0 = rollout.home_state()
    X = np.asarray(rollout(np.tile(x0, (32, 1)), U))
    Xc = replay_in_mujoco(rollout, x0, U, fidelity="same")
    return x0, U, X, Xc


@pytest.fixture(scope="module")
def settled(rollout):
    """A standing state with the feet in contact (0.5 s of zero action from home, in MuJoCo C)."""
    return replay_in_mujoco(rollout, rollout.home_state(), np.zeros((25, 12)))[-1]


def test_standing_mjx(rollout):
    """5 s of zero action in MJX, as chained windows of the agreement test's shape (one compile for both)."""
    x, X = np.tile(rollout.home_state(), (32, 1)), [rollout.home_state()[None]]
    while sum(len(w) for w in X) <= STAND_STEPS:
        window = np.asarray(rollout(x, np.zeros((32, 16, 12))))
        X.append(window[0, 1:])
        x = window[:, -1]
    X = np.concatenate(X)[: STAND_STEPS + 1]
    assert X.shape == (STAND_STEPS + 1, 37)
    z = X[:, 2]
    assert np.all(np.abs(z - 0.27) <= 0.03), (z.min(), z.max())
    assert upright(X).min() > 0.95


@pytest.mark.parametrize("fidelity", ["same", "reference"])
def test_standing_mujoco_c(rollout, fidelity):
    X = replay_in_mujoco(rollout, rollout.home_state(), np.zeros((STAND_STEPS, 12)), fidelity=fidelity)
    assert np.all(np.abs(X[:, 2] - 0.27) <= 0.03), (X[:, 2].min(), X[:, 2].max())
    assert upright(X).min() > 0.95
    # after the first second (the keyframe starts 1.8 cm in the floor and settles) it stands still:
    # no creep, no residual motion
    assert np.linalg.norm(X[-1, :2] - X[50, :2]) < 0.01
    assert np.abs(X[-1, 19:]).max() < 0.05


def test_mjx_agrees_with_mujoco_c(agreement):
    _, _, X, Xc = agreement
    err = np.abs(X - Xc)
    pos = err[..., np.r_[STATE_GROUPS["base_pos"], STATE_GROUPS["joint_pos"]]].max()
    quat = err[..., STATE_GROUPS["base_quat"]].max()
    vel = err[..., 19:].max()
    print(f"MJX vs MuJoCo C, 32 x H=16: max |pos| {pos:.2e}, |quat| {quat:.2e}, |vel| {vel:.2e}")
    assert pos <= 1e-3 and quat <= 1e-3
    assert vel <= 0.05  # reported; velocities are differences of positions over 5 ms
    # the actions did move the robot (the comparison is not between two standing robots)
    assert np.abs(X[:, -1, 7:19] - X[:, 0, 7:19]).max() > 0.2


def test_reference_fidelity_is_a_different_simulator(rollout, agreement):
    x0, U, X, _ = agreement
    Xr = replay_in_mujoco(rollout, x0, U[:4], fidelity="reference")
    assert Xr.shape == (4, 17, 37)
    assert np.all(np.isfinite(Xr))
    gap = np.abs(Xr[..., 7:19] - X[:4, :, 7:19]).max()
    assert 1e-6 < gap < 0.5  # close to the MJX model, but not the same numbers


def test_first_state_is_x0_and_quaternion_normalised(rollout, agreement):
    x0, U, X, _ = agreement
    np.testing.assert_allclose(X[:, 0], np.tile(x0, (32, 1)), atol=1e-6)
    x_bad = x0.copy()
    x_bad[3:7] *= 1.7
    Xb = np.asarray(rollout(x_bad, U[0]))
    np.testing.assert_allclose(np.linalg.norm(Xb[:, 3:7], axis=-1), 1.0, atol=1e-5)
    assert_same_trajectory(Xb, X[0])


def test_batch_equals_per_sample_and_shapes(rollout, agreement):
    x0, U, X, _ = agreement
    single = np.asarray(rollout(x0, U[3]))  # (37,), (H, 12) -> (H+1, 37)
    assert single.shape == (17, 37)
    assert_same_trajectory(single, X[3])
    one = np.asarray(rollout(x0[None], U[3][None]))  # (1, 37), (1, H, 12)
    assert one.shape == (1, 17, 37)
    assert_same_trajectory(one[0], X[3])
    broadcast = np.asarray(rollout(x0, U))  # (37,), (B, H, 12): x0 shared
    assert broadcast.shape == (32, 17, 37)
    assert_same_trajectory(broadcast, X)


def test_gradients_finite_and_nonzero_through_contacts(rollout, settled):
    """float32: d(final base position)/dU exists only through the foot contacts holding the trunk up and
    pushing it along (the gradient `dynaflow physics` checks, at the shapes its test uses: one compile)."""
    U = random_smooth_actions(np.random.default_rng(1), 4, 8, amplitude=0.5)
    gU, gx = final_position_gradients(rollout, np.tile(settled, (4, 1)), U)
    assert np.all(np.isfinite(gU)) and np.all(np.isfinite(gx))
    assert np.abs(gU).max() > 1e-3 and np.abs(gx[:, 7:19]).max() > 1e-3
    # forward velocity of the base responds to the legs only through friction at the feet
    assert np.abs(gU[:, :, [1, 4, 7, 10]]).max() > 1e-3


def test_gradients_match_finite_differences_float64(rollout_remat, settled):
    """float64, H = 4, remat on: analytic directional derivatives vs central differences."""
    r = rollout_remat
    rng = np.random.default_rng(2)
    with jax.enable_x64(True):
        U = jnp.asarray(0.3 * rng.standard_normal((2, 4, 12)))
        x0 = jnp.asarray(np.stack([settled, settled]))
        w = jnp.asarray(rng.standard_normal((4, 37)))

        def loss(U, x0):
            return jnp.sum(r(x0, U)[:, 1:] * w)

        value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))  # one compile for both
        _, (gU, gx) = value_and_grad(U, x0)

        def f(U, x0):
            return value_and_grad(U, x0)[0]

        eps = 1e-6
        for _ in range(3):
            v = jnp.asarray(rng.standard_normal(U.shape))
            fd = (f(U + eps * v, x0) - f(U - eps * v, x0)) / (2 * eps)
            an = jnp.sum(gU * v)
            assert abs(float(fd - an)) < 0.05 * abs(float(fd)), (float(fd), float(an))
            vx = np.zeros(x0.shape)
            vx[:, 7:] = rng.standard_normal((2, 30))
            vx = jnp.asarray(vx)
            fdx = (f(U, x0 + eps * vx) - f(U, x0 - eps * vx)) / (2 * eps)
            anx = jnp.sum(gx * vx)
            assert abs(float(fdx - anx)) < 0.05 * abs(float(fdx)), (float(fdx), float(anx))


def test_works_inside_jit_and_vmap(rollout, agreement):
    x0, U, X, _ = agreement
    out = jax.jit(lambda a, b: rollout(a, b))(jnp.tile(jnp.asarray(x0, jnp.float32), (32, 1)), U)
    assert_same_trajectory(out, X)


@pytest.mark.parametrize(
    ("x0_shape", "u_shape", "message"),
    [
        ((36,), (16, 12), r"x0: expected shape \(37,\) or \(B, 37\), got \(36,\)"),
        ((2, 3, 37), (16, 12), r"x0: expected shape \(37,\) or \(B, 37\), got \(2, 3, 37\)"),
        ((37,), (16, 11), r"U: expected shape \(H, 12\) or \(B, H, 12\) with H >= 1, got \(16, 11\)"),
        ((37,), (12,), r"U: expected shape \(H, 12\) or \(B, H, 12\) with H >= 1, got \(12,\)"),
        ((3, 37), (4, 16, 12), r"x0 and U: batch sizes differ, x0 \(3, 37\) vs U \(4, 16, 12\)"),
    ],
)
def test_bad_shapes_are_named(rollout, x0_shape, u_shape, message):
    with pytest.raises(ValueError, match=message):
        rollout(np.zeros(x0_shape), np.zeros(u_shape))
    with pytest.raises(ValueError, match=message.split(":")[0]):
        replay_in_mujoco(rollout, np.zeros(x0_shape), np.zeros(u_shape))


def test_non_finite_input_is_named(rollout):
    x0 = rollout.home_state()
    U = np.zeros((16, 12))
    U[3, 5] = np.nan
    with pytest.raises(ValueError, match=r"U: contains NaN or inf \(first at index \(3, 5\)\)"):
        rollout(x0, U)
    x0[20] = np.inf
    with pytest.raises(ValueError, match=r"x0: contains NaN or inf \(first at index \(20,\)\)"):
        rollout(x0, np.zeros((16, 12)))
    with pytest.raises(ValueError, match="x0: contains NaN or inf"):
        replay_in_mujoco(rollout, x0, np.zeros((16, 12)))


def test_bad_options_are_named():
    from dynaflow import create_go2_rollout

    with pytest.raises(ValueError, match="n_substeps: expected a positive integer, got 0"):
        create_go2_rollout(n_substeps=0)
    with pytest.raises(ValueError, match="action_scale"):
        create_go2_rollout(action_scale=-1.0)
    with pytest.raises(ValueError, match="fidelity: expected 'same' or 'reference', got 'best'"):
        replay_in_mujoco(create_go2_rollout(), np.zeros(37), np.zeros((2, 12)), fidelity="best")


def test_control_law_is_exposed(rollout):
    lo, hi = rollout.ctrl_range
    assert rollout.ctrl_dt == 0.02 and rollout.n_substeps == 4
    assert rollout.sim_dt == pytest.approx(0.005)
    np.testing.assert_allclose(rollout.default_pose, [0, 0.9, -1.8] * 4)
    U = np.full((1, 12), 100.0)
    np.testing.assert_allclose(rollout.targets(U)[0], hi)
    np.testing.assert_allclose(rollout.targets(-U)[0], lo)
    np.testing.assert_allclose(
        rollout.targets(np.ones((1, 12)))[0], rollout.default_pose + rollout.action_scale
    )


def test_pd_actuators_can_walk(rollout):
    """An open-loop trot (diagonal pairs at 3 Hz, thigh swing +-0.2 rad, knee lift 0.5 rad) carries
    the trunk more than 1 m in 4 s and keeps it upright, in both MuJoCo C fidelities: the PD gains
    and torque limits leave enough authority for locomotion. (Scripted gaits with feedback, in any
    direction, come with the demonstration library.)"""
    t = np.arange(250) * rollout.ctrl_dt
    U = np.zeros((250, 12))
    for leg, phase in enumerate([0.0, np.pi, np.pi, 0.0]):  # FL+RR, then FR+RL
        swing = np.maximum(np.sin(2 * np.pi * 3.0 * t + phase), 0.0)
        U[:, 3 * leg + 1] = (-0.2 * np.cos(2 * np.pi * 3.0 * t + phase) + 0.25 * swing) / rollout.action_scale
        U[:, 3 * leg + 2] = -0.5 * swing / rollout.action_scale
    for fidelity in ("same", "reference"):
        X = replay_in_mujoco(rollout, rollout.home_state(), U, fidelity=fidelity)
        travelled = np.linalg.norm(X[-1, :2] - X[50, :2])
        assert travelled > 1.0, (fidelity, travelled)
        assert upright(X).min() > 0.85 and X[50:, 2].min() > 0.18, fidelity


def test_implicit_step_computes_what_mjx_step_computes(rollout, agreement):
    """The implicit-gradient step (dynaflow.physics.implicit) changes only the backward pass: forward, it is
    MJX's own step (gradient="unrolled" rolls out through mjx.step)."""
    from dynaflow import create_go2_rollout

    x0, U, X, _ = agreement
    plain = create_go2_rollout(gradient="unrolled")
    Xp = np.asarray(plain(np.tile(x0, (4, 1)), U[:4]))
    assert_same_trajectory(Xp, X[:4])


def test_physics_self_check_command(capsys):
    """`dynaflow physics`: standing, MJX vs C and a gradient, with its verdict (a small batch: the gradient
    is the one the contact test above compiles)."""
    from dynaflow.cli import main

    assert main(["physics", "--batch", "4", "--horizon", "8"]) == 0
    out = capsys.readouterr().out
    assert "MJX vs MuJoCo C (same)" in out and "physics check: OK" in out
    with pytest.raises(SystemExit):
        main(["physics", "--batch", "0"])
    assert "argument --batch: expected a positive integer, got 0" in capsys.readouterr().err
