"""Long-horizon generation (dynaflow.generate): schedules, open-loop chaining, closed-loop replanning
with pushes."""

from __future__ import annotations

import numpy as np
import pytest

from dynaflow.generate import Push, parse_pushes, parse_schedule, rollout_long, schedule_fn


def test_parse_schedule_and_its_errors():
    segs = parse_schedule("trot:0.5:4, turn:0.5:0.8:3,bound:0.1:0.2:0.3:2,stand:1")
    assert [(s.gait, s.command, s.seconds) for s in segs] == [
        ("trot", (0.5, 0.0, 0.0), 4.0),
        ("trot", (0.5, 0.0, 0.8), 3.0),
        ("bound", (0.1, 0.2, 0.3), 2.0),
        ("stand", (0.0, 0.0, 0.0), 1.0),
    ]
    at = schedule_fn(segs)
    np.testing.assert_allclose(at(0.0), [0.5, 0, 0, 1, 0, 0, 0])
    np.testing.assert_allclose(at(4.5), [0.5, 0, 0.8, 1, 0, 0, 0])
    np.testing.assert_allclose(at(8.0), [0.1, 0.2, 0.3, 0, 0, 1, 0])
    np.testing.assert_allclose(at(100.0), [0, 0, 0, 0, 0, 0, 0])  # the last segment holds
    for bad, msg in [
        ("gallop:0.5:4", "unknown gait 'gallop'"),
        ("trot:fast:4", "expected numbers after the gait"),
        ("trot:4", "expected gait:vx:seconds"),
        ("trot:0.5:0", "duration must be a finite number > 0"),
        ("", "at least one segment"),
    ]:
        with pytest.raises(ValueError, match=msg):
            parse_schedule(bad)


def test_parse_pushes():
    assert parse_pushes(["30N@5s", "20N@1.5s:0.1s/-x"]) == [
        Push((0.0, 30.0), 5.0, 0.2),
        Push((-20.0, 0.0), 1.5, 0.1),
    ]
    with pytest.raises(ValueError, match=r"--push: expected FORCE N@TIME s"):
        parse_pushes(["30@5"])
    with pytest.raises(ValueError, match=r"--push: '--5N@1s': FORCE, TIME and DURATION must be numbers"):
        parse_pushes(["--5N@1s"])
    with pytest.raises(ValueError, match=r"--push: '1e999N@1s': needs a finite force"):
        parse_pushes(["1e999N@1s"])


def test_open_loop_is_replayed(policy, trot_npz):
    from dynaflow.data import load_dataset

    ds = load_dataset(trot_npz)
    res = rollout_long(policy, ds.states[0, 0], ds.conditionings[0, 0], seconds=0.6)
    assert res.states.shape == (31, 37) and res.actions.shape == (30, 12) and res.cond.shape == (30, 7)
    assert len(res.latencies) == 4  # ceil(30 / H=8) windows
    s = res.summary()
    assert s["replay_same_drift_m"] < 1e-2 and s["replay_same_upright"] == s["upright"]
    with pytest.raises(ValueError, match="--push needs --closed-loop"):
        rollout_long(
            policy, ds.states[0, 0], ds.conditionings[0, 0], seconds=0.6, pushes=[Push((0, 1), 0, 1)]
        )


def test_closed_loop_replans_and_a_push_moves_the_robot(policy, trot_npz):
    from dynaflow.data import load_dataset

    ds = load_dataset(trot_npz)
    x0, c = ds.states[0, 0], ds.conditionings[0, 0]
    calm = rollout_long(policy, x0, c, seconds=1.0, closed_loop=True, replan_every=4)
    push = [Push((0.0, 60.0), 0.2, 0.2)]
    pushed = rollout_long(policy, x0, c, seconds=1.0, closed_loop=True, replan_every=4, pushes=push)
    assert calm.states.shape == (51, 37) and calm.actions.shape == (50, 12)
    assert len(calm.latencies) == 13  # ceil(50 / 4) replans
    np.testing.assert_allclose(calm.states[0], pushed.states[0])
    np.testing.assert_allclose(calm.states[:10], pushed.states[:10], atol=1e-6)  # identical until the push
    dy = pushed.states[20, 1] - calm.states[20, 1]
    assert dy > 0.01  # 60 N sideways for 0.2 s: ~0.8 m/s of sideways velocity on a 15 kg trunk
    s = pushed.summary()
    assert s["sampler_calls"] == 13 and s["latency_ms_median"] > 0 and s["real_time_factor"] > 0
    with pytest.raises(ValueError, match=r"--replan-every: expected 1..8"):
        rollout_long(policy, x0, c, seconds=1.0, closed_loop=True, replan_every=9)


# --- command holding (dynaflow.data.conditioning.CommandHold): pure NumPy ---


def _walking(yaw: np.ndarray, v_heading=(0.0, 0.0)) -> np.ndarray:
    """States (T, 37) with headings ``yaw`` and the heading-frame planar velocity ``v_heading``."""
    from dynaflow.data.quat import qyaw

    X = np.zeros((len(yaw), 37))
    X[:, 2], X[:, 3:7] = 0.27, qyaw(yaw)
    c, s = np.cos(yaw), np.sin(yaw)
    X[:, 19], X[:, 20] = c * v_heading[0] - s * v_heading[1], s * v_heading[0] + c * v_heading[1]
    return X


