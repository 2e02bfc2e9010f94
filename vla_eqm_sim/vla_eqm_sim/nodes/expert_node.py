"""``expert_node``: Meta-World's scripted expert as a teleoperator on the command topic.

It answers every privileged state message (``sim/task_state``, published by the sim bridge once
per step) with one command on ``command``. In lockstep mode that is exactly one step per
observation, so a recording is deterministic; in realtime mode the newest command wins each tick.
The task comes from the state message's dimension label, so switching tasks by reset just works.

``control_mode:=joint`` (read-only, must match the bridge's) drives the same experts through
differential IK (``JointSpaceExpert``): the commands are seven joint targets plus the gripper, and
the state message carries the joints and the step as well (``sawyer_joint.joint_task_state``).
"""

from __future__ import annotations

import sys

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray

from vla_eqm_sim.backend import CONTROL_MODES
from vla_eqm_sim.nodes.messages import command_msg
from vla_eqm_sim.scripted_experts import ScriptedExpert
from vla_eqm_sim.scripted_joint_expert import JointSpaceExpert


class ExpertNode(Node):
    """Publishes ``ScriptedExpert.act(state)`` (or ``JointSpaceExpert.act``) per task state."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("expert_node", **node_kwargs)
        self.declare_parameter(
            "enabled",
            True,
            ParameterDescriptor(description="publish commands (false: listen only)"),
        )
        self.control_mode = self.declare_parameter(
            "control_mode",
            "cartesian",
            ParameterDescriptor(
                description="cartesian | joint (IK to joint targets); match the sim bridge",
                read_only=True,
            ),
        ).value
        if self.control_mode not in CONTROL_MODES:
            raise ValueError(f"control_mode {self.control_mode!r} not in {CONTROL_MODES}")
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self._experts: dict[str, ScriptedExpert | JointSpaceExpert] = {}
        self._pub = self.create_publisher(Float64MultiArray, "command", qos)
        self.create_subscription(Float64MultiArray, "sim/task_state", self._on_state, qos)
        self.commands_sent = 0

    def command_subscribers(self) -> int:
        """Matched subscribers of the command topic (the bridge, a recorder)."""
        return self._pub.get_subscription_count()

    def _on_state(self, msg: Float64MultiArray) -> None:
        if not self.get_parameter("enabled").value:
            return
        task = msg.layout.dim[0].label if msg.layout.dim else ""
        try:
            expert = self._experts.get(task) or self._experts.setdefault(
                task, JointSpaceExpert(task) if self.control_mode == "joint"
                else ScriptedExpert(task)
            )
            action = expert.act(np.asarray(msg.data, dtype=np.float64))
        except Exception as err:  # a malformed state must not kill the node
            self.get_logger().warning(f"no command for state of task {task!r}: {err}",
                                      throttle_duration_sec=1.0)
            return
        self._pub.publish(command_msg(action))
        self.commands_sent += 1


def main(args: list[str] | None = None) -> int:
    """Entry point: ``ros2 run vla_eqm_sim expert_node``."""
    from vla_eqm_ros.nodes.runtime import run_single_node

    return run_single_node(ExpertNode, args)


if __name__ == "__main__":
    sys.exit(main())
