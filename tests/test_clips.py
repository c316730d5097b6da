"""Motion clips in and out (`dynaflow data import`, `dynaflow export`): profiles, retargeting, the
round trip, and one-line errors. The tests write their own clips; nothing third-party is read."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynaflow.cli import main
from dynaflow.data import load_dataset
from dynaflow.data.sources import clips as C
from dynaflow.robots.go2 import FOOT_RADIUS, FOOT_SITES, HOME_QPOS, JOINT_NAMES, LEGS, STATE_DIM


def walk(seconds=2.0, dt=0.02, vx=0.4, yaw_rate=0.0, height=0.3, stride_hz=2.0):
    """A kinematic trot-like motion (T, 37): trunk moving at vx (body frame), turning at yaw_rate,
    legs swinging in diagonal pairs. Velocities are the exact derivatives."""
    t = np.arange(int(round(seconds / dt)) + 1) * dt
    yaw = yaw_rate * t
    if yaw_rate:
        x, y = vx / yaw_rate * np.sin(yaw), vx / yaw_rate * (1 - np.cos(yaw))
    else:
        x, y = vx * t, 0 * t
    X = np.zeros((len(t), STATE_DIM))
    X[:, 0], X[:, 1], X[:, 2] = x, y, height
    X[:, 3:7] = C.qyaw(yaw)
    phase = 2 * np.pi * stride_hz * t
    swing = np.array([1.0, -1.0, -1.0, 1.0])  # FL FR RL RR: diagonal pairs in phase
    for leg in range(4):
        X[:, 7 + 3 * leg] = 0.05 * swing[leg]
        X[:, 8 + 3 * leg] = 0.9 + 0.25 * swing[leg] * np.sin(phase)
        X[:, 9 + 3 * leg] = -1.8 + 0.3 * np.maximum(0, swing[leg] * np.cos(phase))
    X[:, 19] = vx * np.cos(yaw)
    X[:, 20] = vx * np.sin(yaw)
    X[:, 24] = yaw_rate
    X[:, 25:37] = np.gradient(X[:, 7:19], dt, axis=0)
    return X


def write_clip(path, frames, **keys):
    raw = {"LoopMode": "Wrap", "FrameDuration": 0.02, "EnableCycleOffsetPosition": True}
    raw.update(keys)
    raw["Frames"] = [list(map(float, f)) for f in frames]
    path.write_text(json.dumps(raw))
    return path


def test_go2_forward_kinematics_matches_mujoco():
    """The analytic feet of the Go2 (used to place clips on the floor and for toe positions) agree with
    MuJoCo's on the project's MJCF for random poses."""
    import mujoco

    from dynaflow.physics.model import load_go2_model

    m = load_go2_model()
    d = mujoco.MjData(m)
    rng = np.random.default_rng(0)
    sites = [m.site(name).id for name in FOOT_SITES]
    for _ in range(5):
        qpos = HOME_QPOS.copy()
        qpos[0:3] = rng.normal(size=3) * 0.3
        qpos[3:7] = rng.normal(size=4)
        qpos[3:7] /= np.linalg.norm(qpos[3:7])
        qpos[7:19] = rng.uniform(m.jnt_range[1:, 0], m.jnt_range[1:, 1])
        d.qpos[:] = qpos
        mujoco.mj_kinematics(m, d)
        np.testing.assert_allclose(C.feet_in_world(qpos[None])[0], d.site_xpos[sites], atol=1e-6)


def laikago_toe(leg: str, hip: float, upper: float, knee: float) -> np.ndarray:
    """The toe of a Laikago leg in its URDF base frame (x left, y up, z forward), straight from the
    joint origins and axes of pybullet_data's laikago_toes.urdf (an independent check of the profile)."""

    def rot(axis, a):
        axis = np.asarray(axis, float)
        k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k

    right = leg[1] == "R"
    front = leg[0] == "F"
    hip_origin = np.array([-0.0817145 if right else 0.0817145, 0, 0.242889 if front else -0.194401])
    upper_origin = np.array([-0.053565 if right else 0.055855, 0, 0])
    lower_origin = np.array([0.02069 if right else -0.02069, -0.20833, -0.1422])
    toe = np.array([0, -0.25, -0.022])
    r_hip = rot([0, 0, -1 if right else 1], hip)
    r_upper = r_hip @ rot([1, 0, 0], upper)
    r_lower = r_upper @ rot([1, 0, 0], knee)
    upper_joint = hip_origin + r_hip @ upper_origin
    return upper_joint, upper_joint + r_upper @ lower_origin + r_lower @ toe


