"""ik.py and joint_expert.py: DLS inverse kinematics on the Sawyer's end-effector site."""

from __future__ import annotations

import numpy as np
import pytest

from vla_eqm_sim.ik import DifferentialIK, IKConfig, orientation_error
from vla_eqm_sim.sawyer_joint import (
    ARM_JOINTS,
    IK_SITE,
    REST_POSTURE,
    hand_rotation,
    joint_env_class,
    joint_task_state,
    make_arm_ik,
)
from vla_eqm_sim.scripted_joint_expert import JointSpaceExpert


@pytest.fixture(scope="module")
def arm_model():
    env = joint_env_class("reach-v3")()
    yield env.model
    env.close()


def test_the_ik_reaches_a_cartesian_goal_with_the_hand_orientation_held(arm_model):
    ik = make_arm_ik(arm_model, IKConfig(iterations=200))
    start, _ = ik.forward(REST_POSTURE)
    for offset in ([0.10, 0.0, 0.0], [0.0, 0.15, -0.05], [-0.12, 0.05, 0.10]):
        goal = start + np.array(offset)
        result = ik.solve(REST_POSTURE, goal, hand_rotation())
        position, rotation = ik.forward(result.q)  # checked by forward kinematics, not trusted
        assert np.linalg.norm(position - goal) < 1e-4, (offset, result)
        assert np.linalg.norm(orientation_error(hand_rotation(), rotation)) < 1e-3
        assert np.all(result.q >= ik.lower) and np.all(result.q <= ik.upper)


def test_the_jacobian_matches_finite_differences_of_forward_kinematics(arm_model):
    ik = DifferentialIK(arm_model, ARM_JOINTS, IK_SITE)
    jac = ik.jacobian(REST_POSTURE)
    eps = 1e-6
    for j in range(len(ARM_JOINTS)):
        dq = np.zeros(len(ARM_JOINTS))
        dq[j] = eps
        plus, _ = ik.forward(REST_POSTURE + dq)
        minus, _ = ik.forward(REST_POSTURE - dq)
        assert np.allclose((plus - minus) / (2 * eps), jac[:3, j], atol=1e-6)


def test_an_unreachable_goal_gives_a_bounded_answer_inside_the_joint_limits(arm_model):
    ik = make_arm_ik(arm_model, IKConfig(iterations=50, max_step=0.1))
    result = ik.solve(REST_POSTURE, np.array([0.0, 3.0, 0.2]), hand_rotation())  # 3 m away
    assert np.all(np.isfinite(result.q))
    assert np.all(result.q >= ik.lower) and np.all(result.q <= ik.upper)
    assert result.position_error > 1.0  # it says it did not get there


def test_bad_ik_settings_are_refused_with_the_value():
    with pytest.raises(ValueError, match="damping"):
        IKConfig(damping=0.0)
    with pytest.raises(ValueError, match="iterations"):
        IKConfig(iterations=0)


def test_the_joint_space_expert_moves_its_reference_one_cm_per_unit_and_solves_for_it(arm_model):
    expert = JointSpaceExpert("reach-v3")
    ik = make_arm_ik(arm_model)
    expert.reset(REST_POSTURE)  # what act() does at step 0 of an episode
    anchor, _ = ik.forward(REST_POSTURE)
    for _ in range(3):
        command = expert.command(np.array([0.0, 0.0, 1.0, -1.0]))  # up, gripper open
    assert command.shape == (8,) and command[7] == -1.0
    assert np.allclose(expert.reference - anchor, [0.0, 0.0, 0.03], atol=1e-9)
    reached, _ = ik.forward(command[:7])
    assert np.linalg.norm(reached - expert.reference) < 1e-3


def test_the_joint_space_expert_reanchors_at_the_start_of_every_episode(arm_model):
    expert = JointSpaceExpert("reach-v3")
    ik = make_arm_ik(arm_model)
    other = REST_POSTURE + np.array([0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    expert.act(joint_task_state(np.zeros(39), np.append(REST_POSTURE, [0, 0]), step=0))
    expert.act(joint_task_state(np.zeros(39), np.append(other, [0, 0]), step=0))
    anchor, _ = ik.forward(other)
    assert np.linalg.norm(expert.reference - anchor) < 0.011  # at most one expert step away
