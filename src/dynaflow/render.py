"""Offscreen rendering of Go2 motions to video (MuJoCo's ``mujoco.Renderer``).

A motion is an array of states, one per control step (50 Hz, ``ctrl_dt = 0.02``): ``(T, 37)``
``[qpos(19), qvel(18)]`` or ``(T, 19)`` qpos only. Each state becomes one frame, so a video at
``fps=50`` plays in real time.

GL backend. MuJoCo chooses its OpenGL context class from ``MUJOCO_GL`` once, when ``mujoco`` is
imported (``mujoco/rendering/classic/gl_context.py``); unset means GLFW, which needs a display.
``mujoco.Renderer`` looks the class up again on every construction, though, so
:func:`configure_gl` can still choose a headless backend after ``import mujoco`` (which
``dynaflow`` does at import): it sets ``MUJOCO_GL`` (and ``PYOPENGL_PLATFORM``) and re-executes
MuJoCo's ``gl_context`` module. Only PyOpenGL fixes its platform for good, on its first import,
which no MuJoCo backend does before a context is created. A ``MUJOCO_GL`` the user set is respected.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import glob
import importlib
import math
import os
import sys
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType

import mujoco
import numpy as np

from dynaflow.fileio import atomic_path
from dynaflow.physics import load_go2_model
from dynaflow.robots.go2 import NQ as _NQ
from dynaflow.robots.go2 import NV as _NV

__all__ = ["configure_gl", "render_frames", "render_motion", "write_video"]

#: Tracking camera: distance to the look-at point (m), azimuth and elevation (degrees).
TRACK_DISTANCE = 1.4
TRACK_AZIMUTH = -130.0
TRACK_ELEVATION = -20.0
#: Half-width (s) of the centred moving average the look-at point follows (no lag, no jitter).
TRACK_SMOOTH_S = 0.25
CONTROL_DT = 0.02
#: The demonstration ("ghost") is drawn in this translucent tint.
GHOST_RGBA = (0.25, 0.65, 1.0, 0.3)
VIDEO_SUFFIXES = (".mp4", ".gif")

_HINT = "install libosmesa6 (apt-get install libosmesa6) or set MUJOCO_GL=egl on a GPU machine"
_OFF = ("disable", "disabled", "off", "false", "0")
# MUJOCO_GL value -> module whose GLContext MuJoCo uses for it (Linux; anything else means GLFW).
_BACKEND_MODULE = {"osmesa": "mujoco.osmesa", "egl": "mujoco.egl"}
_configured: tuple[str, str] | None = None  # (MUJOCO_GL, PYOPENGL_PLATFORM) of the last success


# ---------------------------------------------------------------------------------------------
# GL backend
# ---------------------------------------------------------------------------------------------


def _can_load(*names: str) -> bool:
    """Whether one of the shared libraries (sonames or ``find_library`` stems) can be dlopen'ed."""
    for name in names:
        candidates = [name] if ".so" in name else [ctypes.util.find_library(name)]
        for candidate in candidates:
            if not candidate:
                continue
            try:
                ctypes.CDLL(candidate)
                return True
            except OSError:
                continue
    return False


def _nvidia_egl_usable() -> bool:
    """An NVIDIA GPU is present and its EGL driver (``libEGL_nvidia``) is installed."""
    gpu = os.path.exists("/proc/driver/nvidia/version") or bool(glob.glob("/dev/nvidia[0-9]*"))
    return gpu and _can_load("libEGL.so.1", "EGL") and _can_load("libEGL_nvidia.so.0", "EGL_nvidia")


