"""Bad commands over real DDS are rejected with a reason and never reach the simulator."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sim_bridge_harness import BridgeHarness
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_eqm_msgs.msg import ActionChunk

BAD_COMMANDS = {
    "wrong length (3)": ([0.1, 0.2, 0.3], "wrong length"),
    "wrong length (5)": ([0.1, 0.2, 0.3, 0.4, 0.5], "wrong length"),
    "empty": ([], "wrong length"),
    "NaN": ([0.1, math.nan, 0.0, 0.0], "NaN in dy"),
    "inf": ([0.0, 0.0, -math.inf, 0.0], "inf in dz"),
    "absurd magnitude": ([0.0, 0.0, 0.0, 1e6], "absurd magnitude"),
}


@pytest.fixture(scope="module")
def lockstep():
    """One lockstep bridge shared by this module's tests (each test resets it first)."""
    harness = BridgeHarness("lockstep")
    yield harness
    harness.close()


def _settle(h, seconds: float = 0.3) -> None:
    h.spin_for(seconds)


@pytest.mark.parametrize("name", list(BAD_COMMANDS))
def test_a_bad_command_is_rejected_with_its_reason_and_the_sim_does_not_move(lockstep, name):
    values, reason = BAD_COMMANDS[name]
    lockstep.reset(variation=0)
    physics = lockstep.bridge.backend.physics_state()
    rejected = sum(lockstep.bridge.rejections.values())
    lockstep.send(values)
    lockstep.spin_until(lambda: sum(lockstep.bridge.rejections.values()) > rejected,
                        what="rejection")
    _settle(lockstep)
    assert reason in lockstep.bridge.last_rejection
    assert lockstep.bridge.backend.step_count == 0
    assert np.array_equal(lockstep.bridge.backend.physics_state(), physics)
    assert [m.step for m in lockstep.received["/episode_status"]] == [0]


def test_the_node_keeps_stepping_good_commands_after_bad_ones(lockstep):
    lockstep.reset(variation=0)
    for values, _ in BAD_COMMANDS.values():
        lockstep.send(values)
    lockstep.send([0.0, 0.0, 0.5, 0.0])
    lockstep.spin_until(lambda: lockstep.bridge.backend.step_count == 1, what="the good step")
    _settle(lockstep)
    assert lockstep.bridge.backend.step_count == 1


def test_slightly_out_of_range_values_are_clipped_not_rejected(lockstep):
    lockstep.reset(variation=0)
    rejected = sum(lockstep.bridge.rejections.values())
    lockstep.send([1.3, 0.0, -1.2, 0.0])
    lockstep.spin_until(lambda: lockstep.bridge.backend.step_count == 1, what="a clipped step")
    assert sum(lockstep.bridge.rejections.values()) == rejected


def test_a_chunk_with_one_bad_row_is_rejected_whole(lockstep):
    lockstep.reset(variation=0)
    rows = np.zeros((4, 4))
    rows[2, 1] = math.nan
    lockstep.chunk_pub.publish(ActionChunk(
        action_names=["dx", "dy", "dz", "gripper"], horizon=4, action_dim=4,
        control_period=0.0125, data=rows.ravel().tolist(), first_step=0,
    ))
    lockstep.spin_until(lambda: "chunk" in lockstep.bridge.last_rejection, what="rejection")
    _settle(lockstep)
    assert "NaN in dy (row 2)" in lockstep.bridge.last_rejection
    assert lockstep.bridge.backend.step_count == 0


def test_a_chunk_whose_names_are_not_the_action_names_is_rejected(lockstep):
    lockstep.reset(variation=0)
    lockstep.chunk_pub.publish(ActionChunk(
        action_names=[f"right_j{i}" for i in range(4)], horizon=1, action_dim=4,
        control_period=0.0125, data=[0.0] * 4, first_step=0,
    ))
    lockstep.spin_until(lambda: "do not match" in lockstep.bridge.last_rejection,
                        what="rejection")
    assert lockstep.bridge.backend.step_count == 0


def test_a_joint_trajectory_for_other_joints_is_rejected(lockstep):
    lockstep.reset(variation=0)
    pub = lockstep.probe.create_publisher(
        JointTrajectory, "/joint_trajectory_controller/joint_trajectory", 10
    )
    lockstep.spin_until(lambda: pub.get_subscription_count() >= 1, what="discovery")
    msg = JointTrajectory(joint_names=["elbow", "wrist", "a", "b"])
    msg.points = [JointTrajectoryPoint(positions=[0.0] * 4)]
    pub.publish(msg)
    lockstep.spin_until(lambda: "trajectory" in lockstep.bridge.last_rejection, what="rejection")
    assert lockstep.bridge.backend.step_count == 0
    # ...while one that names our action dimensions, in any order, runs
    msg = JointTrajectory(joint_names=["gripper", "dz", "dy", "dx"])
    msg.points = [JointTrajectoryPoint(positions=[0.0, 1.0, 0.0, 0.0]) for _ in range(3)]
    pub.publish(msg)
    lockstep.spin_until(lambda: lockstep.bridge.backend.step_count == 3, what="3 steps")
    lockstep.probe.destroy_publisher(pub)
