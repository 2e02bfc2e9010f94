"""Subscriptions for every contract input, feeding the shared ``ObservationAssembler``.

The ROS side of input synchronization: QoS per input kind (sensor-data for cameras, reliable for
state, reliable + transient local for the latched goal), receipt times from the node clock (so
sim time works), an ``on_input`` hook that drives observation-triggered cycles, and one guarded
callback per topic: a bad message is rejected with a reason, counted and logged (throttled); it
never raises into the executor. The alignment itself (newest consistent set, bounded skew,
per-input ages) is ``vla_eqm_ros.decode.ObservationAssembler``, the same code bag conversion uses.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import CallbackGroup
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import String

from vla_eqm_ros.contract import Contract
from vla_eqm_ros.decode import DecodeError, ObservationAssembler, decode_goal

GOAL_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)
STATE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
RATE_SAMPLES = 40  # receipts per input behind the measured input period


class InputHub:
    """Owns the subscriptions and the assembler; every method is thread-safe."""

    def __init__(
        self,
        node: Node,
        contract: Contract,
        group: CallbackGroup,
        on_reject: Callable[[str, str], None],
        on_goal: Callable[[str, bool], None],
        on_input: Callable[[str, float, float], None] | None = None,
    ) -> None:
        self.node = node
        self.contract = contract
        self.assembler = ObservationAssembler(contract)
        self.lock = threading.Lock()
        self.joint_positions: dict[str, float] = {}  # newest measured, by joint name (holds)
        self.joint_stamp = -1.0
        self.ee_position: np.ndarray | None = None  # for drawing the plan
        self._on_reject = on_reject
        self._on_goal = on_goal
        self._on_input = on_input  # (input name, stamp, receipt time) after a good sample
        self.subscriptions: list[Any] = []
        # input name (camera name or state topic) -> its topic: /diagnostics speaks topics
        self.topic_of = {c.name: c.topic for c in contract.cameras}
        self.topic_of.update({s.topic: s.topic for s in contract.state})
        self._arrivals: dict[str, deque[float]] = {n: deque(maxlen=RATE_SAMPLES)
                                                   for n in self.topic_of}
        for cam in contract.cameras:
            msg_type = CompressedImage if cam.transport == "compressed" else Image
            self._subscribe(msg_type, cam.topic, qos_profile_sensor_data, group)
        for src in contract.state:
            msg_type = JointState if src.type == "joint_state" else PoseStamped
            self._subscribe(msg_type, src.topic, STATE_QOS, group)
        extra = []
        if contract.ee_pose_topic and contract.ee_pose_topic not in self._topics():
            extra.append((PoseStamped, contract.ee_pose_topic))
        if contract.action.type == "joint_trajectory" and "/joint_states" not in self._topics():
            extra.append((JointState, "/joint_states"))  # measured positions for holding
        for msg_type, topic in extra:
            self.subscriptions.append(node.create_subscription(
                msg_type, topic, self._guarded(topic, self._observe_only), STATE_QOS,
                callback_group=group))
        self.subscriptions.append(node.create_subscription(
            String, contract.goal.topic, self._guarded(contract.goal.topic, self._goal),
            GOAL_QOS, callback_group=group))

    def _topics(self) -> set[str]:
        return {c.topic for c in self.contract.cameras} | {s.topic for s in self.contract.state}

    def _subscribe(self, msg_type: Any, topic: str, qos: Any, group: CallbackGroup) -> None:
        self.subscriptions.append(self.node.create_subscription(
            msg_type, topic, self._guarded(topic, self._feed), qos, callback_group=group))

    def _now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _guarded(self, topic: str, handler: Callable[[str, Any], None]) -> Callable[[Any], None]:
        def callback(msg: Any) -> None:
            try:
                handler(topic, msg)
            except DecodeError as exc:
                self._on_reject(topic, exc.reason)
            except Exception as exc:  # input must never crash the node
                self._on_reject(topic, f"unexpected {type(exc).__name__}: {exc}")
        return callback

    def _feed(self, topic: str, msg: Any) -> None:
        self._observe_only(topic, msg)
        now = self._now()
        with self.lock:
            name = self.assembler.feed(topic, msg, recv_time=now)
            newest = self.assembler.newest(name)
            self._arrivals[name].append(now)
        if self._on_input is not None and newest is not None:
            self._on_input(name, newest[0], now)

    def _observe_only(self, topic: str, msg: Any) -> None:
        """Side information: measured joint positions (holds) and the end-effector position."""
        if isinstance(msg, JointState):
            pos = np.asarray(msg.position, dtype=np.float64)
            if len(msg.name) == pos.size and np.all(np.isfinite(pos)):
                with self.lock:
                    self.joint_positions.update(zip(msg.name, pos.tolist(), strict=True))
                    self.joint_stamp = self._now()
        elif isinstance(msg, PoseStamped) and topic in (self.contract.ee_pose_topic, "/ee_pose"):
            p = msg.pose.position
            xyz = np.array([p.x, p.y, p.z], dtype=np.float64)
            if np.all(np.isfinite(xyz)):
                with self.lock:
                    self.ee_position = xyz

    def _goal(self, topic: str, msg: Any) -> None:
        goal = decode_goal(msg)
        if not goal:
            raise DecodeError("empty goal string")
        with self.lock:
            changed = self.assembler.set_goal(goal)
        self._on_goal(goal, changed)

    def input_periods(self, min_samples: int = RATE_SAMPLES // 2) -> dict[str, float]:
        """Median receipt interval (s) of each input with at least ``min_samples`` receipts: what
        the feed delivers, to hold against the configured maximum ages."""
        with self.lock:
            out = {}
            for name, times in self._arrivals.items():
                if len(times) >= min_samples:
                    out[name] = float(np.median(np.diff(np.asarray(times))))
            return out

    def clear(self) -> None:
        """Forget every input sample (a new episode); the latched goal stays."""
        with self.lock:
            self.assembler.clear()

    def assemble(self, max_ages: dict[str, float]) -> Any:
        now = self._now()
        with self.lock:
            self.assembler.max_ages.update(max_ages)
            return self.assembler.assemble(now)

    def measured_joints(self, names: tuple[str, ...], max_age: float,
                        fallback: np.ndarray | None = None) -> np.ndarray | None:
        """Measured positions of ``names``, or None when stale or nothing is measured.

        An action dimension that /joint_states does not carry (a gripper command next to seven
        arm joints) takes its value from ``fallback``, the last commanded action: holding means
        the arm stays where it *is* while the gripper keeps what it was told. Without a fallback
        such a name makes the answer None.
        """
        with self.lock:
            if self._now() - self.joint_stamp > max_age:
                return None
            out: list[float] = []
            for i, n in enumerate(names):
                if n in self.joint_positions:
                    out.append(self.joint_positions[n])
                elif fallback is not None:
                    out.append(float(fallback[i]))
                else:
                    return None
            if not any(n in self.joint_positions for n in names):
                return None
            return np.array(out, dtype=np.float64)

    def destroy(self) -> None:
        for sub in self.subscriptions:
            self.node.destroy_subscription(sub)
        self.subscriptions.clear()