def _gl_context_module() -> ModuleType:
    """MuJoCo's module holding ``GLContext`` (moved to ``mujoco.rendering.classic`` in 3.x)."""
    try:
        return importlib.import_module("mujoco.rendering.classic.gl_context")
    except ImportError:
        return importlib.import_module("mujoco.gl_context")


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def configure_gl() -> str:
    """Make ``mujoco.Renderer`` use a headless OpenGL backend; return its name (``MUJOCO_GL``).

    A ``MUJOCO_GL`` set by the user is respected. Unset (or empty), it becomes ``egl`` when an
    NVIDIA GPU with its EGL driver is present and ``osmesa`` (CPU software rendering) otherwise.
    The choice is checked by creating a tiny GL context. Safe to call repeatedly; cheap after the
    first success. Raises ``RuntimeError`` (one line) when no backend can be created.
    """
    global _configured
    requested = os.environ.get("MUJOCO_GL", "").strip().lower()
    if _configured is not None and _configured == (requested, os.environ.get("PYOPENGL_PLATFORM", "")):
        return requested
    if requested in _OFF:
        raise RuntimeError(f"render: MUJOCO_GL={requested!r} disables rendering; {_HINT}")
    backend = requested or ("egl" if _nvidia_egl_usable() else "osmesa")
    if backend == "osmesa" and not _can_load("libOSMesa.so.8", "libOSMesa.so.6", "OSMesa"):
        raise RuntimeError(f"render: MUJOCO_GL=osmesa but no OSMesa library was found; {_HINT}")
    if backend in _BACKEND_MODULE:
        platform = os.environ.get("PYOPENGL_PLATFORM", "").strip().lower() or backend
        if platform != backend:
            raise RuntimeError(
                f"render: PYOPENGL_PLATFORM={platform!r} conflicts with MUJOCO_GL={backend!r}; "
                f"unset PYOPENGL_PLATFORM or set both to the same backend ({_HINT})"
            )
        loaded = sys.modules.get("OpenGL.platform")
        loaded_name = type(getattr(loaded, "PLATFORM", None)).__name__.lower()
        if loaded is not None and not loaded_name.startswith(backend):
            raise RuntimeError(
                f"render: PyOpenGL was already initialised for another platform ({loaded_name}); set "
                f"MUJOCO_GL={backend} and PYOPENGL_PLATFORM={backend} before Python starts"
            )
        os.environ["PYOPENGL_PLATFORM"] = backend
    os.environ["MUJOCO_GL"] = backend

    gl_context = _gl_context_module()
    want = _BACKEND_MODULE.get(backend, "mujoco.glfw")
    current = getattr(gl_context, "GLContext", None)
    try:
        if current is None or current.__module__ != want:
            # MuJoCo read MUJOCO_GL at import time: re-run its backend selection with the new value.
            importlib.reload(gl_context)
            mujoco.GLContext = gl_context.GLContext
        probe = gl_context.GLContext(16, 16)
        probe.make_current()
        probe.free()
    except Exception as err:  # any backend failure becomes one clear line
        raise RuntimeError(
            f"render: cannot create a MUJOCO_GL={backend} OpenGL context ({_first_line(err)}); {_HINT}"
        ) from err
    _configured = (backend, os.environ.get("PYOPENGL_PLATFORM", ""))
    if backend == "osmesa":
        _stop_compilation_cache_writes()
    return backend


