"""Test harness for the policy node: a real checkpoint, a real node and a real I/O node over DDS.

The checkpoint is the core's ``debug`` preset with random weights (plumbing tests do not need a
trained policy), saved with the core's checkpoint module. The I/O node plays robot: it publishes
camera frames, joint states and the goal, and records commands, decoder status, diagnostics and
the policy node's log lines from ``/rosout`` (so "rejected with a logged reason" is checked on
what an operator would actually see).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Log
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from vla_eqm_msgs.msg import DecoderStatus
from vla_eqm_ros.checkpoint import save_checkpoint
from vla_eqm_ros.config import get_preset
from vla_eqm_ros.contract import Contract
from vla_eqm_ros.model import PI0EqMModel
from vla_eqm_ros.nodes.policy_node import PolicyNode
from vla_eqm_ros.nodes.runtime import InProcess
from vla_eqm_ros.waiting import wait_until

JOINTS = ["j0", "j1", "j2", "j3"]
CONTRACT = {
    "cameras": [{"name": "corner", "topic": "/camera/corner/image_raw", "height": 32,
                 "width": 32, "max_age": 0.3}],
    "state": [{"topic": "/joint_states", "type": "joint_state", "names": JOINTS,
               "max_age": 0.3}],
    "goal": {"topic": "/language_goal"},
    "action": {"names": ["dx", "dy", "dz", "gripper"], "topic": "/command",
               "type": "float64_multi_array", "kind": "cartesian_delta",
               "low": [-1, -1, -1, -1], "high": [1, 1, 1, 1], "hold": [0, 0, 0, None],
               "delta_scale": 0.01},
    "control_period": 0.05,
    "alignment": {"mode": "asof", "max_skew": 0.1},
}
JOINT_CONTRACT = {**CONTRACT, "action": {
    "names": JOINTS, "topic": "/joint_trajectory_controller/joint_trajectory",
    "type": "joint_trajectory", "low": [-3.0] * 4, "high": [3.0] * 4}}
GOAL_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)
ROSOUT_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
HOLD_MOTION = [0.0, 0.0, 0.0]  # CONTRACT's hold: zero motion, gripper kept


def build_checkpoint(directory: Path, contract: dict | None = None, horizon: int = 0) -> Path:
    """Debug preset, random weights, the test contract stored in the checkpoint."""
    cfg = get_preset("debug")
    if horizon:
        cfg = cfg.replace(model=dataclasses.replace(cfg.model, horizon=horizon))
    cfg = cfg.replace(contract=Contract.from_dict(contract or CONTRACT).to_dict(),
                      action_names=("dx", "dy", "dz", "gripper"), state_names=tuple(JOINTS))
    return save_checkpoint(directory, PI0EqMModel(cfg), cfg)


def image(stamp: Any, h: int = 32, w: int = 32, encoding: str = "rgb8") -> Image:
    msg = Image(height=h, width=w, encoding=encoding, step=w * 3)
    msg.header.stamp = stamp
    msg.data = np.random.default_rng(0).integers(0, 255, h * w * 3, dtype=np.uint8).tobytes()
    return msg


def joints(stamp: Any, names: list[str] = JOINTS, values: list[float] | None = None) -> JointState:
    msg = JointState(name=list(names), position=values or [0.1 * i for i in range(len(names))])
    msg.header.stamp = stamp
    return msg


_names = iter(range(10**6))


def unique_name() -> str:
    return f"policy_node_{next(_names)}"


def is_hold(msg: Any) -> bool:
    """A Float64MultiArray command that is CONTRACT's hold action (a random policy never is)."""
    return list(msg.data[:3]) == HOLD_MOTION


