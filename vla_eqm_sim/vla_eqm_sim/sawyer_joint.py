"""Meta-World's Sawyer under joint-position control: the model edit and the env hook.

Stock Meta-World drags the arm by a mocap weld; the arm has no joint actuators. A policy that
publishes joint commands (a JointTrajectory for a ``joint_trajectory_controller``) needs what a real
Sawyer has instead: a position servo per joint. At load time, ``joint_control_spec`` edits the
task's MJCF through ``mujoco.MjSpec``:

- the mocap weld is deactivated (the mocap body stays, unattached);
- ``right_j0..right_j6`` get position actuators (gains below) with torque caps;
- the arm bodies get gravity compensation (``gravcomp = 1``), as the Sawyer's own controller
  does, so the servo gains only have to track and not to hold the arm up;
- ``right_j1`` gets back the Sawyer URDF range: Meta-World narrows it to [-3.8, -0.5] and then
  relies on the soft limit yielding to the weld; a servo cannot push through a hard limit and
  could not reach the far side of the table;
- the finger actuators ``r_close``/``l_close`` are kept as they are.

``joint_env_class(task)`` subclasses the task's env so that gymnasium builds it on the edited
model (``_initialize_simulation`` is the documented hook), steps the servos with
``arm_target`` and resets the hand by inverse kinematics instead of by dragging the mocap. Task
logic (rewards, success, object placement by ``set_task``/``reset``) is Meta-World's, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import mujoco
import numpy as np
from metaworld.env_dict import ALL_V3_ENVIRONMENTS

from vla_eqm_sim.ik import DifferentialIK, IKConfig

ARM_JOINTS = tuple(f"right_j{i}" for i in range(7))
ARM_ROOT_BODY = "right_l0"  # first moving arm body: gravity compensation for its subtree
HAND_BODY = "hand"  # the body Meta-World's mocap weld drives, and whose position it reports
IK_SITE = "endEffector"  # site on the hand body, 4 cm ahead of its origin
# Meta-World's fixed hand orientation (``set_xyz_action`` writes mocap_quat = [1, 0, 1, 0]).
HAND_QUAT = np.array([1.0, 0.0, 1.0, 0.0]) / np.sqrt(2.0)  # w, x, y, z
# Posture the native reset reaches at hand (0, 0.6, 0.2): IK seed and null-space rest posture.
REST_POSTURE = np.array([1.889, -0.576, -0.977, 1.642, 0.943, 1.044, 2.293])
SAWYER_J1_RANGE = (-3.8095, 2.2736)  # rad, Sawyer URDF (commented out in Meta-World's xyz_base)
ACTION_SCALE = 0.01  # m per unit Cartesian action: Meta-World's ``action_scale``
TASK_OBS_DIM = 39  # Meta-World's state observation


@dataclass(frozen=True)
class ServoConfig:
    """Position-servo gains per arm joint, in ``ARM_JOINTS`` order.

    Derivation: a bandwidth of omega = 30 rad/s (time constant ~33 ms), with I_i the diagonal of
    the joint-space inertia at ``REST_POSTURE`` (1.67, 1.23, 0.53, 0.45, 0.038, 0.011, 0.0015
    kg m^2) and b_i = 10 N m s/rad the model's joint damping: kp_i = max(I_i omega^2, b_i omega),
    kv_i = max(0, 2 sqrt(kp_i I_i) - b_i) (critical damping). The wrist joints are so light that
    their damping dominates; kp = b omega gives them the same time constant. Why 30 rad/s: the
    scripted experts are tuned to the mocap weld's lag, and grasps depend on it (pick-place,
    20 episodes: 0.50 at 20 rad/s, 0.90 at 30, 0.80 at 40, 0.70 at 60).

    ``torque_limit`` is a safety cap, not the Sawyer's rating (80/40/9 N m): Meta-World's scenes are
    tuned for a mocap weld that pushes with several hundred newtons (lever-pull wedges the hand
    under the lever); with the real ratings lever-pull fails (see docs/joint_control.md).
    """

    kp: tuple[float, ...] = (1500.0, 1100.0, 480.0, 400.0, 300.0, 300.0, 300.0)  # N m / rad
    kv: tuple[float, ...] = (90.0, 64.0, 22.0, 17.0, 0.0, 0.0, 0.0)  # N m s / rad
    torque_limit: tuple[float, ...] = (1000.0,) * 7  # N m, |actuator force| cap

    def __post_init__(self) -> None:
        for name in ("kp", "kv", "torque_limit"):
            values = np.asarray(getattr(self, name), dtype=np.float64)
            if values.shape != (len(ARM_JOINTS),) or not np.all(np.isfinite(values)):
                raise ValueError(f"{name} needs {len(ARM_JOINTS)} finite values, got {values}")
            if np.any(values < 0) or (name != "kv" and np.any(values <= 0)):
                raise ValueError(f"{name} must be positive, got {values}")


def _subtree(body: mujoco.MjsBody) -> list[mujoco.MjsBody]:
    bodies = [body]
    for child in body.bodies:
        bodies.extend(_subtree(child))
    return bodies


def joint_control_spec(xml_path: str, servo: ServoConfig | None = None) -> mujoco.MjSpec:
    """The task's MJCF with the weld off, arm servos on and gravity compensated (see module)."""
    servo = servo or ServoConfig()
    spec = mujoco.MjSpec.from_file(xml_path)
    for equality in spec.equalities:
        if equality.type == mujoco.mjtEq.mjEQ_WELD:
            equality.active = False
    for body in _subtree(spec.body(ARM_ROOT_BODY)):
        body.gravcomp = 1.0
    spec.joint("right_j1").range = list(SAWYER_J1_RANGE)
    for joint, kp, kv, limit in zip(
        ARM_JOINTS, servo.kp, servo.kv, servo.torque_limit, strict=True
    ):
        actuator = spec.add_actuator()
        actuator.name = f"{joint}_position"
        actuator.target = joint
        actuator.trntype = mujoco.mjtTrn.mjTRN_JOINT
        # MuJoCo's <position kp kv>: force = kp * ctrl - kp * q - kv * qdot
        actuator.gaintype = mujoco.mjtGain.mjGAIN_FIXED
        actuator.biastype = mujoco.mjtBias.mjBIAS_AFFINE
        gain, bias = np.zeros(10), np.zeros(10)
        gain[0], bias[1], bias[2] = kp, -kp, -kv
        actuator.gainprm, actuator.biasprm = gain, bias
        actuator.ctrllimited = 0  # targets are clamped to the joint limits before they get here
        actuator.forcelimited = 1
        actuator.forcerange = [-limit, limit]
    return spec


