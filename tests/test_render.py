"""Offscreen rendering of Go2 motions (dynaflow.render): frames, tracking camera, ghost, video files."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from dynaflow import render
from dynaflow.physics import load_go2_model
from dynaflow.render import configure_gl, render_frames, render_motion, write_video

W, H = 160, 90


@pytest.fixture(scope="module")
def gl() -> str:
    try:
        return configure_gl()
    except RuntimeError as err:
        pytest.skip(f"no OpenGL backend for offscreen rendering: {err}")


@pytest.fixture(scope="module")
def model():
    return load_go2_model()


@pytest.fixture(scope="module")
def home(model) -> np.ndarray:
    """5 states (T, 37) standing still in the home pose."""
    x = np.zeros(37)
    x[:19] = model.key("home").qpos
    return np.tile(x, (5, 1))


def robot_fraction(model, seg: np.ndarray) -> np.ndarray:
    """Per frame, the fraction of the image's central half (H/2 x W/2) covered by robot geoms."""
    robot = np.flatnonzero(model.body_rootid[model.geom_bodyid] != 0)
    h, w = seg.shape[1:]
    centre = seg[:, h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]
    return np.isin(centre, robot).mean(axis=(1, 2))


def test_configure_gl(gl, monkeypatch):
    assert os.environ["MUJOCO_GL"] == gl
    assert configure_gl() == gl  # idempotent
    monkeypatch.setenv("MUJOCO_GL", "off")
    with pytest.raises(RuntimeError, match=r"^render: .*libosmesa6.*MUJOCO_GL=egl") as info:
        configure_gl()
    assert "\n" not in str(info.value)
    # No OSMesa library (simulated): the same one-line advice.
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    monkeypatch.setattr(render, "_configured", None)
    monkeypatch.setattr(render, "_can_load", lambda *names: False)
    with pytest.raises(RuntimeError, match=r"^render: .*no OSMesa library.*apt-get install libosmesa6"):
        configure_gl()


def test_home_frames_not_blank_robot_in_view(gl, model, home):
    frames = render_frames(home, width=W, height=H, model=model)
    assert frames.shape == (5, H, W, 3) and frames.dtype == np.uint8
    assert frames.reshape(5, -1).std(axis=1).min() > 10
    seg = render_frames(home, width=W, height=H, model=model, segmentation=True)
    assert seg.shape == (5, H, W) and seg.dtype == np.int32
    assert robot_fraction(model, seg).min() > 0.05
    # qpos-only input renders the same images.
    np.testing.assert_array_equal(render_frames(home[:2, :19], width=W, height=H, model=model), frames[:2])
    # fast: no shadows/reflection/MSAA, a plainer but still non-blank image; the model is left as it was.
    samples = model.vis.quality.offsamples
    fast = render_frames(home[:2], width=W, height=H, model=model, fast=True)
    assert fast.shape == (2, H, W, 3) and fast.reshape(2, -1).std(axis=1).min() > 10
    assert np.abs(fast.astype(int) - frames[:2]).mean() > 1.0
    assert model.vis.quality.offsamples == samples


def test_tracking_camera_keeps_moved_robot_in_view(gl, model, home):
    moved = home.copy()
    moved[:, :2] += 3.0  # 3 m away in x and y
    frames = render_frames(moved, width=W, height=H, model=model)
    assert frames.reshape(5, -1).std(axis=1).min() > 10
    seg = render_frames(moved, width=W, height=H, model=model, segmentation=True)
    assert robot_fraction(model, seg).min() > 0.05
    # Negative control: MuJoCo's default free camera (id -1) does not follow it.
    fixed = render_frames(moved, width=W, height=H, model=model, camera=-1, segmentation=True)
    assert robot_fraction(model, fixed).max() < 0.01


def test_tracking_camera_follows_walk(gl, model, home):
    walk = np.tile(home[0], (20, 1))
    walk[:, 0] = 3.0 + 2.0 * 0.02 * np.arange(20)  # 2 m/s along x, starting 3 m away
    walk[:, 1] = -1.0 * 0.02 * np.arange(20)  # and 1 m/s sideways
    seg = render_frames(walk, width=W, height=H, model=model, segmentation=True)
    assert robot_fraction(model, seg).min() > 0.05


def test_ghost(gl, model, home):
    plain = render_frames(home[:3], width=W, height=H, model=model)
    ghost = home.copy()
    ghost[:, 1] += 0.4
    ghost[:, 8::3] += 0.3  # different thigh angles too
    with_ghost = render_frames(home[:3], ghost=ghost[:3], width=W, height=H, model=model)
    assert with_ghost.shape == plain.shape
    assert np.abs(with_ghost.astype(int) - plain).mean() > 1.0
    # A ghost of another length clips both to the shorter one.
    assert render_frames(home, ghost=ghost[:2], width=W, height=H, model=model).shape[0] == 2


