"""The project's own Go2 MJCF: structure, figures from go2_facts.md, and the load-time checks."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from dynaflow.physics import check_go2_model, load_go2_model, simulation_model
from dynaflow.robots import go2
from dynaflow.robots.go2 import JOINT_NAMES
from dynaflow.robots.go2 import SCENE_XML as DEFAULT_XML


@pytest.fixture(scope="module")
def model():
    return load_go2_model()


def test_joint_and_actuator_order(model):
    names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, i) for i in range(1, 13)]
    assert names == list(JOINT_NAMES)
    assert [int(model.actuator_trnid[i, 0]) for i in range(12)] == list(range(1, 13))


def test_swapped_actuators_are_rejected(tmp_path):
    """A model whose actuator list is in FR, FL, RR, RL order (as in some public models) must not load."""
    robot = (DEFAULT_XML.parent / "go2.xml").read_text()
    fl = [f'    <position name="FL_{p}" joint="FL_{p}_joint"' for p in ("hip", "thigh", "calf")]
    fr = [f'    <position name="FR_{p}" joint="FR_{p}_joint"' for p in ("hip", "thigh", "calf")]
    swapped = robot
    for a, b in zip(fl, fr, strict=True):
        swapped = swapped.replace(a, "@@").replace(b, a).replace("@@", b)
    assert swapped != robot
    (tmp_path / "go2.xml").write_text(swapped)
    (tmp_path / "scene.xml").write_text(DEFAULT_XML.read_text())
    with pytest.raises(ValueError, match="actuator 0 must drive 'FL_hip_joint', it drives 'FR_hip_joint'"):
        load_go2_model(tmp_path / "scene.xml")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such.xml"):
        load_go2_model(tmp_path / "no_such.xml")


def test_figures_from_the_facts(model):
    assert model.body_subtreemass[1] == pytest.approx(15.206, abs=1e-3)
    base = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "base")
    assert model.body_mass[base] == pytest.approx(6.921)
    for leg in ("FL", "FR", "RL", "RR"):
        thigh = model.body(f"{leg}_thigh")
        assert abs(thigh.pos[1]) == pytest.approx(0.0955)
        assert model.body(f"{leg}_calf").pos[2] == pytest.approx(-0.213)
        assert model.geom(f"{leg}_foot").size[0] == pytest.approx(0.022)
        knee = model.joint(f"{leg}_calf_joint")
        assert knee.range == pytest.approx([-2.7227, -0.83776])
    assert model.joint("FL_thigh_joint").range == pytest.approx([-1.5708, 3.4907])
    assert model.joint("RR_thigh_joint").range == pytest.approx([-0.5236, 4.5379])
    np.testing.assert_allclose(model.actuator_forcerange[:3], [[-23.7, 23.7], [-23.7, 23.7], [-45.43, 45.43]])
    # ctrlrange = joint range: targets are clipped to what the joint can reach
    np.testing.assert_allclose(model.actuator_ctrlrange, model.jnt_range[1:])
    # mirrored hip inertia: right hips mirror y of the centre of mass, rear hips mirror x
    assert model.body("FL_hip").ipos == pytest.approx([-0.0054, 0.00194, -0.000105])
    assert model.body("RR_hip").ipos == pytest.approx([0.0054, -0.00194, -0.000105])


def test_mjx_friendly_options(model):
    opt = model.opt
    assert opt.iterations == 1 and opt.ls_iterations <= 10
    assert opt.cone == mujoco.mjtCone.mjCONE_PYRAMIDAL
    assert opt.disableflags & mujoco.mjtDisableBit.mjDSBL_EULERDAMP
    assert opt.disableflags & mujoco.mjtDisableBit.mjDSBL_WARMSTART


def test_only_feet_collide_and_visuals_are_separate(model):
    colliding = [
        mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, g)
        for g in range(model.ngeom)
        if model.geom_contype[g] or model.geom_conaffinity[g]
    ]
    assert sorted(colliding) == ["FL_foot", "FR_foot", "RL_foot", "RR_foot", "floor"]
    visual = [g for g in range(model.ngeom) if not (model.geom_contype[g] or model.geom_conaffinity[g])]
    assert len(visual) >= 20 and set(model.geom_group[visual]) == {2}
    assert {int(model.geom_type[g]) for g in visual} <= {
        mujoco.mjtGeom.mjGEOM_BOX,
        mujoco.mjtGeom.mjGEOM_CAPSULE,
        mujoco.mjtGeom.mjGEOM_CYLINDER,
        mujoco.mjtGeom.mjGEOM_SPHERE,
    }
    assert mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "imu") >= 0
    cam = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "track")
    assert cam >= 0 and model.cam_mode[cam] == mujoco.mjtCamLight.mjCAMLIGHT_TRACKCOM


def test_home_keyframe(model):
    key = model.key("home")
    np.testing.assert_allclose(key.qpos, [0, 0, 0.27, 1, 0, 0, 0] + [0, 0.9, -1.8] * 4)


def test_simulation_model_has_the_same_dynamics(model):
    sim = simulation_model()
    assert sim.ngeom == 5 and sim.nsite == 0 and sim.ncam == 0
    np.testing.assert_allclose(sim.body_mass, model.body_mass)
    np.testing.assert_allclose(sim.body_inertia, model.body_inertia)
    d_full, d_sim = mujoco.MjData(model), mujoco.MjData(sim)
    for m, d in ((model, d_full), (sim, d_sim)):
        mujoco.mj_resetDataKeyframe(m, d, 0)
        mujoco.mj_step(m, d, nstep=50)
    np.testing.assert_allclose(d_sim.qpos, d_full.qpos, atol=1e-12)


def test_check_rejects_a_non_go2():
    m = mujoco.MjModel.from_xml_string(
        "<mujoco><worldbody><body><freejoint/><geom size='.1'/></body></worldbody></mujoco>"
    )
    with pytest.raises(ValueError, match="expected nq=19, nv=18, nu=12"):
        check_go2_model(m)
    assert go2.STATE_DIM == 37 and go2.ACTION_DIM == 12 and len(go2.JOINT_NAMES) == 12
