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
