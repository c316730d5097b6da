"""How JAX lays out this machine's CPU: one XLA device per core, so training splits its batch over them.

At the demo's size a training update is tens of thousands of tiny XLA operations (the MJX rollout and
its gradient), each costing microseconds of dispatch, so one device keeps barely more than one core busy
however many threads XLA's intra-op pool has. Two devices on two cores each run half the batch, in
parallel, and all-reduce the gradient once per update: the same update (the loss and gradient are means
over the batch; only the order of a sum changes). ``benchmarks/update_speed.py`` measures it.

:func:`configure_cpu` must run before JAX creates its CPU backend: the ``dynaflow`` command calls it
first thing; a Python program that wants the same layout calls it before its first JAX computation.
``DYNAFLOW_CPU_DEVICES=N`` picks the number of devices (1: JAX's default layout).
"""

from __future__ import annotations

import os
import sys

#: The most CPU devices :func:`configure_cpu` creates: past a few, a B = 32 batch is split into slices
#: too small to keep a core busy, and every program of a run replicates its state on each device.
MAX_CPU_DEVICES = 8

_DEVICE_FLAG = "--xla_force_host_platform_device_count"

#: XLA CPU options measured faster for DynaFlow's programs, by the jaxlib (major, minor) they were
#: measured on. An XLA build that does not know a flag aborts at start-up, so each is only set for the
#: releases listed. ``--xla_cpu_use_fusion_emitters=false``: the older loop-fusion code generator; the
#: demo-size update 1.16x -> 1.36-1.50x over one device with JAX's defaults, and the rollout gradient
#: compiles in 21 s instead of 35 s (BENCHMARKS.md, "Update speed").
CPU_FLAGS: dict[tuple[int, int], tuple[str, ...]] = {
    (0, 10): ("--xla_cpu_use_fusion_emitters=false",),
}


def cpu_count() -> int:
    """Cores this process may run on (its affinity mask, as a batch scheduler's allocation sets it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_devices_wanted() -> int:
    """``$DYNAFLOW_CPU_DEVICES`` when set, else one device per core (at most :data:`MAX_CPU_DEVICES`)."""
    value = os.environ.get("DYNAFLOW_CPU_DEVICES", "").strip()
    if value:
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"DYNAFLOW_CPU_DEVICES: expected a positive integer, got {value!r}")
        return n
    return max(1, min(cpu_count(), MAX_CPU_DEVICES))


def backend_started() -> bool:
    """Whether JAX has already created its backends (XLA flags are read then, and never again)."""
    if "jax" not in sys.modules:
        return False
    from jax._src import xla_bridge

    return bool(getattr(xla_bridge, "_backends", None))


def jaxlib_release() -> tuple[int, int] | None:
    """The installed jaxlib's (major, minor), read from its metadata (without importing JAX)."""
    from importlib import metadata

    try:
        major, minor = metadata.version("jaxlib").split(".")[:2]
        return int(major), int(minor)
    except (metadata.PackageNotFoundError, ValueError):
        return None


def configure_cpu() -> int:
    """Give JAX's CPU platform one device per core and the code-generation options of :data:`CPU_FLAGS`
    (see the module docstring); returns the number of devices asked for.

    Does nothing (and returns 0) when the backend already exists or ``XLA_FLAGS`` already sets the
    device count: an explicit choice wins. Other platforms (a GPU) are unaffected: the flags only shape
    the CPU platform, which a GPU run uses for nothing heavy."""
    flags = os.environ.get("XLA_FLAGS", "")
    if _DEVICE_FLAG in flags or backend_started():
        return 0
    n = cpu_devices_wanted()
    extra = [f"{_DEVICE_FLAG}={n}"] if n > 1 else []
    if n > 1:  # the options were measured with the per-core layout
        extra += [f for f in CPU_FLAGS.get(jaxlib_release(), ()) if f.split("=")[0] not in flags]
    if extra:
        os.environ["XLA_FLAGS"] = " ".join([flags, *extra]).strip()
    return n


def data_devices(devices: list, batch: int | None) -> list:
    """The devices a batch of ``batch`` rows is split over in one process: the most that divide it.

    With one device per core, a batch the core count does not divide (B = 9 on two cores) still trains,
    on fewer devices, instead of being refused."""
    if batch is None:
        return devices
    n = len(devices)
    while n > 1 and batch % n:
        n -= 1
    return devices[:n]