def test_held_command_turns_towards_the_target_heading_and_wraps():
    from dynaflow.data.conditioning import HoldGains, held_command

    g = HoldGains(heading=3.0, yaw_rate=0.0, speed=0.0, speed_integral=0.0)
    cmd, zero = np.array([0.5, 0.0, 0.2]), np.zeros(3)
    # the robot is 0.1 rad right of (below) its target: turn left by heading gain x error
    np.testing.assert_allclose(held_command(cmd, 0.1, zero, 0.0, g), [0.5, 0.0, 0.2 + 0.3])
    np.testing.assert_allclose(held_command(cmd, -0.1, zero, 0.0, g), [0.5, 0.0, 0.2 - 0.3])
    # an error just past +pi is a small negative one, not a turn the long way round
    np.testing.assert_allclose(held_command(cmd, 2 * np.pi - 0.1, zero, 0.0, g)[2], 0.2 - 0.3)
    # speed: proportional on vx, lateral on vy, integral on vx; the yaw-rate term on its error
    g2 = HoldGains(heading=0.0, yaw_rate=0.5, speed=1.0, speed_integral=2.0, lateral=0.5)
    out = held_command(cmd, 0.0, np.array([0.1, -0.2, 0.4]), 0.05, g2)
    np.testing.assert_allclose(out, [0.5 + 0.1 + 0.1, -0.1, 0.2 + 0.2])
    with pytest.raises(ValueError, match="hold gains: heading must be a finite number >= 0"):
        HoldGains(heading=-1.0)


def test_command_hold_measures_the_heading_across_the_seam_and_clamps():
    from dynaflow.data.conditioning import CommandHold, HoldGains
    from dynaflow.data.sources.gaits import conditioning
    from dynaflow.generate import command_ranges

    dt, g = 0.02, HoldGains(heading=3.0, speed=0.0, speed_integral=0.5, window=0.16, settle=0.0)
    start = np.pi - 0.05  # the heading crosses +-pi: measured -pi + 0.05 is 0.1 rad left of the target
    hold = CommandHold(_walking(np.array([start])), dt, g, command_ranges())
    trot = conditioning("trot", np.array([0.5, 0.0, 0.0]))[None]
    np.testing.assert_allclose(hold.conditioning(trot), trot)  # nothing measured yet: unchanged
    X = _walking(np.full(9, -np.pi + 0.05), (0.5, 0.0))[None]
    for _ in range(2):  # two intervals: the window (0.16 s) holds only these states
        hold.advance(X, np.tile([0.5, 0.0, 0.0], (1, 8, 1)))
    assert hold.heading_error()[0] == pytest.approx(-0.1, abs=1e-9)
    np.testing.assert_allclose(hold.conditioning(trot)[0, :3], [0.5, 0.0, -0.3], atol=1e-9)
    # a robot running slow: the integral raises vx, clamped to the trot's training range (vx <= 0.6)
    for _ in range(20):
        hold.advance(_walking(np.full(9, start), (0.1, 0.0))[None], np.tile([0.5, 0.0, 0.0], (1, 8, 1)))
    assert hold.integral[0] == pytest.approx(0.5)  # held at the integral limit
    np.testing.assert_allclose(hold.conditioning(trot)[0, :3], [0.6, 0.0, 0.0], atol=1e-9)
    # a new gait restarts the integral; the bound's range is narrower (yaw rate within +-0.3, no vy)
    bound = conditioning("bound", np.array([0.4, 0.0, 0.0]))[None]
    hold.advance(_walking(np.full(9, start + 0.5), (0.4, 0.0))[None], np.tile([0.4, 0.0, 0.0], (1, 8, 1)))
    np.testing.assert_allclose(hold.conditioning(bound)[0, :3], [0.4, 0.0, -0.3], atol=1e-9)
    assert hold.integral[0] == 0.0
    # standing is never corrected (its range is a point)
    stand = conditioning("stand", np.zeros(3))[None]
    np.testing.assert_allclose(hold.conditioning(stand), stand)


def test_closed_loop_records_the_held_command(policy):
    """Closed loop from the stand: the held conditioning stays in the trot's range, starts as the command
    (nothing measured yet) and turns the way the measured heading error says; the summary has the heading
    error and the achieved speed. (That holding reduces the heading error: tests/test_transfer.py.)"""
    from dynaflow.data.conditioning import wrap_angle, yaw_of
    from dynaflow.data.sources.gaits import conditioning
    from dynaflow.generate import HoldGains, command_ranges, default_start

    x0, c = default_start(policy), conditioning("trot", np.array([0.3, 0.0, 0.0]))
    off = rollout_long(policy, x0, c, seconds=2.0, closed_loop=True, hold=None)
    hold = HoldGains(window=0.02)  # one step: the heading of the last two states
    on = rollout_long(policy, x0, c, seconds=2.0, closed_loop=True, replan_every=4, hold=hold)
    assert off.hold is None and off.summary()["hold_command"] is None
    np.testing.assert_array_equal(off.cond_fed, off.cond)
    s = on.summary()
    assert s["hold_command"]["heading"] == 3.0 and s["commanded_speed_mps"] == pytest.approx(0.3)
    assert np.isfinite(s["heading_error_rad"]) and len(s["achieved_vx_vy_yaw_rate"]) == 3
    lo, hi = command_ranges()["trot"]
    assert np.all(on.cond_fed[:, :3] >= lo - 1e-6) and np.all(on.cond_fed[:, :3] <= hi + 1e-6)
    np.testing.assert_allclose(on.cond_fed[:4], on.cond[:4])  # the first replan: nothing measured yet
    np.testing.assert_array_equal(on.cond_fed[:, 3:], on.cond[:, 3:])  # the gait is never changed
    # each later replan (every 4 steps): yaw rate = 3 x (target - heading measured then)
    for k in range(4, len(on.cond_fed), 4):
        error = np.mean(wrap_angle(yaw_of(on.states[0]) - yaw_of(on.states[k - 1 : k + 1])))
        assert on.cond_fed[k, 2] == pytest.approx(np.clip(3.0 * error, lo[2], hi[2]), abs=1e-5)
