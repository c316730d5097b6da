"""The PPO teacher: a Go2 joystick environment in MJX for Brax's PPO, training and batched collection.

Shaped like mujoco_playground's Go1 joystick task: commands (vx, vy, yaw rate) are sampled at reset and
resampled during an episode; rewards track the commanded body velocity and yaw rate, with the usual
regularisers (vertical velocity, roll/pitch rate, tilt, torque, action rate, joint-limit proximity) and
a termination penalty on falling. Optionally the policy is conditioned on a gait (one-hot + phase clock)
and rewarded for following that gait's contact schedule, so one policy offers several gaits.

The physics is the project's own rollout Φ, one control step at a time (:meth:`Rollout.step`): same
model, same control law (targets = default + action_scale · a, a in [-1, 1]), so the states a teacher
produces are exactly what ``create_go2_rollout()`` gives for its actions.

Domain randomisation (``randomize=True``, training only): observation noise, random pushes (velocity
kicks of the trunk) and randomised initial joint angles. Model parameters (friction, masses) are not
randomised: the teacher's data must stay admissible in the project's nominal model.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from brax.envs.base import Env, State
from mujoco import mjx

from dynaflow.data.sources.gaits import GAITS, SPECS
from dynaflow.physics import Rollout, create_go2_rollout, local_device
from dynaflow.robots.go2 import ANGVEL, FOOT_RADIUS, JOINT_VEL, JOINTS, LINVEL, NQ


def _brax_jax_compat() -> None:
    """Brax 0.14.2's PPO still calls ``jax.device_put_replicated``, removed in recent JAX: supply the
    documented replacement (stack the value once per device; ``pmap`` places the shards)."""
    if not hasattr(jax, "device_put_replicated"):

        def device_put_replicated(x, devices):
            return jax.tree.map(lambda a: jnp.stack([jnp.asarray(a)] * len(devices)), x)

        jax.device_put_replicated = device_put_replicated


_brax_jax_compat()


@dataclass(frozen=True)
class TeacherConfig:
    """The environment's configuration (``default_config()`` with overrides, as in mujoco_playground)."""

    episode_length: int = 1000  # control steps (20 s)
    command_resample_steps: int = 250  # a new command every 5 s
    vx: tuple[float, float] = (-0.5, 1.0)
    vy: tuple[float, float] = (-0.4, 0.4)
    yaw: tuple[float, float] = (-0.8, 0.8)
    zero_command_prob: float = 0.1
    gaits: tuple[str, ...] = ()  # () = no gait conditioning; else some of GAITS
    randomize: bool = False
    obs_noise: float = 0.02
    push_interval_steps: int = 250
    push_velocity: float = 0.4
    reward_scales: dict[str, float] = field(
        default_factory=lambda: {
            "tracking_lin_vel": 1.0,
            "tracking_ang_vel": 0.5,
            "lin_vel_z": -2.0,
            "ang_vel_xy": -0.05,
            "orientation": -5.0,
            "torques": -2e-4,
            "action_rate": -0.01,
            "joint_limits": -1.0,
            "termination": -1.0,
            "gait_schedule": 0.5,
        }
    )
    tracking_sigma: float = 0.25


def default_config(**overrides) -> TeacherConfig:
    """The default teacher configuration, with keyword overrides."""
    return dataclasses.replace(TeacherConfig(), **overrides)


def _rotate_inv(q: jax.Array, v: jax.Array) -> jax.Array:
    """World vector v into the body frame of unit quaternion q (w, x, y, z)."""
    w, xyz = q[0], q[1:]
    t = 2.0 * jnp.cross(xyz, v)
    return v - w * t + jnp.cross(xyz, t)  # R^T v (conjugate rotation)


