"""Φ's converged contact solve (``create_go2_rollout(solver="converged")``): one physics step against
MuJoCo C with the same options, and its implicit-function gradient against finite differences (float64)."""

from __future__ import annotations

import contextlib
import io

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from dynaflow import create_go2_rollout
from dynaflow.physics.implicit import check_implicit_supported, mjx_step_implicit

with contextlib.redirect_stdout(io.StringIO()):
    from mujoco import mjx


@pytest.fixture(scope="module")
def converged():
    return create_go2_rollout(solver="converged")


def _contact_state(model: mujoco.MjModel, rng: np.random.Generator):
    """A state with all four feet pressed into the floor and moving, and joint targets off the pose."""
    qpos = model.key_qpos[0].copy()
    qpos[2] -= 0.02
    qvel = 0.3 * rng.standard_normal(model.nv)
    qvel[:2] += [0.5, 0.2]  # the feet slide: friction forces on the cone's surface, not inside it
    ctrl = qpos[7:] + 0.1 * rng.standard_normal(model.nu)
    return qpos, qvel, ctrl


def test_options_and_bad_names(converged):
    for m in (converged.mj_model, converged.sim_model):
        assert m.opt.cone == mujoco.mjtCone.mjCONE_ELLIPTIC and m.opt.iterations > 1
    assert converged.solver == "converged" and create_go2_rollout().solver == "one-step"
    assert create_go2_rollout().mj_model.opt.iterations == 1  # the default stays the fast one-step solve
    with pytest.raises(ValueError, match="solver: expected one of one-step, converged, got 'exact'"):
        create_go2_rollout(solver="exact")
    with pytest.raises(ValueError, match="solver='converged' needs gradient='implicit'"):
        create_go2_rollout(solver="converged", gradient="unrolled")
    sim = create_go2_rollout().sim_model
    sim.opt.cone = mujoco.mjtCone.mjCONE_ELLIPTIC  # one elliptic iteration: neither derivative would hold
    with pytest.raises(ValueError, match=r"elliptic cone needs a converged solve \(opt.iterations > 1\)"):
        check_implicit_supported(sim)


def test_step_is_mujoco_c_and_gradient_is_the_implicit_one(converged):
    """float64: the step equals MuJoCo C's converged elliptic step (to the solver tolerance), and the
    gradient of a random linear function of the next state matches central differences in random
    directions of velocity and control (the active set and cone zones do not change within eps)."""
    sim = converged.sim_model
    rng = np.random.default_rng(0)
    qpos, qvel, ctrl = _contact_state(sim, rng)
    data = mujoco.MjData(sim)
    data.qpos, data.qvel, data.ctrl = qpos, qvel, ctrl
    mujoco.mj_step(sim, data)
    normal = data.efc_force[data.efc_type == mujoco.mjtConstraint.mjCNSTR_CONTACT_ELLIPTIC][::3]
    assert data.ncon == 4 and np.all(normal > 0)
    with jax.enable_x64(True):
        m = mjx.put_model(sim)
        template = mjx.make_data(m)
        w = jnp.asarray(rng.standard_normal(2 * sim.nv + 1))

        def step(qvel, ctrl):
            d = mjx_step_implicit(m, template.replace(qpos=jnp.asarray(qpos), qvel=qvel, ctrl=ctrl))
            return jnp.concatenate([d.qpos, d.qvel])

        value_and_grad = jax.jit(jax.value_and_grad(lambda v, c: jnp.dot(w, step(v, c)), argnums=(0, 1)))
        nxt = jax.jit(step)(jnp.asarray(qvel), jnp.asarray(ctrl))
        # both stop at the solver tolerance (1e-8, scaled); a pyramidal cone or a single iteration would
        # be 0.4-0.8 m/s off here
        np.testing.assert_allclose(np.asarray(nxt[: sim.nq]), data.qpos, rtol=0, atol=1e-7)
        np.testing.assert_allclose(np.asarray(nxt[sim.nq :]), data.qvel, rtol=0, atol=2e-5)
        _, (gv, gc) = value_and_grad(jnp.asarray(qvel), jnp.asarray(ctrl))
        eps = 1e-6
        for _ in range(3):
            dv, dc = rng.standard_normal(sim.nv), rng.standard_normal(sim.nu)
            plus = value_and_grad(jnp.asarray(qvel + eps * dv), jnp.asarray(ctrl + eps * dc))[0]
            minus = value_and_grad(jnp.asarray(qvel - eps * dv), jnp.asarray(ctrl - eps * dc))[0]
            fd = float(plus - minus) / (2 * eps)
            an = float(jnp.dot(gv, dv) + jnp.dot(gc, dc))
            assert abs(fd - an) < 1e-4 * max(abs(fd), 1.0), (fd, an)


def test_the_solve_is_part_of_a_runs_config():
    """`--solver` reaches Φ through the config a checkpoint stores, so generation and evaluation of a run
    use the simulator it was trained in; older checkpoints (no key) load with the one-step solve."""
    from dynaflow.config import ConfigError, TrainConfig

    config = TrainConfig.from_flat(data="d.npz", solver="converged")
    stored = config.to_dict()
    assert TrainConfig.from_dict(stored).sim.rollout().solver == "converged"
    del stored["sim"]["solver"]
    assert TrainConfig.from_dict(stored).sim.solver == "one-step"
    with pytest.raises(ConfigError, match="solver"):
        TrainConfig.from_flat(data="d.npz", solver="exact").validate()


def test_demo_makes_its_gait_data_with_the_converged_solve(tmp_path, converged):
    """`dynaflow demo --solver converged` trains on the gait library made again with that solve (the bundled
    file was made with the one-step solve): its recorded actions replay to its states under the converged
    options, not under the one-step ones; a second call reuses the file."""
    from dynaflow.data import load_dataset
    from dynaflow.demo.run import _gait_data
    from dynaflow.demo.settings import settings_for
    from dynaflow.physics import replay_in_mujoco

    assert settings_for(45.0, solver="converged").solver == "converged"
    path = _gait_data(tmp_path, "converged")
    ds = load_dataset(path)
    assert ds.num_episodes == 100 and ds.actions is not None
    # gaits in turn: a bound; its first second (float32 storage rounding grows over a whole bound episode)
    X, U = ds.states[42, :51].astype(np.float64), ds.actions[42, :50].astype(np.float64)
    same = replay_in_mujoco(converged, X[0], U)
    other = replay_in_mujoco(create_go2_rollout(), X[0], U)
    assert np.abs(same - X).max() < 1e-4 and np.abs(other - X).max() > 0.1
    mtime = path.stat().st_mtime_ns
    assert _gait_data(tmp_path, "converged") == path and path.stat().st_mtime_ns == mtime
