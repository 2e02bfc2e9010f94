"""Meta-World's scripted experts in joint space, through differential IK.

The scripted policies speak Cartesian: ``[dx, dy, dz, grip]``, where ``dx`` moves the mocap target
by 1 cm per step. In native mode the mocap integrates those deltas and the weld drags the hand
after it. ``JointSpaceExpert`` keeps the same integrator, a Cartesian reference that starts at the
hand and moves by ``delta * 1 cm`` per step inside Meta-World's mocap box, and turns it into
joint targets with damped-least-squares IK (hand orientation held at Meta-World's fixed
orientation). The output is what a joint-space robot is commanded: seven joint targets (rad) and
the gripper effort.

Why a reference and not "measured hand + delta": with the latter the target never leads the hand
by more than one step, so the arm moves at half speed and cannot press (measured: button-press
0/5, push 0/5). The reference leads like the mocap does, and so the expert's timing and forces
carry over. It re-anchors at the measured hand at every episode start (step 0 of the state).

ROS-free; the kinematic model is the joint-mode Sawyer of the task (same arm in every task).
"""

from __future__ import annotations

from functools import cache

import mujoco
import numpy as np

from vla_eqm_sim.ik import DifferentialIK, IKConfig
from vla_eqm_sim.sawyer_joint import (
    ACTION_SCALE,
    hand_rotation,
    joint_env_class,
    make_arm_ik,
    site_offset,
    split_joint_task_state,
)
from vla_eqm_sim.scripted_experts import ScriptedExpert

# Per control step the reference moves <= 1 cm from the previous solution: few iterations do.
EXPERT_IK = IKConfig(iterations=5)


@cache
def _task_kinematics(task: str) -> tuple[mujoco.MjModel, np.ndarray, np.ndarray]:
    """(joint-mode model, mocap box low, high) of a task; built once per task (~0.5 s)."""
    env = joint_env_class(task)()
    try:
        return env.model, np.array(env.mocap_low, float), np.array(env.mocap_high, float)
    finally:
        env.close()


class JointSpaceExpert:
    """``act(state) -> (8,)``: seven joint targets in rad and the gripper effort in [-1, 1].

    ``state`` is the joint-mode task state ``[obs (39) | joints (9) | step]`` (see
    ``sawyer_joint.joint_task_state``).
    """

    def __init__(self, task: str) -> None:
        self.task = task
        self.cartesian = ScriptedExpert(task)
        model, self.workspace_low, self.workspace_high = _task_kinematics(task)
        self.ik: DifferentialIK = make_arm_ik(model, EXPERT_IK)
        self._rotation = hand_rotation()
        self._offset = site_offset(model)  # hand origin -> IK site
        self.reference: np.ndarray | None = None  # IK-site target (3,), m, world
        self.q_command: np.ndarray | None = None  # last joint targets (7,)
        self.last_ik_error = 0.0  # m, how far the last solution is from the reference

    def reset(self, arm_q: np.ndarray) -> None:
        """Anchor the reference at the hand of the measured arm (new episode)."""
        self.q_command = np.asarray(arm_q, dtype=np.float64).copy()
        self.reference, _ = self.ik.forward(self.q_command)

    def act(self, state: np.ndarray) -> np.ndarray:
        obs, arm_q, step = split_joint_task_state(state)
        if step == 0 or self.reference is None:
            self.reset(arm_q)
        cartesian = self.cartesian.act(obs)
        return self.command(cartesian)

    def command(self, cartesian: np.ndarray) -> np.ndarray:
        """One Cartesian intent ``[dx, dy, dz, grip]`` -> joint targets plus gripper (8,)."""
        if self.reference is None or self.q_command is None:
            raise RuntimeError("call reset(arm_q) or act(state) first")
        cartesian = np.clip(np.asarray(cartesian, dtype=np.float64), -1.0, 1.0)
        # The mocap box bounds the hand origin; the reference is the IK site, 4 cm further on.
        hand = self.reference - self._offset + cartesian[:3] * ACTION_SCALE
        self.reference = np.clip(hand, self.workspace_low, self.workspace_high) + self._offset
        solution = self.ik.solve(self.q_command, self.reference, self._rotation)
        self.q_command = solution.q
        self.last_ik_error = solution.position_error
        return np.concatenate([solution.q, cartesian[3:4]])