class Go2Joystick(Env):
    """Velocity-command (and optionally gait-conditioned) locomotion for the project's Go2."""

    def __init__(self, config: TeacherConfig | None = None, rollout: Rollout | None = None):
        self.config = config or default_config()
        unknown = set(self.config.gaits) - set(GAITS)
        if unknown:
            raise ValueError(
                f"--gaits: unknown gait(s) {sorted(unknown)}; expected some of {','.join(GAITS)}"
            )
        self.rollout = rollout or create_go2_rollout()
        self._m = mjx.put_model(self.rollout.sim_model, device=local_device())
        model = self.rollout.sim_model
        self._foot_geoms = np.array(
            [i for i in range(model.ngeom) if model.geom_contype[i] == 1 and model.geom_bodyid[i] != 0]
        )
        assert len(self._foot_geoms) == 4, "expected 4 colliding foot geoms"
        self._default = jnp.asarray(self.rollout.default_pose, jnp.float32)
        lo, hi = self.rollout.mj_model.jnt_range[1:].T
        self._q_lo, self._q_hi = jnp.asarray(lo, jnp.float32), jnp.asarray(hi, jnp.float32)
        act = self.rollout.mj_model
        self._kp = jnp.asarray(act.actuator_gainprm[:, 0], jnp.float32)
        self._kd = -jnp.asarray(act.actuator_biasprm[:, 2], jnp.float32)
        self._tau_max = jnp.asarray(act.actuator_forcerange[:, 1], jnp.float32)
        self._home = jnp.asarray(self.rollout.home_state(), jnp.float32)
        self._n_gaits = len(self.config.gaits)
        self._periods = jnp.asarray([SPECS[g].period for g in self.config.gaits] or [1.0], jnp.float32)
        self._duties = jnp.asarray([SPECS[g].duty for g in self.config.gaits] or [1.0], jnp.float32)
        self._offsets = jnp.asarray(
            [SPECS[g].offsets for g in self.config.gaits] or [(0.0,) * 4], jnp.float32
        )

    # -- Env interface ------------------------------------------------------------------------
    @property
    def observation_size(self) -> int:
        return 48 + (self._n_gaits + 2 if self._n_gaits else 0)

    @property
    def action_size(self) -> int:
        return 12

    @property
    def backend(self) -> str:
        return "mjx"

    def _sample_command(self, rng: jax.Array) -> jax.Array:
        c = self.config
        k1, k2, k3, k4 = jax.random.split(rng, 4)
        cmd = jnp.array(
            [
                jax.random.uniform(k1, minval=c.vx[0], maxval=c.vx[1]),
                jax.random.uniform(k2, minval=c.vy[0], maxval=c.vy[1]),
                jax.random.uniform(k3, minval=c.yaw[0], maxval=c.yaw[1]),
            ]
        )
        return jnp.where(jax.random.uniform(k4) < c.zero_command_prob, 0.0, cmd)

    def reset(self, rng: jax.Array) -> State:
        k_cmd, k_gait, k_q, k_rng = jax.random.split(rng, 4)
        x = self._home
        if self.config.randomize:
            x = x.at[JOINTS].add(jax.random.uniform(k_q, (12,), minval=-0.1, maxval=0.1))
        gait = jax.random.randint(k_gait, (), 0, max(self._n_gaits, 1))
        info = {
            "command": self._sample_command(k_cmd),
            "gait": gait,
            "last_act": jnp.zeros(12),
            "step": jnp.zeros((), jnp.int32),
            "rng": k_rng,
        }
        metrics = {"tracking_error": jnp.zeros(()), "reward_tracking": jnp.zeros(())}
        obs = self._obs({"x": x}, info, jax.random.PRNGKey(0))
        return State({"x": x}, obs, jnp.zeros(()), jnp.zeros(()), metrics, info)

    def step(self, state: State, action: jax.Array) -> State:
        info = dict(state.info)
        x = state.pipeline_state["x"]
        action = jnp.clip(action, -1.0, 1.0)
        x_next = self.rollout.step(x, action)
        rng, k_push, k_obs, k_cmd = jax.random.split(info["rng"], 4)
        step_idx = info["step"] + 1
        if self.config.randomize:
            kick = jax.random.uniform(k_push, (2,), minval=-1.0, maxval=1.0) * self.config.push_velocity
            push = (step_idx % self.config.push_interval_steps) == 0
            x_next = x_next.at[19:21].add(jnp.where(push, kick, 0.0))
        resample = (step_idx % self.config.command_resample_steps) == 0
        info["command"] = jnp.where(resample, self._sample_command(k_cmd), info["command"])

        reward, terms, tracking_error = self._reward(x, x_next, action, info, step_idx)
        done = self._fallen(x_next)
        reward = reward + self.config.reward_scales["termination"] * done
        info.update(last_act=action, step=step_idx, rng=rng)
        obs = self._obs({"x": x_next}, info, k_obs)
        metrics = {
            **state.metrics,
            "tracking_error": tracking_error,
            "reward_tracking": terms["tracking_lin_vel"],
        }
        return state.replace(
            pipeline_state={"x": x_next},
            obs=obs,
            reward=reward,
            done=done.astype(jnp.float32),
            metrics=metrics,
            info=info,
        )

    # -- pieces --------------------------------------------------------------------------------
    def _fallen(self, x: jax.Array) -> jax.Array:
        q = x[3:7] / jnp.linalg.norm(x[3:7])
        up = 1.0 - 2.0 * (q[1] ** 2 + q[2] ** 2)
        return (up < 0.5) | (x[2] < 0.15) | ~jnp.all(jnp.isfinite(x))

    def _phase(self, info: dict) -> jax.Array:
        t = info["step"].astype(jnp.float32) * self.rollout.ctrl_dt
        return (t / self._periods[info["gait"]]) % 1.0

    def gait_features(self, info: dict) -> jax.Array:
        """One-hot gait and (sin, cos) of its phase clock; empty without gaits."""
        if not self._n_gaits:
            return jnp.zeros((0,))
        phase = self._phase(info)
        onehot = jax.nn.one_hot(info["gait"], self._n_gaits)
        return jnp.concatenate(
            [onehot, jnp.array([jnp.sin(2 * jnp.pi * phase), jnp.cos(2 * jnp.pi * phase)])]
        )

    def _obs(self, pipeline_state: dict, info: dict, rng: jax.Array) -> jax.Array:
        x = pipeline_state["x"]
        q = x[3:7] / jnp.linalg.norm(x[3:7])
        gravity = _rotate_inv(q, jnp.array([0.0, 0.0, -1.0]))
        v_body = _rotate_inv(q, x[LINVEL])
        obs = jnp.concatenate(
            [
                v_body,
                x[ANGVEL],
                gravity,
                info["command"],
                x[JOINTS] - self._default,
                0.1 * x[JOINT_VEL],
                info["last_act"],
            ]
        )
        if self.config.randomize:
            obs = obs + self.config.obs_noise * jax.random.normal(rng, obs.shape)
        return jnp.concatenate([obs, self.gait_features(info)])

    def foot_heights(self, x: jax.Array) -> jax.Array:
        """Heights (m) of the four foot spheres' lowest points above the floor."""
        d = mjx.make_data(self._m, device=local_device()).replace(qpos=x[:NQ])
        d = mjx.kinematics(self._m, d)
        return d.geom_xpos[self._foot_geoms, 2] - FOOT_RADIUS

    def _reward(self, x, x_next, action, info, step_idx):
        s = self.config.reward_scales
        q = x_next[3:7] / jnp.linalg.norm(x_next[3:7])
        v_body = _rotate_inv(q, x_next[LINVEL])
        w_body = x_next[ANGVEL]
        cmd = info["command"]
        lin_err = jnp.sum(jnp.square(cmd[:2] - v_body[:2]))
        ang_err = jnp.square(cmd[2] - w_body[2])
        gravity = _rotate_inv(q, jnp.array([0.0, 0.0, -1.0]))
        qj, dqj = x_next[JOINTS], x_next[JOINT_VEL]
        tau = jnp.clip(
            self._kp * (self.rollout.targets(action) - qj) - self._kd * dqj, -self._tau_max, self._tau_max
        )
        margin = 0.05
        limits = jnp.sum(
            jnp.maximum(self._q_lo + margin - qj, 0.0) + jnp.maximum(qj - self._q_hi + margin, 0.0)
        )
        terms = {
            "tracking_lin_vel": jnp.exp(-lin_err / self.config.tracking_sigma),
            "tracking_ang_vel": jnp.exp(-ang_err / self.config.tracking_sigma),
            "lin_vel_z": jnp.square(v_body[2]),
            "ang_vel_xy": jnp.sum(jnp.square(w_body[:2])),
            "orientation": jnp.sum(jnp.square(gravity[:2])),
            "torques": jnp.sum(jnp.square(tau)),
            "action_rate": jnp.sum(jnp.square(action - info["last_act"])),
            "joint_limits": limits,
        }
        if self._n_gaits:
            phase = (self._phase({**info, "step": step_idx}) + self._offsets[info["gait"]]) % 1.0
            want_contact = phase < self._duties[info["gait"]]
            contact = self.foot_heights(x_next) < 0.01
            terms["gait_schedule"] = jnp.mean((contact == want_contact).astype(jnp.float32))
        reward = sum(s[k] * v for k, v in terms.items()) * self.rollout.ctrl_dt
        return reward, terms, jnp.sqrt(lin_err)