def test_laikago_profile_matches_its_urdf():
    """The laikago profile (signs, offsets, base rotation) puts each toe where the Laikago URDF does:
    in the sagittal plane exactly (lengths and angles), and on the same side for abduction."""
    p = C.PROFILES["laikago"]
    rot_b = np.asarray(p.base_rotation)  # source base in our body frame
    rng = np.random.default_rng(1)
    for _ in range(20):
        clip_joints = rng.uniform([-0.3, -0.5, -2.0] * 4, [0.3, 1.0, -0.6] * 4)
        clip_joints[0::3] = 0.0  # sagittal first
        ours = C.feet_in_body(p.joints_to_go2(clip_joints), p.geometry)  # (4, 3), our body frame
        for i, leg in enumerate(p.legs):
            j = LEGS.index(leg)
            upper, toe = laikago_toe(leg, *clip_joints[3 * i : 3 * i + 3])
            rel = C.qrotate(rot_b, toe - upper)  # URDF frame -> our body frame
            hip_x = p.geometry.hip_x if leg[0] == "F" else -p.geometry.hip_x_rear
            np.testing.assert_allclose(ours[j][[0, 2]] - [hip_x, 0.0], rel[[0, 2]], atol=1e-3)
    for a in (-0.3, 0.3):  # abduction moves the toe the same way
        clip_joints = np.tile([0.0, 0.3, -1.2], 4)
        clip_joints[0::3] = a
        ours = C.feet_in_body(p.joints_to_go2(clip_joints), p.geometry)
        base = C.feet_in_body(p.joints_to_go2(np.tile([0.0, 0.3, -1.2], 4)), p.geometry)
        for leg in p.legs:
            j = LEGS.index(leg)
            _, t0 = laikago_toe(leg, 0.0, 0.3, -1.2)
            _, t1 = laikago_toe(leg, a, 0.3, -1.2)
            dy_urdf = C.qrotate(rot_b, t1 - t0)[1]
            assert np.sign(ours[j][1] - base[j][1]) == np.sign(dy_urdf), (leg, a)


@pytest.mark.parametrize("profile", ["go2", "a1", "laikago"])
def test_round_trip_export_then_import_is_exact(profile, tmp_path):
    """import(export(motion)) == motion, in each profile (AMP frames carry the velocities)."""
    X = walk(seconds=1.0, yaw_rate=0.6)
    p = C.PROFILES[profile]
    path = tmp_path / "clip.json"
    path.write_text(json.dumps(C.export_clip(X, p)))
    back = C.retarget(C.read_clip(path, p), place=False).states
    np.testing.assert_allclose(back, X, atol=1e-9)


def round_trip_cli(tmp_path, motion: np.ndarray, robot: str, capsys) -> np.ndarray:
    np.savez(
        tmp_path / "motion.npz", states=motion.astype(np.float32), actions=np.zeros((len(motion) - 1, 12))
    )
    assert (
        main(["export", str(tmp_path / "motion.npz"), "--robot", robot, "--out", str(tmp_path / "c.json")])
        == 0
    )
    assert (tmp_path / "c.actions.npz").is_file()
    args = ["data", "import", str(tmp_path / "c.json"), "--robot", robot, "--keep-height"]
    assert main([*args, "--out", str(tmp_path / "back.npz"), "--label", "trot"]) == 0
    capsys.readouterr()
    return load_dataset(tmp_path / "back.npz").states[0]


