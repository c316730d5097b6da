"""The CPU device layout (dynaflow.platform) and the legged-robot stages (dynaflow.physics.legged)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys

import numpy as np
import pytest

from dynaflow.platform import cpu_devices_wanted, data_devices


def _python(code: str, **env) -> str:
    full = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "DYNAFLOW_CPU_DEVICES")}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_data_devices_take_the_most_that_divide_the_batch():
    devices = ["a", "b", "c", "d"]
    assert data_devices(devices, 32) == devices
    assert data_devices(devices, 6) == ["a", "b", "c"]
    assert data_devices(devices, 9) == ["a", "b", "c"]
    assert data_devices(devices, 7) == ["a"]
    assert data_devices(devices, None) == devices
    assert data_devices(["a", "b"], 9) == ["a"]


def test_cpu_devices_wanted_reads_the_environment(monkeypatch):
    monkeypatch.setenv("DYNAFLOW_CPU_DEVICES", "3")
    assert cpu_devices_wanted() == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("DYNAFLOW_CPU_DEVICES", bad)
        with pytest.raises(ValueError, match="DYNAFLOW_CPU_DEVICES"):
            cpu_devices_wanted()
    monkeypatch.delenv("DYNAFLOW_CPU_DEVICES")
    assert 1 <= cpu_devices_wanted() <= os.cpu_count()


def test_configure_cpu_gives_jax_one_device_per_core_and_meshes_fit_the_batch():
    code = (
        "import os; from dynaflow.platform import configure_cpu; n = configure_cpu(); import jax; "
        "from dynaflow.distributed import data_mesh; "
        "print(n, jax.device_count(), data_mesh(32).size, data_mesh(9).size, data_mesh().size)"
    )
    assert _python(code, DYNAFLOW_CPU_DEVICES="2").split() == ["2", "2", "2", "1", "2"]
    # an explicit XLA_FLAGS device count wins; one device asked for leaves JAX's defaults
    flags = "--xla_force_host_platform_device_count=3"
    assert _python(code, XLA_FLAGS=flags, DYNAFLOW_CPU_DEVICES="2").split() == ["0", "3", "2", "3", "3"]
    assert _python(code, DYNAFLOW_CPU_DEVICES="1").split() == ["1", "1", "1", "1", "1"]


def test_configure_cpu_does_nothing_once_jax_has_started():
    code = (
        "import os, jax; jax.devices(); from dynaflow.platform import configure_cpu; "
        "print(configure_cpu(), os.environ.get('XLA_FLAGS', ''))"
    )
    assert _python(code, DYNAFLOW_CPU_DEVICES="2") == "0"


def test_the_cli_sets_the_layout_for_training_commands_only():
    """`dynaflow train` and `demo` as commands; never `main(argv)` called from a Python program (the
    caller's JAX layout is its own)."""
    code = (
        "import os, sys; from dynaflow.cli import main\n"
        "sys.argv[1:] = {argv!r}\n"
        "main({call})\n"
        "print(os.environ.get('XLA_FLAGS', ''))"
    )
    flag = "--xla_force_host_platform_device_count=2"
    train, generate = ["train", "--data", "no.npz"], ["generate", "--checkpoint", "no"]
    # each fails at once on the missing file: after the layout is chosen, before JAX starts
    assert flag in _python(code.format(argv=train, call=""), DYNAFLOW_CPU_DEVICES="2")
    assert flag not in _python(code.format(argv=generate, call=""), DYNAFLOW_CPU_DEVICES="2")
    assert flag not in _python(code.format(argv=train, call=repr(train)), DYNAFLOW_CPU_DEVICES="2")


# ------------------------------------------------------------------------------------------------
# dynaflow.physics.legged: MJX's stages for a floating base with hinge legs, checked in float64


@pytest.fixture(scope="module")
def mjx_go2():
    import jax

    with contextlib.redirect_stdout(io.StringIO()):
        from mujoco import mjx

    from dynaflow.physics import legged
    from dynaflow.physics.model import simulation_model

    mj = simulation_model(None)
    with jax.enable_x64(True):
        m = mjx.put_model(mj)
        yield mj, m, mjx.make_data(m), legged.legged_layout(mj)


def test_legged_stages_compute_what_mjx_computes_float64(mjx_go2):
    import jax
    import jax.numpy as jnp

    with contextlib.redirect_stdout(io.StringIO()):
        from mujoco.mjx._src import collision_driver, constraint, forward, smooth

    from dynaflow.physics import legged
    from dynaflow.physics.implicit import legged_step_implicit, mjx_step_implicit

    mj, m, template, lay = mjx_go2
    assert lay is not None and lay.body.shape == (4, 3)

    @jax.jit
    def both(qpos, qvel, ctrl):  # one compiled program for the four trials (eager float64 MJX is slow)
        d = template.replace(qpos=qpos, qvel=qvel, ctrl=ctrl)
        ref = smooth.crb(m, smooth.com_pos(m, smooth.kinematics(m, d)))
        ref = constraint.make_constraint(m, collision_driver.collision(m, ref))
        ref = forward.fwd_actuation(m, forward.fwd_velocity(m, smooth.transmission(m, ref)))
        expected = {
            "qpos": ref.qpos,
            "M": ref._impl.M,
            "qfrc_smooth": ref.qfrc_passive - ref.qfrc_bias + ref.qfrc_actuator,
            "efc_J": ref._impl.efc_J,
            "efc_D": ref._impl.efc_D,
            "efc_aref": ref._impl.efc_aref,
        }
        step = mjx_step_implicit(m, d)
        ours = legged_step_implicit(m, lay, template, qpos, qvel, ctrl)
        return legged.smooth(m, lay, qpos, qvel, ctrl), expected, ours, (step.qpos, step.qvel)

    rng = np.random.default_rng(3)
    stand = np.array([0.0, 0.9, -1.8] * 4)
    with jax.enable_x64(True):
        # feet in and out of contact (trials 0 and 3); joints at their limits (1, 2); and at rest there (2)
        for trial in range(4):
            qpos = np.array(mj.qpos0, float)
            qpos[2] = rng.uniform(0.22, 0.27)  # feet in and out of the floor
            qpos[3:7] = (np.array([1.0, 0, 0, 0]) + rng.normal(0, 0.15, 4)) * rng.uniform(0.9, 1.1)
            qpos[7:] = stand + rng.normal(0, 0.5, 12)
            if trial in (1, 2):  # joints at and past their limits
                qpos[7:] = np.clip(qpos[7:], mj.jnt_range[1:, 0] - 0.01, mj.jnt_range[1:, 1] + 0.01)
            qvel = rng.normal(0, 1.0, 18) * (trial != 2)  # trial 2: at rest (zero angular velocity)
            ctrl = stand + rng.normal(0, 0.5, 12)
            s, expected, (qp, qv), (qp_ref, qv_ref) = both(*(jnp.asarray(v) for v in (qpos, qvel, ctrl)))
            for key, want in expected.items():
                np.testing.assert_allclose(s[key], want, rtol=1e-10, atol=1e-10, err_msg=key)
            np.testing.assert_allclose(qp, qp_ref, atol=1e-11)
            np.testing.assert_allclose(qv, qv_ref, atol=1e-9)


def test_legged_layout_refuses_other_shapes():
    import mujoco

    from dynaflow.physics.legged import legged_layout
    from dynaflow.physics.model import simulation_model

    mj = simulation_model(None)
    box = simulation_model(None)
    box.geom_type[box.geom_type == mujoco.mjtGeom.mjGEOM_SPHERE] = mujoco.mjtGeom.mjGEOM_BOX
    springy = simulation_model(None)
    springy.jnt_stiffness[3] = 1.0
    touching = simulation_model(None)
    touching.geom_conaffinity[:] = 1  # feet would collide with each other
    assert legged_layout(mj) is not None
    for other in (box, springy, touching):
        assert legged_layout(other) is None