def test_invalid_inputs(model, home):
    with pytest.raises(ValueError, match=r"states: .*\(5, 20\)"):
        render_frames(np.zeros((5, 20)), model=model)
    with pytest.raises(ValueError, match=r"states: .*\(37,\)"):
        render_frames(home[0], model=model)
    bad = home.copy()
    bad[3, 5] = np.nan
    with pytest.raises(ValueError, match=r"states: non-finite .* row 3"):
        render_frames(bad, model=model)
    with pytest.raises(ValueError, match=r"ghost: "):
        render_frames(home, ghost=np.zeros((5, 7)), model=model)
    with pytest.raises(ValueError, match=r"width: "):
        render_frames(home, width=0, model=model)


def _noise_frames(t: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


def test_write_gif_and_mp4(tmp_path):
    import imageio.v2 as iio
    from PIL import Image

    frames = _noise_frames(6, H, W)
    gif = write_video(frames, tmp_path / "a.gif", fps=50)
    back = iio.mimread(gif)
    assert len(back) == 6 and back[0].shape[:2] == (H, W)
    assert Image.open(gif).info["duration"] == 20

    mp4 = write_video(frames, tmp_path / "a.mp4", fps=50)
    with iio.get_reader(mp4, format="FFMPEG") as reader:
        assert reader.get_meta_data()["fps"] == 50
        back = list(reader.iter_data())
    assert len(back) == 6 and back[0].shape == (H, W, 3)

    odd = write_video(_noise_frames(3, 45, 81), tmp_path / "odd.mp4", fps=25)  # padded to even
    with iio.get_reader(odd, format="FFMPEG") as reader:
        back = list(reader.iter_data())
    assert len(back) == 3 and back[0].shape == (46, 82, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif", "a.mp4", "odd.mp4"]  # no temp files
    umask = os.umask(0)
    os.umask(umask)
    assert (mp4.stat().st_mode & 0o777) == 0o666 & ~umask  # not mkstemp's 0600


def test_write_errors(tmp_path, monkeypatch, home):
    frames = _noise_frames(2, 8, 8)
    with pytest.raises(ValueError, match=r"x\.avi.*\.mp4, \.gif"):
        write_video(frames, tmp_path / "x.avi")
    with pytest.raises(ValueError, match=r"x\.webm.*\.mp4"):
        render_motion(home, tmp_path / "x.webm")  # checked before rendering
    with pytest.raises(ValueError, match=r"frames: "):
        write_video(frames.astype(np.float32), tmp_path / "x.gif")
    with pytest.raises(ValueError, match=r"fps: "):
        write_video(frames, tmp_path / "x.gif", fps=0)

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(render, "_write_gif", broken)
    with pytest.raises(OSError, match="disk full"):
        write_video(frames, tmp_path / "x.gif")
    assert list(tmp_path.iterdir()) == []  # a failed write leaves nothing behind


def test_render_motion(gl, tmp_path, home):
    import imageio.v2 as iio

    motion = home[:4].copy()
    motion[:, 8::3] += np.linspace(0.0, 0.4, 4)[:, None]  # thighs swing: every frame differs
    out = render_motion(motion, tmp_path / "sub" / "m.gif", ghost=home, width=96, height=64)
    assert out == tmp_path / "sub" / "m.gif"
    back = iio.mimread(out)
    assert len(back) == 4 and back[0].shape[:2] == (64, 96)
    mp4 = render_motion(motion, tmp_path / "m.mp4", width=96, height=64, fast=True)  # streamed to ffmpeg
    with iio.get_reader(mp4, format="FFMPEG") as reader:
        assert len(list(reader.iter_data())) == 4


def test_backend_chosen_when_mujoco_gl_unset(gl):
    """A fresh process without MUJOCO_GL: mujoco imports with GLFW, configure_gl switches it."""
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    code = (
        "import numpy as np; from dynaflow.render import render_frames; import mujoco;"
        "from dynaflow.physics import load_go2_model; m = load_go2_model();"
        "f = render_frames(m.key('home').qpos[None], width=64, height=48, model=m);"
        "import os; print(os.environ['MUJOCO_GL'], f.std() > 10, mujoco.GLContext.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    backend, ok, module = out.stdout.split()[-3:]
    assert backend in ("osmesa", "egl") and ok == "True" and module == f"mujoco.{backend}"