def test_round_trip_through_the_commands(tmp_path, capsys):
    X = walk(seconds=1.0).astype(np.float32).astype(np.float64)
    back = round_trip_cli(tmp_path, X, "laikago", capsys)
    np.testing.assert_allclose(back, X, atol=1e-5)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    legs=st.permutations(["FL", "FR", "RL", "RR"]),
    signs=st.lists(st.sampled_from([-1.0, 1.0]), min_size=3, max_size=3),
    offsets=st.lists(st.floats(-0.7, 0.7), min_size=3, max_size=3),
    axis=st.lists(st.floats(-1, 1), min_size=3, max_size=3),
    angle=st.floats(-3.0, 3.0),
    seed=st.integers(0, 2**16),
)
def test_round_trip_with_any_json_profile(tmp_path, legs, signs, offsets, axis, angle, seed):
    """A JSON profile of any leg order, sign, offset and base rotation round-trips exactly."""
    a = np.asarray(axis) if np.linalg.norm(axis) > 1e-3 else np.array([0.0, 0.0, 1.0])
    a = a / np.linalg.norm(a)
    rot = [np.cos(angle / 2), *(np.sin(angle / 2) * a)]
    prof = {
        "name": "mine",
        "legs": legs,
        "joint_sign": signs,
        "joint_offset": offsets,
        "base_rotation": rot,
        "geometry": {"hip_x": 0.2, "hip_y": 0.05, "hip_offset": 0.07, "thigh": 0.22, "calf": 0.23},
    }
    ppath = tmp_path / f"p{seed}.json"
    ppath.write_text(json.dumps(prof))
    p = C.load_profile(ppath)
    rng = np.random.default_rng(seed)
    X = walk(seconds=0.5, yaw_rate=rng.uniform(-1, 1), vx=rng.uniform(-0.5, 1.0))
    path = tmp_path / f"c{seed}.json"
    path.write_text(json.dumps(C.export_clip(X, p, quat_order="wxyz")))
    back = C.retarget(C.read_clip(path, p, quat_order="wxyz"), place=False).states
    np.testing.assert_allclose(back, X, atol=1e-9)


def test_looping_clip_tiles_with_its_cycle_offsets(tmp_path):
    """A one-cycle clip that walks 0.2 m and turns 90 degrees, tiled for 4 cycles: each cycle starts
    where the last ended (no jump at the seams) and turns by the clip's turn; heading-frame speed and
    yaw rate are the clip's."""
    X = walk(seconds=0.5, vx=0.4, yaw_rate=np.pi)  # half a second: 0.2 m, pi/2 rad
    clip = C.export_clip(X, C.PROFILES["go2"], loop_mode="Wrap", frame_format="pose")
    path = tmp_path / "turn.json"
    path.write_text(json.dumps(clip))
    r = C.retarget(C.read_clip(path, C.PROFILES["go2"]), seconds=2.0, place=False)
    S = r.states
    assert len(S) == 100 and r.info["cycles"] == pytest.approx(3.96, abs=1e-6)
    steps = np.linalg.norm(np.diff(S[:, :2], axis=0), axis=1)
    assert steps.max() < 1.5 * 0.4 * 0.02  # no jump
    yaw = np.unwrap(C.heading(S[:, 3:7]))
    np.testing.assert_allclose(yaw[::25] - yaw[0], np.arange(4) * np.pi / 2, atol=1e-6)
    from dynaflow.data.sources.gaits import heading_velocity

    np.testing.assert_allclose(heading_velocity(S, 0.02), [0.4, 0.0, np.pi], atol=0.02)
    # finite-difference velocities (pose frames): world linear, body angular
    np.testing.assert_allclose(np.abs(S[5:-5, 24]), np.pi, atol=1e-2)
    np.testing.assert_allclose(np.hypot(S[5:-5, 19], S[5:-5, 20]), 0.4, atol=1e-2)