# --------------------------------------------------------------------------------------------
# Training and collection


@dataclass(frozen=True)
class PPOConfig:
    """Brax PPO hyperparameters (GPU-sized defaults; the CLI smoke test uses far fewer)."""

    num_timesteps: int = 100_000_000
    num_envs: int = 4096
    episode_length: int = 1000
    unroll_length: int = 20
    batch_size: int = 256
    num_minibatches: int = 32
    num_updates_per_batch: int = 4
    learning_rate: float = 3e-4
    entropy_cost: float = 1e-2
    discounting: float = 0.97
    reward_scaling: float = 1.0
    max_grad_norm: float = 1.0
    num_evals: int = 10
    num_eval_envs: int = 128
    policy_hidden: tuple[int, ...] = (512, 256, 128)
    value_hidden: tuple[int, ...] = (512, 256, 128)
    seed: int = 0


def _network_factory(ppo: PPOConfig):
    import functools

    from brax.training.agents.ppo import networks as ppo_networks

    return functools.partial(
        ppo_networks.make_ppo_networks,
        policy_hidden_layer_sizes=ppo.policy_hidden,
        value_hidden_layer_sizes=ppo.value_hidden,
    )


def train_teacher(
    run_dir: str | Path,
    env_config: TeacherConfig,
    ppo: PPOConfig,
    restore: str | Path | None = None,
    verbose: bool = True,
) -> dict:
    """Train the teacher with Brax PPO.

    Brax checkpoints (``checkpoints/<step>/``), ``config.json`` and ``progress.jsonl`` go to ``run_dir``."""
    from brax.training.agents.ppo import train as ppo_train

    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    env = Go2Joystick(dataclasses.replace(env_config, episode_length=ppo.episode_length))
    (run_dir / "config.json").write_text(
        json.dumps({"env": dataclasses.asdict(env.config), "ppo": dataclasses.asdict(ppo)}, indent=2)
    )
    log = open(run_dir / "progress.jsonl", "a")
    t0 = time.perf_counter()
    history: list[dict] = []

    def progress(step, metrics):
        m = {k: float(v) for k, v in metrics.items() if np.ndim(v) == 0}
        length = max(m.get("eval/avg_episode_length", 1.0), 1.0)
        rec = {
            "step": int(step),
            "wall_s": time.perf_counter() - t0,
            "reward": m.get("eval/episode_reward"),
            "episode_length": m.get("eval/avg_episode_length"),
            "tracking_error": (m["eval/episode_tracking_error"] / length)
            if "eval/episode_tracking_error" in m
            else None,
        }
        history.append(rec)
        log.write(json.dumps(rec) + "\n")
        log.flush()
        if verbose:
            print(
                f"step {rec['step']:>10,d}  reward {rec['reward']:.3f}  episode length "
                f"{rec['episode_length']:.0f}  tracking error {rec['tracking_error'] or np.nan:.3f} m/s  "
                f"({rec['wall_s']:.0f} s)",
                flush=True,
            )

    try:
        make_policy, params, _ = ppo_train.train(
            environment=env,
            num_timesteps=ppo.num_timesteps,
            num_envs=ppo.num_envs,
            episode_length=ppo.episode_length,
            unroll_length=ppo.unroll_length,
            batch_size=ppo.batch_size,
            num_minibatches=ppo.num_minibatches,
            num_updates_per_batch=ppo.num_updates_per_batch,
            learning_rate=ppo.learning_rate,
            entropy_cost=ppo.entropy_cost,
            discounting=ppo.discounting,
            reward_scaling=ppo.reward_scaling,
            max_grad_norm=ppo.max_grad_norm,
            num_evals=ppo.num_evals,
            num_eval_envs=ppo.num_eval_envs,
            normalize_observations=True,
            seed=ppo.seed,
            network_factory=_network_factory(ppo),
            progress_fn=progress,
            save_checkpoint_path=str(run_dir / "checkpoints"),
            restore_checkpoint_path=None if restore is None else str(Path(restore).resolve()),
        )
    finally:
        log.close()
    return {"history": history, "run_dir": run_dir, "make_policy": make_policy, "params": params}