def hand_rotation() -> np.ndarray:
    """(3, 3) world rotation of Meta-World's fixed hand orientation."""
    rot = np.zeros(9)
    mujoco.mju_quat2Mat(rot, HAND_QUAT)
    return rot.reshape(3, 3)


def make_arm_ik(model: mujoco.MjModel, config: IKConfig | None = None) -> DifferentialIK:
    """The Sawyer's DLS IK on ``IK_SITE`` over the seven arm joints."""
    return DifferentialIK(model, ARM_JOINTS, IK_SITE, config, rest_posture=REST_POSTURE)


def site_offset(model: mujoco.MjModel) -> np.ndarray:
    """World-frame offset from the hand body origin to ``IK_SITE`` at the fixed hand orientation."""
    return hand_rotation() @ model.site(IK_SITE).pos


class JointControlMixin:
    """Mixed in before a Meta-World env class (see ``joint_env_class``)."""

    arm_target: np.ndarray  # (7,) servo targets in rad, ``ARM_JOINTS`` order
    servo_config: ServoConfig = ServoConfig()

    def _initialize_simulation(self):  # gymnasium's hook: build model and data
        spec = joint_control_spec(self.fullpath, self.servo_config)
        model = spec.compile()
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        self.arm_ik = make_arm_ik(model, IKConfig(iterations=200))
        self.arm_actuators = np.array([model.actuator(f"{j}_position").id for j in ARM_JOINTS])
        self.finger_actuators = np.array(
            [i for i in range(model.nu) if i not in set(self.arm_actuators)]
        )
        self.arm_target = REST_POSTURE.copy()
        return model, mujoco.MjData(model)

    def set_xyz_action(self, action: np.ndarray) -> None:
        """No mocap in joint mode: the Cartesian part of Meta-World's action is ignored."""

    def do_simulation(self, ctrl, n_frames) -> None:
        """Meta-World passes the two finger controls; the arm servos get ``arm_target``."""
        self.data.ctrl[self.finger_actuators] = ctrl
        self.data.ctrl[self.arm_actuators] = self.arm_target
        mujoco.mj_step(self.model, self.data, nstep=n_frames)
        mujoco.mj_rnePostConstraint(self.model, self.data)

    def _reset_hand(self, steps: int = 50) -> None:
        """Meta-World drags the mocap to ``hand_init_pos`` for ``steps`` steps. Here IK places the
        arm there first; then Meta-World's own reset runs (a task may extend it): its mocap writes
        move nothing, and its steps, with the servos holding the arm, let the fingers open and the
        objects settle as in native mode."""
        target = np.asarray(self.hand_init_pos, dtype=np.float64) + site_offset(self.model)
        solution = self.arm_ik.solve(REST_POSTURE, target, hand_rotation())
        self.data.qpos[self.arm_ik.qpos_adr] = solution.q
        self.data.qvel[self.arm_ik.dof_adr] = 0.0
        mujoco.mj_forward(self.model, self.data)
        self.arm_target = solution.q.copy()
        super()._reset_hand(steps)  # type: ignore[misc]


@cache
def joint_env_class(task: str) -> type:
    """The task's Meta-World env class under joint control (a subclass, so ``set_task``'s
    ``isinstance`` check and all task logic keep working)."""
    if task not in ALL_V3_ENVIRONMENTS:
        raise ValueError(f"{task!r} is not a V3 environment")
    base = ALL_V3_ENVIRONMENTS[task]
    return type(f"JointControlled{base.__name__}", (JointControlMixin, base), {})


def joint_task_state(obs: np.ndarray, joint_positions: np.ndarray, step: int) -> np.ndarray:
    """Privileged state for a joint-space expert: ``[obs (39) | joints (9) | step (1)]``.

    One vector, so the expert's IK sees the joints of the same instant as the objects (DDS does not
    order messages across topics), and knows when an episode starts (step 0).
    """
    return np.concatenate([np.asarray(obs, dtype=np.float64).ravel(),
                           np.asarray(joint_positions, dtype=np.float64).ravel(), [float(step)]])


def split_joint_task_state(state: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Inverse of ``joint_task_state``: (obs (39,), arm joints (7,), step)."""
    state = np.asarray(state, dtype=np.float64).ravel()
    expected = TASK_OBS_DIM + 9 + 1
    if state.shape != (expected,):
        raise ValueError(f"joint-mode task state needs {expected} values, got {state.size}")
    return state[:TASK_OBS_DIM], state[TASK_OBS_DIM:TASK_OBS_DIM + 7], int(state[-1])