def test_resampling_slerp_and_no_offsets(tmp_path):
    """30 fps frames resampled to 50 Hz: positions interpolate linearly, rotations by slerp; a clip
    without cycle offsets replays in place."""
    frames = []
    for k in range(4):
        q = C.qyaw(np.array(k * 0.3))  # w x y z
        frames.append([0.1 * k, 0, 0.3, q[1], q[2], q[3], q[0], *np.tile([0, 0.9, -1.8], 4)])
    path = write_clip(tmp_path / "c.json", frames, FrameDuration=1 / 30, EnableCycleOffsetPosition=False)
    clip = C.read_clip(path, C.PROFILES["go2"])
    r = C.retarget(clip, seconds=0.2, place=False)
    t = np.arange(len(r.states)) * 0.02
    tau = t % 0.1
    np.testing.assert_allclose(r.states[:, 0], tau * 3.0, atol=1e-9)
    np.testing.assert_allclose(np.unwrap(C.heading(r.states[:, 3:7])), tau * 9.0, atol=1e-9)


def test_placement_clamps_and_summary(tmp_path):
    """A clip 5 cm too high is put on the floor; a calf beyond its range is clamped (to the range widened
    by the soft limits' slack) and counted."""
    X = walk(seconds=0.4, height=0.40)
    X[3, 9] = -3.5  # FL calf below its range (-2.72)
    path = tmp_path / "high.json"
    path.write_text(json.dumps(C.export_clip(X, C.PROFILES["go2"], frame_format="pose")))
    r = C.retarget(C.read_clip(path, C.PROFILES["go2"]))
    info = r.info
    assert info["clamped_steps"] == 1 and info["clamps_per_joint"] == {JOINT_NAMES[2]: 1}
    assert info["clamp_max_excess_rad"] == pytest.approx(3.5 - 2.7227, abs=1e-3)
    assert r.states[3, 9] == pytest.approx(-2.7227 - C.LIMIT_SLACK, abs=1e-4)
    lowest = (C.feet_in_world(r.states[:, :19])[..., 2] - FOOT_RADIUS).min(axis=1)
    assert np.median(lowest) == pytest.approx(0.0, abs=1e-9)
    assert info["height_offset_m"] < -0.05
    assert info["foot_penetration_max_m"] == pytest.approx(max(0.0, -lowest.min()))


def test_import_command_labels_and_layout(tmp_path, capsys):
    """Gait labels give the gait library's 7-D layout; other labels a style one-hot; the summary lists
    them and each clip's measured speed."""
    for name, vx, yaw_rate in (("trot0", 0.5, 0.0), ("pace1", 0.3, 0.0), ("spin", 0.0, 1.0)):
        X = walk(seconds=0.6, vx=vx, yaw_rate=yaw_rate)
        (tmp_path / f"{name}.json").write_text(
            json.dumps(C.export_clip(X, C.PROFILES["a1"], loop_mode="Wrap"))
        )
    out = tmp_path / "gaits.npz"
    assert main(["data", "import", str(tmp_path / "trot0.json"), str(tmp_path / "pace1.json"),
                 "--robot", "a1", "--out", str(out), "--seconds", "3"]) == 0  # fmt: skip
    ds = load_dataset(out)
    summary = json.loads((tmp_path / "gaits.npz.json").read_text())
    assert summary["conditioning"][3:] == ["gait_trot", "gait_pace", "gait_bound", "gait_pronk"]
    assert ds.states.shape == (2, 150, 37)
    np.testing.assert_allclose(ds.conditionings[:, 0, 3:5], np.eye(2))
    np.testing.assert_allclose(ds.conditionings[:, 0, 0], [0.5, 0.3], atol=0.02)
    out2 = tmp_path / "styles.npz"
    assert main(["data", "import", str(tmp_path / "trot0.json"), str(tmp_path / "spin.json"),
                 "--robot", "a1", "--out", str(out2)]) == 0  # fmt: skip
    s2 = json.loads((tmp_path / "styles.npz.json").read_text())
    assert s2["labels"] == ["spin", "trot"] and s2["conditioning"][3:] == ["style_spin", "style_trot"]
    ds2 = load_dataset(out2)
    assert ds2.states.shape[1] == 500  # looping clips tile to 10 s by default
    assert ds2.conditionings[1, 0, 2] == pytest.approx(1.0, abs=0.02)
    printed = capsys.readouterr().out
    assert "spin" in printed and "frames" in printed