def latest_checkpoint(path: str | Path) -> Path:
    """A Brax checkpoint directory: ``path`` itself, or the newest under ``path/checkpoints``."""
    path = Path(path).resolve()
    if (path / "ppo_network_config.json").exists():
        return path
    ckpts = sorted((path / "checkpoints").glob("[0-9]*")) if (path / "checkpoints").exists() else []
    if not ckpts:
        raise FileNotFoundError(
            f"{path}: no teacher checkpoint (expected checkpoints/<step>/ from teacher train)"
        )
    return ckpts[-1]


def load_teacher(path: str | Path):
    """(env, make_policy, params, ppo config) from a run directory or checkpoint; ``make_policy(params)``
    gives a deterministic ``policy(obs, key) -> (action, extras)``."""
    from brax.training.acme import running_statistics
    from brax.training.agents.ppo import checkpoint as ppo_checkpoint
    from brax.training.agents.ppo import networks as ppo_networks

    ckpt = latest_checkpoint(path)
    run_dir = ckpt.parent.parent
    cfg = json.loads((run_dir / "config.json").read_text())
    env_cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg["env"].items()}
    env = Go2Joystick(TeacherConfig(**{**env_cfg, "randomize": False}))
    ppo = PPOConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg["ppo"].items()})
    # Brax's own load_policy trips over a None kernel initialiser in the config it wrote (0.14.2), so the
    # network is rebuilt from our run config and only the parameters come from the checkpoint.
    params = ppo_checkpoint.load(ckpt)
    network = _network_factory(ppo)(
        env.observation_size, env.action_size, preprocess_observations_fn=running_statistics.normalize
    )
    make_inference = ppo_networks.make_inference_fn(network)
    return env, (lambda p: make_inference(p, deterministic=True)), (params[0], params[1]), ppo


