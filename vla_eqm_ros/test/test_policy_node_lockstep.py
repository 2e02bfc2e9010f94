"""The policy node in lockstep with the real sim bridge (MuJoCo Meta-World) under sim time.

In lockstep the bridge steps once per command and /clock only advances then, so a timer on sim
time would wait forever; ``trigger: observation`` is what makes this loop run. The contract is
the bridge's: a 32 px corner camera, the nine Sawyer joint positions, [dx, dy, dz, gripper].
"""

from __future__ import annotations

import dataclasses
import time

import pytest
import rclpy
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray

from vla_eqm_ros.checkpoint import save_checkpoint
from vla_eqm_ros.config import get_preset
from vla_eqm_ros.contract import Contract
from vla_eqm_ros.model import PI0EqMModel
from vla_eqm_ros.nodes.policy_node import PolicyNode
from vla_eqm_ros.nodes.runtime import InProcess
from vla_eqm_ros.waiting import wait_until

sim_bridge = pytest.importorskip("vla_eqm_sim.nodes.sim_bridge")
metaworld_backend = pytest.importorskip("vla_eqm_sim.metaworld_backend")

STEPS = 30  # episode length: the bridge refuses commands after this many steps
SIZE = 32


def _sim_checkpoint(directory) -> str:
    joints = list(metaworld_backend.SAWYER_JOINTS)
    contract = {
        "cameras": [{"name": "corner", "topic": "/camera/corner/image_raw", "height": SIZE,
                     "width": SIZE, "max_age": 0.3}],
        "state": [{"topic": "/joint_states", "type": "joint_state", "names": joints,
                   "max_age": 0.3}],
        "action": {"names": ["dx", "dy", "dz", "gripper"], "topic": "/command",
                   "type": "float64_multi_array", "kind": "cartesian_delta",
                   "low": [-1] * 4, "high": [1] * 4, "hold": [0, 0, 0, None],
                   "delta_scale": 0.01},
        "ee_pose_topic": "/ee_pose",
        "control_period": 0.0125,  # one Meta-World step
        "alignment": {"mode": "asof", "max_skew": 0.05},
    }
    cfg = get_preset("debug")
    cfg = cfg.replace(model=dataclasses.replace(cfg.model, state_dim=len(joints)),
                      contract=Contract.from_dict(contract).to_dict(),
                      action_names=("dx", "dy", "dz", "gripper"), state_names=tuple(joints))
    return str(save_checkpoint(directory, PI0EqMModel(cfg), cfg))


def test_n_observations_give_n_commands_and_the_lockstep_bridge_advances_n_steps(
        tmp_path) -> None:
    commands: list[list[float]] = []

    def make_nodes(context):
        bridge = sim_bridge.SimBridge(context=context, parameter_overrides=[
            Parameter(k, value=v) for k, v in {
                "cameras": ["corner"], "image_size": SIZE, "clock_mode": "lockstep",
                "max_steps": STEPS, "end_on_success": False, "reliable_images": True,
                "publish_task_state": False}.items()])
        node = PolicyNode(context=context, parameter_overrides=[
            Parameter("checkpoint", value=_sim_checkpoint(tmp_path / "sim_ckpt")),
            Parameter("trigger", value="observation"),
            Parameter("use_sim_time", value=True),
            Parameter("execute_steps", value=4)])
        probe = rclpy.create_node("probe", context=context)
        probe.create_subscription(Float64MultiArray, "/command",
                                  lambda m: commands.append(list(m.data)),
                                  QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        return [node, probe, bridge]  # teardown order: the node's hold first, the bridge last

    def wait_for(predicate, timeout: float = 30.0) -> bool:
        return wait_until(predicate, timeout)

    bridge = None
    try:
        with InProcess(make_nodes, policy_node=lambda nodes: nodes[0]) as run:
            node, _probe, bridge = run.nodes
            assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
            assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
            assert wait_for(lambda: bridge._image_pubs["corner"].get_subscription_count() >= 1
                            and bridge._joint_pub.get_subscription_count() >= 1)
            time.sleep(0.5)  # nothing moves: no observation since the node subscribed
            assert commands == [] and bridge.backend.step_count == 0
            ok, _ = bridge.reset_episode(None, 0, 0)  # observation 0 of the episode
            assert ok
            # observations 0..STEPS: each one command; the last is refused (episode over)
            assert wait_for(lambda: len(commands) >= STEPS + 1), \
                f"{len(commands)} commands, {bridge.backend.step_count} steps"
            time.sleep(0.5)
            assert len(commands) == STEPS + 1
            assert bridge.backend.step_count == STEPS
            assert bridge.rejections["command"] == 1
            assert node.stats.dropped_cycles == 0 and node.stats.holds == 0
            assert node.stats.solves == -(-(STEPS + 1) // 4), \
                "one solve per execute_steps cycles"
            assert node.get_clock().now().nanoseconds == bridge.sim_time_ns, \
                "node runs on sim time"
    finally:
        if bridge is not None:
            bridge.backend.close()
