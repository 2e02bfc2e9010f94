"""Joint-position control of the Meta-World Sawyer: the edited model, the servos, the bridge's
JointTrajectory execution and limit clamping, and the joint-space expert end to end."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
from sim_bridge_harness import BridgeHarness
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_eqm_sim.metaworld_backend import MetaWorldBackend
from vla_eqm_sim.sawyer_joint import ARM_JOINTS, HAND_QUAT, SAWYER_J1_RANGE
from vla_eqm_sim.scripted_joint_expert import JointSpaceExpert

JOINT_NAMES = [*ARM_JOINTS, "gripper"]


@pytest.fixture(scope="module")
def backend() -> MetaWorldBackend:
    b = MetaWorldBackend("reach-v3", 0, 0, control_mode="joint")
    yield b
    b.close()


def test_the_joint_model_has_arm_servos_no_active_weld_and_the_sawyer_j1_range(backend):
    model, data = backend._env.model, backend._env.data
    names = [model.actuator(i).name for i in range(model.nu)]
    assert [f"{j}_position" for j in ARM_JOINTS] == [n for n in names if n.endswith("_position")]
    assert model.nu == 9  # 7 arm servos + the two finger actuators kept
    weld = [i for i in range(model.neq) if model.eq_type[i] == mujoco.mjtEq.mjEQ_WELD]
    assert weld and not any(data.eq_active[i] for i in weld)
    assert tuple(model.joint("right_j1").range) == pytest.approx(SAWYER_J1_RANGE)
    assert backend.action_spec.names == tuple(JOINT_NAMES)
    assert backend.action_spec.control_mode == "joint"


def test_reset_puts_the_hand_where_meta_world_puts_it_without_the_mocap(backend):
    backend.reset("reach-v3", 3, 0)
    env = backend._env
    hand = env.data.body("hand")
    assert np.linalg.norm(hand.xpos - env.hand_init_pos) < 2e-3
    assert abs(abs(np.dot(hand.xquat, HAND_QUAT)) - 1.0) < 1e-4  # same orientation as the mocap
    np.testing.assert_allclose(backend.hold_action()[:7], backend.joint_positions()[:7], atol=2e-3)


def test_holding_the_targets_keeps_the_arm_still_against_gravity(backend):
    backend.reset("reach-v3", 0, 0)
    start, _ = backend.ee_pose()
    for _ in range(40):  # half a second
        backend.step(backend.hold_action())
    end, _ = backend.ee_pose()
    assert np.linalg.norm(end - start) < 1e-3


def test_the_servos_track_a_step_target_within_tolerance(backend):
    for joint in (0, 3, 5):
        backend.reset("reach-v3", 0, 0)
        target = backend.hold_action()
        start = backend.joint_positions()[:7]
        target[joint] += 0.1
        for _ in range(24):  # 300 ms: ~9 time constants of the 30 rad/s servo
            backend.step(target)
        reached = backend.joint_positions()[:7]
        assert abs(reached[joint] - target[joint]) < 2e-3, (joint, reached[joint], target[joint])
        others = [j for j in range(7) if j != joint]
        assert np.all(np.abs(reached[others] - start[others]) < 0.02), joint


def test_an_out_of_limit_target_is_clamped_to_the_joint_limit(backend):
    backend.reset("reach-v3", 0, 0)
    target = backend.hold_action()
    target[2] = 9.0  # right_j2 is limited to +-3.04 rad
    backend.step(target)
    assert backend.hold_action()[2] == pytest.approx(backend.action_spec.high[2])
    assert backend._env.arm_target[2] == pytest.approx(backend.action_spec.high[2])


def test_the_joint_space_expert_succeeds_where_the_native_expert_does(backend):
    expert = JointSpaceExpert("button-press-v3")
    backend.reset("button-press-v3", 0, 0)
    while not backend.done:
        command = expert.act(backend.task_state())
        assert command.shape == (8,)
        backend.step(command)
    assert backend.success and backend.step_count < 150


# --- over the sim bridge (real rclpy/DDS on loopback) ------------------------------------------
@pytest.fixture(scope="module")
def joint_bridge():
    harness = BridgeHarness("lockstep", control_mode="joint", cameras=["corner"], task="reach-v3")
    executed: list[np.ndarray] = []
    step = harness.bridge.backend.step

    def recording_step(action):  # observe what reaches the simulator, tick by tick
        executed.append(np.array(action, dtype=np.float64))
        return step(action)

    harness.bridge.backend.step = recording_step
    harness.executed = executed
    harness.traj_pub = harness.probe.create_publisher(
        JointTrajectory, "/joint_trajectory_controller/joint_trajectory", 10
    )
    harness.spin_until(lambda: harness.traj_pub.get_subscription_count() >= 1, what="discovery")
    yield harness
    harness.close()


def _trajectory(rows: np.ndarray, times: list[float], names=JOINT_NAMES) -> JointTrajectory:
    msg = JointTrajectory(joint_names=list(names))
    for row, t in zip(rows, times, strict=True):
        point = JointTrajectoryPoint(positions=[float(v) for v in row])
        point.time_from_start.sec = int(t)
        point.time_from_start.nanosec = int(round((t - int(t)) * 1e9))
        msg.points.append(point)
    return msg


def _run(h: BridgeHarness, msg, steps: int) -> list[np.ndarray]:
    h.reset("reach-v3", 0, 0)
    h.executed.clear()
    h.traj_pub.publish(msg)
    h.spin_until(lambda: h.bridge.backend.step_count >= steps, what=f"{steps} steps")
    h.spin_for(0.2)
    assert h.bridge.backend.step_count == steps
    return list(h.executed)


def test_a_joint_trajectory_runs_point_by_point_at_its_timestamps(joint_bridge):
    h = joint_bridge
    h.reset("reach-v3", 0, 0)
    hold = h.bridge.backend.hold_action()
    dt = h.bridge.backend.dt
    rows = np.stack([hold + np.append(np.full(7, 0.01 * (k + 1)), 0.0) for k in range(4)])
    executed = _run(h, _trajectory(rows, [dt * (k + 1) for k in range(4)]), 4)
    np.testing.assert_allclose(np.stack(executed), rows, atol=1e-12)


def test_points_two_ticks_apart_are_interpolated_at_the_control_rate(joint_bridge):
    h = joint_bridge
    h.reset("reach-v3", 0, 0)
    hold = h.bridge.backend.hold_action()
    dt = h.bridge.backend.dt
    rows = np.stack([hold + np.append(np.full(7, 0.04 * (k + 1)), 0.0) for k in range(2)])
    executed = np.stack(_run(h, _trajectory(rows, [2 * dt, 4 * dt]), 4))
    expected = np.stack([(hold + rows[0]) / 2, rows[0], (rows[0] + rows[1]) / 2, rows[1]])
    np.testing.assert_allclose(executed, expected, atol=1e-9)


def test_trajectory_columns_are_reordered_by_joint_name(joint_bridge):
    h = joint_bridge
    h.reset("reach-v3", 0, 0)
    target = h.bridge.backend.hold_action()
    target[0] += 0.05
    order = list(reversed(range(8)))
    names = [JOINT_NAMES[i] for i in order]
    executed = _run(h, _trajectory(target[order][None, :], [h.bridge.backend.dt], names), 1)
    np.testing.assert_allclose(executed[0], target)


def test_out_of_limit_targets_are_clamped_with_a_warning_not_rejected(joint_bridge):
    h = joint_bridge
    h.reset("reach-v3", 0, 0)
    target = h.bridge.backend.hold_action()
    target[1] = 2.9  # right_j1 ends at 2.2736 rad
    clamps = sum(h.bridge.clamps.values())
    rejections = sum(h.bridge.rejections.values())
    h.send(target)  # Float64MultiArray, one tick
    h.spin_until(lambda: h.bridge.backend.step_count == 1, what="the clamped step")
    assert sum(h.bridge.clamps.values()) == clamps + 1
    assert "right_j1=2.9" in h.bridge.last_clamp
    assert sum(h.bridge.rejections.values()) == rejections
    assert h.executed[-1][1] == pytest.approx(SAWYER_J1_RANGE[1])


def test_a_trajectory_with_non_increasing_times_is_rejected(joint_bridge):
    h = joint_bridge
    h.reset("reach-v3", 0, 0)
    hold = h.bridge.backend.hold_action()
    h.traj_pub.publish(_trajectory(np.stack([hold, hold]), [0.05, 0.05]))
    h.spin_until(lambda: "strictly increasing" in h.bridge.last_rejection, what="rejection")
    assert h.bridge.backend.step_count == 0