_COLLECTORS: dict = {}


def _collector(env: Go2Joystick, make_policy, ppo: PPOConfig, steps: int):
    """A jitted ``f(params, keys) -> (X, U, C, done, x_last)``, cached per (environment, network, steps)."""
    key = (json.dumps(dataclasses.asdict(env.config), sort_keys=True, default=str), ppo.policy_hidden, steps)
    if key in _COLLECTORS:
        return _COLLECTORS[key]

    def run(params, keys):
        policy = make_policy(params)

        def episode(key):
            state = env.reset(key)

            def body(state, k):
                action, _ = policy(state.obs, k)
                action = jnp.clip(action, -1.0, 1.0)
                onehot = jax.nn.one_hot(state.info["gait"], env._n_gaits)
                cond = jnp.concatenate([state.info["command"], onehot])
                nxt = env.step(state, action)
                return nxt, (state.pipeline_state["x"], action, cond, nxt.done)

            last, (X, U, C, done) = jax.lax.scan(body, state, jax.random.split(key, steps))
            return X, U, C, done, last.pipeline_state["x"]

        return jax.vmap(episode)(keys)

    _COLLECTORS[key] = jax.jit(run)
    return _COLLECTORS[key]


def collect(path: str | Path, num_episodes: int, episode_seconds: float, seed: int = 0):
    """Roll the teacher out in batched MJX with random commands; returns the NPZ arrays and a summary.

    Conditioning per step: the command (vx, vy, yaw rate) and, for a gait policy, the gait one-hot.
    Episodes where the robot falls are dropped (counted in the summary)."""
    env, make_policy, params, ppo = load_teacher(path)
    steps = int(round(episode_seconds / env.rollout.ctrl_dt))
    keys = jax.random.split(jax.random.PRNGKey(seed), num_episodes)
    fn = _collector(env, make_policy, ppo, steps)
    t0 = time.perf_counter()
    X, U, C, done, x_last = fn(params, keys)
    X, U, C, done, x_last = (np.asarray(a) for a in (X, U, C, done, x_last))
    wall = time.perf_counter() - t0
    states = np.concatenate([X, x_last[:, None]], axis=1)
    actions = np.concatenate([U, U[:, -1:]], axis=1)
    conds = np.concatenate([C, C[:, -1:]], axis=1)
    ok = ~done.any(axis=1)
    summary = {
        "episodes": num_episodes,
        "kept": int(ok.sum()),
        "dropped": int((~ok).sum()),
        "steps": steps,
        "wall_seconds": wall,
        "env_steps_per_s": num_episodes * steps / wall,
    }
    arrays = {"states": states[ok], "actions": actions[ok], "conditionings": conds[ok]}
    return arrays, summary