def test_qpos_rows_csv_and_npz(tmp_path, capsys):
    X = walk(seconds=0.5)
    np.savetxt(tmp_path / "rows.csv", X[:, :19], delimiter=",", header=",".join(["q"] * 19))
    np.savez(tmp_path / "rows.npz", qpos=X[:, :19])
    for name in ("rows.csv", "rows.npz"):
        clip = C.read_clip(tmp_path / name, C.PROFILES["go2"], fps=50)
        back = C.retarget(clip, place=False).states
        np.testing.assert_allclose(back[:, :19], X[:, :19], atol=1e-9)
    assert main(["data", "import", str(tmp_path / "rows.csv"), "--out", str(tmp_path / "o.npz")]) == 2
    assert "give it (--fps)" in capsys.readouterr().err


def bad_clip_cases(tmp_path):
    good = walk(seconds=0.1)
    frames = C.export_clip(good, C.PROFILES["go2"], frame_format="pose")["Frames"]
    (tmp_path / "notjson.json").write_text("{LoopMode: Wrap")
    (tmp_path / "nokey.json").write_text(json.dumps({"FrameDuration": 0.02}))
    write_clip(tmp_path / "short.json", [frames[0], frames[1][:12]])
    write_clip(tmp_path / "quat.json", [frames[0][:3] + [0.0, 0.0, 0.0, 2.0] + frames[0][7:], frames[1]])
    write_clip(tmp_path / "mode.json", frames, LoopMode="Loop")
    write_clip(tmp_path / "fd.json", frames, FrameDuration=0)
    write_clip(tmp_path / "nan.json", frames).write_text(
        json.dumps({"FrameDuration": 0.02, "Frames": [frames[0], frames[1][:18] + ["x"]]})
    )
    (tmp_path / "prof.json").write_text(json.dumps({"legs": ["FL", "FR", "RL"], "geometry": {}}))
    return [
        ("notjson.json", [], "notjson.json: not JSON"),
        ("nokey.json", [], "key 'Frames': missing"),
        ("short.json", [], "frame 1 has 12 numbers, frame 0 has 19"),
        ("quat.json", [], "frame 0: root quaternion"),
        ("mode.json", [], "key 'LoopMode': expected one of Wrap, Clamp"),
        ("fd.json", [], "key 'FrameDuration': expected a positive number"),
        ("nan.json", [], "frame 1 is not a list of numbers"),
        ("short.json", ["--robot", "cheetah"], "unknown robot profile 'cheetah'"),
        ("short.json", ["--robot", str(tmp_path / "prof.json")], "key 'legs': expected the four legs"),
        ("missing.json", [], "missing.json: no such clip file"),
    ]


def test_bad_clips_get_one_line_errors(tmp_path, capsys):
    for name, extra, message in bad_clip_cases(tmp_path):
        code = main(["data", "import", str(tmp_path / name), "--out", str(tmp_path / "o.npz"), *extra])
        err = capsys.readouterr().err
        assert code == 2, name
        assert message in err and len(err.strip().splitlines()) == 1, (name, err)
    assert not (tmp_path / "o.npz").exists()


