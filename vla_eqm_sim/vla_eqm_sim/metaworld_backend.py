"""Meta-World (Sawyer, Cartesian mocap control) as a ``SimBackend``.

Facts this file relies on (measured here, Meta-World 3.1.1):
- ``env.reset(seed=k)`` ignores the seed. The variation is chosen explicitly: ``MT1(task, seed=S)``
  fixes a set of 50 variations and ``env.set_task(mt1.train_tasks[i])`` loads one; physics is then
  bit-identical across runs.
- The action is 4-D in [-1, 1]: a Cartesian delta of the mocap target (x 1 cm per step) and the
  gripper effort. One env step is 12.5 ms of sim time.
- The arm joints ``right_j0..right_j6`` are dragged by a mocap weld; ``r_close``/``l_close`` are the
  fingers. The JointState therefore carries the Sawyer's real joint names.

``control_mode="joint"`` runs the same tasks on the edited model of ``sawyer_joint.py`` (weld off,
position servos on the arm joints): the action is seven joint targets in rad, clamped to the joint
limits, plus the gripper effort.

Threads: any thread may call this backend. ``reset``, ``step``, ``render`` and ``close`` hold one
lock, so a frame never mixes two states or one task's renderer with another task's data; and every
GL call (renderer creation, rendering, freeing) runs on the backend's ``RenderThread``, the one
thread that owns the GL contexts (the sim bridge renders from executor threads and from the
demo's main thread; OSMesa crashed when both drove one context).
"""

from __future__ import annotations

import threading
import weakref

import metaworld
import numpy as np
from metaworld.env_dict import ALL_V3_ENVIRONMENTS

from vla_eqm_sim.backend import ActionSpace, EpisodeId, SimBackend, StepResult
from vla_eqm_sim.instructions import instruction_for
from vla_eqm_sim.rendering import CameraRenderer, RenderThread
from vla_eqm_sim.sawyer_joint import ARM_JOINTS, joint_env_class, joint_task_state

SAWYER_JOINTS = [f"right_j{i}" for i in range(7)] + ["r_close", "l_close"]
CARTESIAN_SPEC = ActionSpace(
    names=("dx", "dy", "dz", "gripper"),
    low=np.full(4, -1.0),
    high=np.full(4, 1.0),
    control_mode="cartesian",
    units="dx,dy,dz: 1 = 1 cm mocap-target delta per step; gripper: effort, +1 closes",
)


def joint_action_spec(model) -> ActionSpace:
    """Seven arm joint targets (rad, bounded by the model's joint limits) plus the gripper."""
    ranges = np.array([model.joint(j).range for j in ARM_JOINTS], dtype=np.float64)  # (7, 2)
    return ActionSpace(
        names=(*ARM_JOINTS, "gripper"),
        low=np.append(ranges[:, 0], -1.0),
        high=np.append(ranges[:, 1], 1.0),
        control_mode="joint",
        units="right_j0..6: position target, rad; gripper: effort, +1 closes",
    )


