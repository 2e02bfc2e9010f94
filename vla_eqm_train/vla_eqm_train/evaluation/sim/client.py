"""An observation-driven policy client for lockstep evaluation, over real ROS topics.

It subscribes to what the contract names (cameras, state topics, the latched language goal) plus
``/episode_status``, assembles observations with the shared ``ObservationAssembler`` (the decode
path of the policy node and of bag conversion), and answers each complete observation with exactly
one command, through the policy node's own receding-horizon executor
(``vla_eqm_ros.execution.RecedingHorizon``: the same due rule, warm-start count, guard and hold),
so a success rate measured here is one of the node's code path. The sim bridge in lockstep mode
steps once per command, so sim time only advances when the policy answers: the loop is
deterministic for a given seed and as fast as the CPU allows.

"Complete" means every input and the episode status carry the same stamp (the bridge stamps one
step's messages alike); DDS does not order messages across topics, so the client waits for all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray, String

from vla_eqm_msgs.msg import EpisodeStatus
from vla_eqm_ros.contract import Contract
from vla_eqm_ros.decode import DecodeError, ObservationAssembler, stamp_of
from vla_eqm_ros.execution import RecedingHorizon, guard_for

_TYPES = {"sensor_msgs/msg/Image": Image, "sensor_msgs/msg/CompressedImage": CompressedImage,
          "sensor_msgs/msg/JointState": JointState,
          "geometry_msgs/msg/PoseStamped": PoseStamped, "std_msgs/msg/String": String}


@dataclass
class EpisodeLog:
    """What one closed-loop episode did."""

    success: bool = False
    steps: int = 0
    done: bool = False
    iterations: list[int] = field(default_factory=list)  # per decode
    decode_ms: list[float] = field(default_factory=list)  # per decode, prefix + solve
    solve_ms: list[float] = field(default_factory=list)  # per decode, the solve alone
    residuals: list[float] = field(default_factory=list)  # per decode, r of the returned chunk
    k_max_hits: int = 0  # decodes that stopped at K_max instead of reaching tau
    deadline_hits: int = 0  # decodes that the deadline_ms budget stopped (anytime decoding)
    decode_errors: int = 0
    bad_messages: int = 0


class PolicyClient(Node):
    """Answers each lockstep observation with one command; ``policy=None`` only watches (expert
    baseline: the expert node commands, this node scores)."""

    def __init__(self, policy: Any | None, contract: Contract, **node_kwargs: Any) -> None:
        super().__init__("eval_policy_client", **node_kwargs)
        self.policy = policy
        self.contract = contract
        self.assembler = ObservationAssembler(contract, history=4)
        self.execute_steps = int(policy.config.execute_steps) if policy is not None else 1
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._newest: dict[str, int] = {}
        self._inputs = [t for t, _ in contract.input_topics() if t != contract.goal.topic]
        for topic, msgtype in contract.input_topics():
            qos = latched if topic == contract.goal.topic else reliable
            self.create_subscription(_TYPES[msgtype], topic, self._make_cb(topic), qos)
        self.create_subscription(EpisodeStatus, "/episode_status", self._on_status, reliable)
        self._pub = self.create_publisher(Float64MultiArray, contract.action.topic, reliable)
        self.horizon = RecedingHorizon(guard_for(contract), self.execute_steps)
        self.active = False
        self.log = EpisodeLog()
        self._status: Any = None
        self._status_ns = -1
        self._acted_ns = -1

    def command_matched(self) -> bool:
        return self._pub.get_subscription_count() >= 1

    def start_episode(self) -> None:
        """Forget the previous episode; the first observation after the reset starts this one."""
        self.log = EpisodeLog()
        self.assembler.clear()
        self._newest.clear()
        # A reset does not advance sim time: the new episode's first observation carries the
        # stamp of the previous episode's last one, so the "already answered" mark starts over.
        self._status, self._status_ns, self._acted_ns = None, -1, -1
        self.horizon.reset()
        if self.policy is not None:
            self.policy.reset()
        self.active = True

    # -------------------------------------------------------------------------- callbacks
    def _make_cb(self, topic: str):
        def callback(msg: Any) -> None:
            try:
                self.assembler.feed(topic, msg)
                if topic != self.contract.goal.topic:
                    self._newest[topic] = _ns(msg)
            except DecodeError as err:  # a bad message never kills the loop; it is counted
                self.log.bad_messages += 1
                self.get_logger().warning(f"{topic}: {err.reason}", throttle_duration_sec=1.0)
                return
            self._maybe_act()

        return callback

    def _on_status(self, msg: EpisodeStatus) -> None:
        if not self.active:
            return
        self._status, self._status_ns = msg, _ns(msg)
        self._maybe_act()

    def _maybe_act(self) -> None:
        status, s_ns = self._status, self._status_ns
        if not self.active or status is None or s_ns <= self._acted_ns:
            return
        if any(self._newest.get(t) != s_ns for t in self._inputs):
            return  # this step's messages have not all arrived yet
        if not status.done and status.instruction and self.assembler.goal != status.instruction:
            return  # the latched goal of a new task is still on its way (topics are unordered)
        self._acted_ns = s_ns
        self.log.steps = int(status.step)
        self.log.success = bool(status.success)
        if status.done:
            self.log.done = True
            self.active = False
            return
        if self.policy is None:
            return
        result = self.assembler.assemble(s_ns * 1e-9)
        if result.observation is None:
            self.log.bad_messages += 1
            self.get_logger().warning(f"no observation: {result.reason}", throttle_duration_sec=1.0)
            return
        try:
            step = self.horizon.step(result.observation, self._decode)
        except (RuntimeError, ValueError) as err:
            self.log.decode_errors += 1
            self.get_logger().error(f"decode failed: {err}", throttle_duration_sec=1.0)
            return
        action = step.action.action if step.action is not None else self.horizon.hold()
        self._pub.publish(Float64MultiArray(data=[float(v) for v in action]))

    def _decode(self, obs: Any, steps_executed: int) -> tuple[np.ndarray, Any]:
        chunk, rec = self.policy.predict_action_chunk(obs, steps_executed=steps_executed)
        self.log.iterations.append(int(rec.iterations))
        self.log.decode_ms.append(float(rec.prefix_ms + rec.solve_ms))
        self.log.solve_ms.append(float(rec.solve_ms))
        self.log.residuals.append(float(rec.residual))
        self.log.k_max_hits += int(rec.stop_reason == "k_max")
        self.log.deadline_hits += int(rec.stop_reason == "deadline")
        return chunk, rec


def _ns(msg: Any) -> int:
    return int(round(stamp_of(msg) * 1e9))