def _stop_compilation_cache_writes() -> None:
    """OSMesa loads Mesa's own LLVM (llvmpipe) into this process. Once, in CI, a later XLA compile
    aborted the process while serialising its executable for JAX's persistent compilation cache; the
    cause is not established, the two LLVMs in one process are the suspect. Rendering comes last in
    every command, so this process stops writing cache entries (it still reads them)."""
    jax = sys.modules.get("jax")
    if jax is not None:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", float("inf"))


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def check_motion(name: str, value, rows: int | None = None) -> np.ndarray:
    """A finite (T, 37) or (T, 19) float array; returns its qpos columns (T, 19)."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected numbers, got {np.asarray(value).dtype}") from None
    if arr.ndim != 2 or arr.shape[1] not in (_NQ + _NV, _NQ) or arr.shape[0] < 1:
        raise ValueError(
            f"{name}: expected a 2-D array (T >= 1, {_NQ + _NV}) states or (T, {_NQ}) qpos, got shape "
            f"{arr.shape}"
        )
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise ValueError(f"{name}: non-finite values (NaN/inf) in row {int(np.argmax(bad))} of {arr.shape}")
    return arr[:, :_NQ]


def _check_size(width: int, height: int) -> None:
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")


def _moving_average(x: np.ndarray, half: int) -> np.ndarray:
    """Centred moving average along axis 0 with edge padding (same length as ``x``)."""
    if half <= 0 or len(x) < 2:
        return x.copy()
    padded = np.pad(x, ((half, half), (0, 0)), mode="edge")
    kernel = np.ones(2 * half + 1) / (2 * half + 1)
    return np.stack([np.convolve(padded[:, j], kernel, mode="valid") for j in range(x.shape[1])], axis=1)


def _track_lookat(qpos: np.ndarray) -> np.ndarray:
    """Per-frame look-at points: the base position, smoothed (centred, so it does not lag)."""
    return _moving_average(qpos[:, :3], int(round(TRACK_SMOOTH_S / CONTROL_DT)))


def _pose(model: mujoco.MjModel, data: mujoco.MjData, qpos: np.ndarray) -> None:
    """Set ``qpos`` and compute what drawing needs (geom poses, COM for tracking cameras, lights)."""
    data.qpos[:] = qpos
    mujoco.mj_kinematics(model, data)
    mujoco.mj_comPos(model, data)
    mujoco.mj_camlight(model, data)


def _prepare(states, ghost, width: int, height: int, model: mujoco.MjModel | None):
    """Checked inputs: qpos (T, 19), ghost qpos (same T) or None, and the model."""
    qpos = check_motion("states", states)
    gqpos = None if ghost is None else check_motion("ghost", ghost)
    if gqpos is not None and len(gqpos) != len(qpos):
        n = min(len(qpos), len(gqpos))
        qpos, gqpos = qpos[:n], gqpos[:n]
    _check_size(width, height)
    model = load_go2_model() if model is None else model
    if model.nq != _NQ:
        raise ValueError(f"model: expected the Go2 model with nq={_NQ}, got nq={model.nq}")
    return qpos, gqpos, model


def _iter_frames(
    qpos: np.ndarray,
    gqpos: np.ndarray | None,
    width: int,
    height: int,
    model: mujoco.MjModel,
    camera: str | int,
    segmentation: bool,
    fast: bool,
) -> Iterator[np.ndarray]:
    """Yield one frame per row of ``qpos``, reusing one buffer (consume it before the next)."""
    vis = model.vis.global_
    vis.offwidth, vis.offheight = max(vis.offwidth, width), max(vis.offheight, height)
    configure_gl()
    samples = model.vis.quality.offsamples
    try:
        if fast:
            model.vis.quality.offsamples = 0  # read once, when the GL context's buffers are made
        renderer = mujoco.Renderer(model, height=height, width=width)
    except Exception as err:  # GL failures become one clear line
        raise RuntimeError(
            f"render: cannot create the MuJoCo renderer ({_first_line(err)}); {_HINT}"
        ) from err
    finally:
        model.vis.quality.offsamples = samples

    try:
        if segmentation:
            renderer.enable_segmentation_rendering()
        data = mujoco.MjData(model)
        gdata = mujoco.MjData(model) if gqpos is not None else None
        option = mujoco.MjvOption()
        perturb = mujoco.MjvPerturb()
        cam: mujoco.MjvCamera | str | int = camera
        lookat = None
        if isinstance(camera, str) and camera == "track":
            cam = mujoco.MjvCamera()
            cam.type = mujoco.mjtCamera.mjCAMERA_FREE
            cam.distance, cam.azimuth, cam.elevation = TRACK_DISTANCE, TRACK_AZIMUTH, TRACK_ELEVATION
            lookat = _track_lookat(qpos)
        buffer = np.empty((height, width, 3), dtype=np.uint8)
        scene = renderer.scene
        for t in range(len(qpos)):
            _pose(model, data, qpos[t])
            if lookat is not None:
                cam.lookat[:] = lookat[t]
            renderer.update_scene(data, camera=cam, scene_option=option)
            if fast:
                scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
                scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
            if gdata is not None:
                _pose(model, gdata, gqpos[t])
                first = scene.ngeom
                mujoco.mjv_addGeoms(model, gdata, option, perturb, mujoco.mjtCatBit.mjCAT_DYNAMIC, scene)
                for i in range(first, scene.ngeom):
                    scene.geoms[i].rgba[:] = GHOST_RGBA
            if segmentation:
                seg = renderer.render()
                yield np.where(seg[..., 1] == mujoco.mjtObj.mjOBJ_GEOM, seg[..., 0], -1).astype(np.int32)
            else:
                yield renderer.render(out=buffer)
    finally:
        renderer.close()


def render_frames(
    states,
    ghost=None,
    width: int = 640,
    height: int = 360,
    model: mujoco.MjModel | None = None,
    camera: str | int = "track",
    *,
    segmentation: bool = False,
    fast: bool = False,
) -> np.ndarray:
    """Render a motion offscreen: ``(T, height, width, 3)`` uint8, one frame per state.

    Args:
      states: ``(T, 37)`` states or ``(T, 19)`` qpos, finite.
      ghost: optional demonstration, same layout, drawn as a translucent tinted copy of the robot.
        If its length differs from ``states``, both are clipped to the shorter one.
      width, height: frame size in pixels. The model's offscreen buffer is enlarged if needed.
      model: an ``MjModel`` with visual geoms; the project's Go2 scene by default.
      camera: ``"track"`` for a free camera that follows the (smoothed) base at a fixed distance
        and angle, so the robot stays in view however far it walks; otherwise a camera name or id
        of ``model`` (the Go2 MJCF's own camera named ``track`` is then reachable by id only).
      segmentation: return ``(T, height, width)`` int32 geom ids instead (-1: no geom, e.g. sky).
      fast: no shadows, floor reflection or multisampling: several times faster with software
        (OSMesa) rendering, plainer images.
    """
    qpos, gqpos, model = _prepare(states, ghost, width, height, model)
    shape = (len(qpos), height, width) if segmentation else (len(qpos), height, width, 3)
    frames = np.empty(shape, dtype=np.int32 if segmentation else np.uint8)
    for t, frame in enumerate(_iter_frames(qpos, gqpos, width, height, model, camera, segmentation, fast)):
        frames[t] = frame
    return frames


# ---------------------------------------------------------------------------------------------
# Video files
# ---------------------------------------------------------------------------------------------


def check_video_path(path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        supported = ", ".join(VIDEO_SUFFIXES)
        raise ValueError(f"{path}: unsupported video suffix {path.suffix!r} (supported: {supported})")
    return path


def _check_fps(fps: float) -> float:
    number = isinstance(fps, (int, float, np.number)) and not isinstance(fps, bool)
    if not (number and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps: expected a positive finite number, got {fps!r}")
    return float(fps)


def _write_mp4(frames: Iterable[np.ndarray], path: Path, fps: float) -> None:
    """H.264/yuv420p through imageio-ffmpeg, streamed frame by frame."""
    import imageio_ffmpeg

    writer = None
    try:
        for frame in frames:
            h, w = frame.shape[:2]
            if h % 2 or w % 2:  # yuv420p needs an even size: repeat the last row/column
                frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            if writer is None:
                writer = imageio_ffmpeg.write_frames(
                    str(path),
                    (frame.shape[1], frame.shape[0]),
                    fps=fps,
                    codec="libx264",
                    pix_fmt_in="rgb24",
                    pix_fmt_out="yuv420p",
                    quality=None,
                    macro_block_size=2,
                    ffmpeg_log_level="error",
                    output_params=["-crf", "20", "-movflags", "+faststart", "-f", "mp4"],
                )
                with warnings.catch_warnings():
                    # JAX warns on any fork; this one is subprocess's fork + immediate exec of ffmpeg,
                    # which runs no Python (and so none of JAX's threads' state) in the child
                    warnings.filterwarnings(
                        "ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning
                    )
                    writer.send(None)
            writer.send(np.ascontiguousarray(frame))
    finally:
        if writer is not None:
            writer.close()


def _write_gif(frames: Iterable[np.ndarray], path: Path, fps: float) -> None:
    """Looping GIF through Pillow (which keeps every frame, palettised, until it writes)."""
    from PIL import Image

    # GIF stores delays in 1/100 s: 50 fps -> 20 ms exactly; others are rounded to 10 ms.
    duration = max(10, int(round(100.0 / fps)) * 10)
    images = [Image.fromarray(np.array(frame)) for frame in frames]
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)


def _write_atomic(frames: Iterable[np.ndarray], path: Path, fps: float) -> Path:
    """Write the video to a temporary file beside ``path``, then rename it over ``path``."""
    with atomic_path(path, suffix=path.suffix.lower()) as tmp:
        (_write_mp4 if path.suffix.lower() == ".mp4" else _write_gif)(frames, tmp, fps)
    return path


def write_video(frames, path, fps: float = 50) -> Path:
    """Write ``(T, H, W, 3)`` uint8 frames to ``path`` (``.mp4`` or ``.gif``); return the path.

    ``.mp4``: H.264 (libx264 via imageio-ffmpeg), yuv420p; an odd width/height is padded by one
    edge pixel. ``.gif``: Pillow, looping, frame delay ``1/fps`` rounded to GIF's 10 ms steps
    (Pillow merges consecutive identical frames into one longer frame). The file is written to a
    temporary name in the same directory and renamed, so a failed write leaves no partial file.
    The parent directory is created if missing.
    """
    path = check_video_path(path)
    fps = _check_fps(fps)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1 or frames.dtype != np.uint8:
        got = f"{frames.dtype} array of shape {frames.shape}"
        raise ValueError(f"frames: expected a (T >= 1, H, W, 3) uint8 array, got a {got}")
    return _write_atomic(frames, path, fps)


def render_motion(
    states, out, ghost=None, fps: float = 50, width: int = 640, height: int = 360, *, fast: bool = False
) -> Path:
    """Render ``states`` (and an optional ``ghost`` demonstration) and write the video ``out``.

    See :func:`render_frames` (a ghost of a different length clips both to the shorter one) and
    :func:`write_video`. Arguments are checked before anything is rendered, and frames are
    streamed to the encoder (an ``.mp4`` never holds the whole motion's frames in memory).
    """
    out = check_video_path(out)
    fps = _check_fps(fps)
    qpos, gqpos, model = _prepare(states, ghost, width, height, None)
    with contextlib.closing(_iter_frames(qpos, gqpos, width, height, model, "track", False, fast)) as frames:
        return _write_atomic(frames, out, fps)