def test_huge_numbers_and_sizes_are_one_line_errors_without_library_warnings(tmp_path, capsys):
    """A clip holding 1e300 (beyond a float32) or a number that retargeting makes too large, and a
    --seconds that would need more memory than there is: one line naming the frame / state / flag and the
    memory, exit 2, and no numpy warning (warnings are errors here, so one would end as exit 3)."""
    import warnings

    frames = C.export_clip(walk(seconds=0.3), C.PROFILES["go2"], frame_format="pose")["Frames"]
    huge = [list(f) for f in frames]
    huge[3][0] = 1e300
    write_clip(tmp_path / "huge.json", huge)
    fast = [list(f) for f in frames]
    fast[3][0] = 3e38  # a float32 still, but its finite-difference velocity is not
    write_clip(tmp_path / "fast.json", fast)
    write_clip(tmp_path / "walk.json", frames)
    cases = [
        (["huge.json"], "huge.json: key 'Frames': frame 3, number 0 is 1e+300, beyond a float32's range"),
        (["fast.json"], "fast.json: state dim 19 (base_linvel) at 0.04 s (step 2) is"),
        (["walk.json", "--seconds", "1e9"], "--seconds 1e+09: "),
    ]
    for extra, message in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            code = main(["data", "import", *[str(tmp_path / e) if e.endswith(".json") else e for e in extra],
                         "--out", str(tmp_path / "o.npz")])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (extra, err)
    assert "50,000,000,000 steps of 0.02 s would need about 69.8 TiB of memory, more than the" in err
    assert "give a shorter --seconds" in err
    assert not (tmp_path / "o.npz").exists()


def test_export_command_many_motions_and_errors(tmp_path, capsys):
    X = np.stack([walk(seconds=0.3), walk(seconds=0.3, vx=0.2)]).astype(np.float32)
    np.savez(tmp_path / "m.npz", states=X)
    assert main(["export", str(tmp_path / "m.npz"), "--out", str(tmp_path / "c.json"), "--format", "pose",
                 "--frame-duration", "0.03"]) == 0  # fmt: skip
    clips = [json.loads((tmp_path / f"c_{i:03d}.json").read_text()) for i in range(2)]
    assert [len(c["Frames"][0]) for c in clips] == [19, 19] and clips[0]["FrameDuration"] == 0.03
    assert len(clips[0]["Frames"]) == 11  # 0.3 s at 30 fps
    assert main(["export", str(tmp_path / "m.npz"), "--out", str(tmp_path / "c.json"), "--episode", "5"]) == 2
    assert "--episode 5: the file has motions 0..1" in capsys.readouterr().err
    np.savez(tmp_path / "bad.npz", states=np.zeros((4, 30)))
    assert main(["export", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "d.json")]) == 2
    assert "key 'states': expected shape (T, 37) or (N, T, 37)" in capsys.readouterr().err


def test_import_and_export_run_without_jax(tmp_path):
    """`dynaflow data import` and `dynaflow export` are NumPy and MuJoCo C only: neither they, the
    package they are called through nor the parser of every command imports JAX (which takes seconds to
    start), and an error is described without it too."""
    for i, vx in enumerate((0.3, 0.5)):
        (tmp_path / f"trot{i}.json").write_text(
            json.dumps(C.export_clip(walk(seconds=0.5, vx=vx), C.PROFILES["go2"]))
        )
    np.savez(tmp_path / "motion.npz", states=walk(seconds=0.3).astype(np.float32))
    code = f"""
import sys
from dynaflow.cli import main
d = {str(tmp_path)!r}
assert main(["data", "import", d + "/trot0.json", d + "/trot1.json", "--out", d + "/clips.npz"]) == 0
assert main(["export", d + "/motion.npz", "--out", d + "/motion.json"]) == 0
assert main(["data", "import", d + "/missing.json", "--out", d + "/none.npz"]) == 2
assert main(["export", d + "/motion.npz", "--out", d + "/bad.csv"]) == 2
jax = sorted(m for m in sys.modules if m == "jax" or m.startswith(("jax.", "jaxlib", "flax", "optax")))
assert not jax, jax[:5]
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert load_dataset(tmp_path / "clips.npz").states.shape[0] == 2
    assert json.loads((tmp_path / "motion.json").read_text())["Frames"]