class MetaWorldBackend(SimBackend):
    """One Meta-World task at a time, switchable on reset.

    ``MT1`` construction resets 50 environments (about 1 s), so the variation sets are cached per
    (task, seed), and environments per task.
    """

    def __init__(
        self,
        task: str = "button-press-v3",
        variation: int = 0,
        seed: int = 0,
        max_steps: int = 500,
        end_on_success: bool = True,
        control_mode: str = "cartesian",
    ) -> None:
        if control_mode not in ("cartesian", "joint"):
            raise ValueError(f"control_mode {control_mode!r} not in ('cartesian', 'joint')")
        self.control_mode = control_mode
        self.action_spec = CARTESIAN_SPEC
        self._max_steps_request = int(max_steps)
        self.end_on_success = bool(end_on_success)
        self._variation_sets: dict[tuple[str, int], list] = {}
        self._envs: dict[str, object] = {}
        # Created, used and freed on the render thread only (see the module docstring).
        self._renderers: dict[tuple[str, int, int], CameraRenderer] = {}
        self._render_thread = RenderThread(name="metaworld-render")
        self._lock = threading.RLock()
        # close(), garbage collection or interpreter exit, whichever comes first, frees the
        # renderers on the render thread and then stops it; exactly once.
        self._finalizer = weakref.finalize(
            self, _release, self._render_thread, self._renderers, self._envs
        )
        self._env = None
        self._episode = EpisodeId(task, variation, seed)
        self._state = np.zeros(39)
        self._steps = 0
        self._success = False
        self._done = False
        self.reset(task, variation, seed)

    # --- episode control -------------------------------------------------------------------
    def reset(self, task: str | None = None, variation: int = 0, seed: int = 0) -> None:
        with self._lock:
            self._reset(task, variation, seed)

    def _reset(self, task: str | None, variation: int, seed: int) -> None:
        task = task or self._episode.task
        tasks = self._variations(task, int(seed))
        if not 0 <= int(variation) < len(tasks):
            raise ValueError(f"variation {variation} out of range [0, {len(tasks)}) for {task}")
        env = self._envs.get(task)
        if env is None:
            joint = self.control_mode == "joint"
            env = joint_env_class(task)() if joint else ALL_V3_ENVIRONMENTS[task]()
            self._envs[task] = env
            if joint:
                self.action_spec = joint_action_spec(env.model)
        env.set_task(tasks[int(variation)])
        state, _ = env.reset()
        self._env = env
        self._episode = EpisodeId(task, int(variation), int(seed))
        self._state = np.asarray(state, dtype=np.float64)
        self._steps = 0
        self._success = False
        self._done = False
        self._last_action = np.zeros(self.action_spec.dim)
        if self.control_mode == "joint":  # hold = the posture the reset reached
            self._last_action[:7] = env.arm_target
        self.dt = float(env.dt)

    def _variations(self, task: str, seed: int) -> list:
        key = (task, seed)
        if key not in self._variation_sets:
            mt1 = metaworld.MT1(task, seed=seed)  # raises ValueError for unknown tasks
            self._variation_sets[key] = mt1.train_tasks
        return self._variation_sets[key]

    def step(self, action: np.ndarray) -> StepResult:
        with self._lock:
            return self._step(action)

    def _step(self, action: np.ndarray) -> StepResult:
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (self.action_spec.dim,) or not np.all(np.isfinite(action)):
            raise ValueError(f"invalid action {action!r}; validate commands before stepping")
        if self._done:
            raise RuntimeError("episode is done; reset before stepping")
        action = np.clip(action, self.action_spec.low, self.action_spec.high)
        self._last_action = action
        if self.control_mode == "joint":
            self._env.arm_target = action[:7].copy()
            env_action = np.array([0.0, 0.0, 0.0, action[7]])  # Meta-World's step: gripper only
        else:
            env_action = action
        state, reward, _, truncated, info = self._env.step(env_action.astype(np.float32))
        self._state = np.asarray(state, dtype=np.float64)
        self._steps += 1
        self._success = self._success or bool(info.get("success", 0.0))
        truncated = bool(truncated) or self._steps >= self.max_steps
        self._done = truncated or (self.end_on_success and self._success)
        numeric = {k: float(v) for k, v in info.items() if np.isscalar(v)}
        return StepResult(float(reward), self._success, self._done, truncated, numeric)

    def hold_action(self) -> np.ndarray:
        if self.control_mode == "joint":  # the last joint targets and gripper effort
            return self._last_action.copy()
        # Zero Cartesian delta keeps the mocap target; the gripper keeps its last effort.
        hold = np.zeros(self.action_spec.dim)
        hold[3] = self._last_action[3]
        return hold

    # --- observation -------------------------------------------------------------------------
    def render(self, cameras: list[str], size: tuple[int, int]) -> dict[str, np.ndarray]:
        """Upright (H, W, 3) uint8 frames, rendered on the render thread whatever the caller's.

        Raises RuntimeError after ``close()``.
        """
        cameras, size = list(cameras), (int(size[0]), int(size[1]))
        with self._lock:  # the state stays put until every camera has its frame
            return self._render_thread.call(self._render_here, cameras, size)

    def _render_here(self, cameras: list[str], size: tuple[int, int]) -> dict[str, np.ndarray]:
        """Runs on the render thread: one job for all cameras of one observation."""
        renderer = self._renderer(size)
        return {cam: renderer.render(self._env.data, cam) for cam in cameras}

    def _renderer(self, size: tuple[int, int]) -> CameraRenderer:
        """The cached renderer for (task, size); render thread only, as it creates a context."""
        key = (self._episode.task, int(size[0]), int(size[1]))
        if key not in self._renderers:
            self._renderers[key] = CameraRenderer(self._env.model, key[1], key[2])
        return self._renderers[key]

    @property
    def episode(self) -> EpisodeId:
        return self._episode

    @property
    def instruction(self) -> str:
        return instruction_for(self._episode.task)

    @property
    def step_count(self) -> int:
        return self._steps

    @property
    def success(self) -> bool:
        return self._success

    @property
    def done(self) -> bool:
        return self._done

    @property
    def max_steps(self) -> int:
        return min(self._max_steps_request, int(self._env.max_path_length))

    @property
    def cameras(self) -> list[str]:
        model = self._env.model
        return [model.camera(i).name for i in range(model.ncam)]

    @property
    def joint_names(self) -> list[str]:
        return list(SAWYER_JOINTS)

    def joint_positions(self) -> np.ndarray:
        data = self._env.data
        return np.array([data.joint(n).qpos[0] for n in SAWYER_JOINTS], dtype=np.float64)

    def joint_velocities(self) -> np.ndarray:
        data = self._env.data
        return np.array([data.joint(n).qvel[0] for n in SAWYER_JOINTS], dtype=np.float64)

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        # Position: the tool centre point between the fingers (what the Cartesian deltas move and
        # what Meta-World's own state reports); orientation: the hand body.
        position = np.array(self._env.tcp_center, dtype=np.float64)
        w, x, y, z = self._env.data.body("hand").xquat
        return position, np.array([x, y, z, w], dtype=np.float64)

    def task_state(self) -> np.ndarray:
        """Meta-World's 39-D observation; in joint mode followed by the joint positions and the
        step (``sawyer_joint.joint_task_state``), which a joint-space expert's IK needs."""
        if self.control_mode == "joint":
            return joint_task_state(self._state, self.joint_positions(), self._steps)
        return self._state.copy()

    def physics_state(self) -> np.ndarray:
        """Full MuJoCo state (qpos, qvel, mocap pose) as one vector, for determinism checks."""
        data = self._env.data
        return np.concatenate(
            [data.qpos, data.qvel, data.mocap_pos.ravel(), data.mocap_quat.ravel()]
        )

    def close(self) -> None:
        """Free the renderers on the render thread, close the environments, stop the thread.

        Idempotent; also runs on garbage collection and at interpreter exit.
        """
        with self._lock:
            self._finalizer()


def _release(
    render_thread: RenderThread,
    renderers: dict[tuple[str, int, int], CameraRenderer],
    envs: dict[str, object],
) -> None:
    """The backend's finalizer. It must not reference the backend itself (``weakref.finalize``).

    The environments are closed on the render thread too: Gymnasium's ``MujocoEnv.close`` frees
    the GL context of its own viewer, if one was ever opened.
    """

    def free() -> None:
        try:
            for renderer in renderers.values():
                renderer.close()
        finally:
            renderers.clear()
            for env in envs.values():
                env.close()
            envs.clear()

    try:
        render_thread.call(free)
    finally:
        render_thread.close()