class Harness:
    """Policy node + I/O node on one MultiThreadedExecutor in a private context.

    ``node_name``: tests that read /rosout use a name of their own (``unique_name``): with the
    Jazzy wheels, /rosout stops carrying a node's lines after an earlier node of the same name in
    this process was finalized.
    """

    def __init__(self, params: dict[str, Any], node_name: str = "policy_node") -> None:
        self.name = node_name
        self.lock = threading.RLock()
        self.commands: list[tuple[float, Any]] = []
        self.statuses: list[DecoderStatus] = []
        self.status_times: list[float] = []  # receipt times, index-aligned with statuses
        self.diagnostics: list[DiagnosticArray] = []
        self.logs: list[str] = []
        self._streaming = threading.Event()
        self._stream_thread: threading.Thread | None = None
        self.joint_values: list[float] | None = None
        # the runtime's in-process bring-up (private context, supervised multi-threaded executor)
        self.run = InProcess(lambda context: [
            PolicyNode(node_name, context=context, parameter_overrides=[
                Parameter(k, value=v) for k, v in params.items()]),
            self._make_io(context)], policy_node=lambda nodes: nodes[0]).__enter__()
        self.node, self.io = self.run.nodes
        self.context, self.executor = self.run.context, self.run.executor

    def _make_io(self, context: Any) -> Any:
        """The robot: camera, joints and goal out; commands, status, diagnostics and logs in."""
        io = rclpy.create_node("robot_io", context=context)
        self.image_pub = io.create_publisher(Image, "/camera/corner/image_raw",
                                             qos_profile_sensor_data)
        self.joint_pub = io.create_publisher(JointState, "/joint_states", 10)
        self.goal_pub = io.create_publisher(String, "/language_goal", GOAL_QOS)
        io.create_subscription(Float64MultiArray, "/command", self._rec(self.commands), 50)
        io.create_subscription(
            JointTrajectory, "/joint_trajectory_controller/joint_trajectory",
            self._rec(self.commands), 50)
        io.create_subscription(DecoderStatus, f"/{self.name}/decoder_status",
                               self._on_status, 50)
        io.create_subscription(DiagnosticArray, "/diagnostics",
                               lambda m: self._append(self.diagnostics, m), 10)
        io.create_subscription(Log, "/rosout", self._on_log, ROSOUT_QOS)
        return io

    def executor_alive(self) -> bool:
        """The supervised executor still spins (it never died under the node)."""
        spin = self.run.spin
        return spin is not None and spin.spinning

    def _on_status(self, msg: DecoderStatus) -> None:
        with self.lock:
            self.statuses.append(msg)
            self.status_times.append(time.monotonic())

    def _on_log(self, msg: Log) -> None:
        if msg.name == self.name:
            self._append(self.logs, msg.msg)

    def _append(self, buf: list, msg: Any) -> None:
        with self.lock:
            buf.append(msg)

    def _rec(self, buf: list) -> Callable[[Any], None]:
        return lambda m: self._append(buf, (time.monotonic(), m))

    def now(self) -> Any:
        return self.io.get_clock().now().to_msg()

    def publish_goal(self, goal: str) -> None:
        self.goal_pub.publish(String(data=goal))

    def publish_inputs(self) -> None:
        stamp = self.now()
        self.image_pub.publish(image(stamp))
        self.joint_pub.publish(joints(stamp, values=self.joint_values))

    def start_stream(self, rate_hz: float = 20.0) -> None:
        self._streaming.set()

        def loop() -> None:
            while self._streaming.is_set():
                self.publish_inputs()
                time.sleep(1.0 / rate_hz)

        self._stream_thread = threading.Thread(target=loop, daemon=True)
        self._stream_thread.start()

    def stop_stream(self) -> None:
        self._streaming.clear()
        if self._stream_thread is not None:
            self._stream_thread.join()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        def locked() -> bool:
            with self.lock:
                return predicate()

        return wait_until(locked, timeout)

    def commands_since(self, t: float) -> list[Any]:
        with self.lock:
            return [m for ts, m in self.commands if ts >= t]

    def call(self, srv_type: Any, name: str, request: Any, timeout: float = 10.0) -> Any:
        """Call one of the node's services from the I/O node (a separate node, real DDS)."""
        client = self.io.create_client(srv_type, name)
        try:
            assert client.wait_for_service(timeout_sec=timeout), f"{name} not available"
            future = client.call_async(request)
            assert self.wait_for(future.done, timeout=timeout), f"{name} did not answer"
            return future.result()
        finally:
            self.io.destroy_client(client)

    def enable(self, on: bool) -> Any:
        return self.call(SetBool, f"/{self.name}/enable", SetBool.Request(data=on))

    def reset(self) -> Any:
        return self.call(Trigger, f"/{self.name}/reset", Trigger.Request())

    def diagnostics_values(self) -> dict[str, str]:
        """Key/values of the newest /diagnostics status of the policy loop."""
        with self.lock:
            if not self.diagnostics:
                return {}
            status = self.diagnostics[-1].status[0]
        return {kv.key: kv.value for kv in status.values}

    def logged(self, text: str) -> bool:
        with self.lock:
            return any(text in line for line in self.logs)

    def activate_with_stream(self, goal: str = "press the button") -> None:
        """configure, latch a goal, stream inputs, activate; returns once commands flow."""
        assert self.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        self.publish_goal(goal)
        self.start_stream()
        assert self.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert self.wait_for(lambda: len(self.statuses) >= 1 and len(self.commands) >= 3)

    def close(self) -> None:
        """Shut the node down through its lifecycle first (stops the timer before teardown)."""
        self.stop_stream()
        if self.node.lifecycle_state != "finalized":
            self.node.trigger_shutdown()
        self.run.__exit__(None, None, None)
