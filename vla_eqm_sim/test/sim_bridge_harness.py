"""Test harness for the sim tests: a real sim_bridge node and a probe node on loopback DDS.

Imported by test modules only, after the root conftest has set ROS_AUTOMATIC_DISCOVERY_RANGE,
a private ROS_DOMAIN_ID and OSMesa rendering.
"""

from __future__ import annotations

import collections
import time

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String

from vla_eqm_msgs.msg import ActionChunk, EpisodeStatus
from vla_eqm_msgs.srv import ResetEpisode
from vla_eqm_ros.waiting import spin_until
from vla_eqm_sim.nodes.sim_bridge import SimBridge

TEST_CAMERAS = ["corner", "gripperPOV"]
TEST_IMAGE_SIZE = 64


class BridgeHarness:
    """A bridge plus a probe node that records everything the bridge publishes."""

    def __init__(self, clock_mode: str = "lockstep", **overrides: object) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        params = {
            "task": "button-press-v3",
            "cameras": TEST_CAMERAS,
            "image_size": TEST_IMAGE_SIZE,
            "clock_mode": clock_mode,
            "max_steps": 200,
            "reliable_images": True,
            "publish_task_state": False,  # no expert here; keep the graph small
            **overrides,
        }
        self.bridge = SimBridge(
            context=self.context,
            parameter_overrides=[Parameter(k, value=v) for k, v in params.items()],
        )
        self.probe = rclpy.create_node("probe", context=self.context)
        reliable = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.received: dict[str, collections.deque] = collections.defaultdict(
            lambda: collections.deque(maxlen=500)
        )
        topics = {f"/camera/{c}/image_raw": Image for c in params["cameras"]}
        topics.update({"/joint_states": JointState, "/ee_pose": PoseStamped,
                       "/episode_status": EpisodeStatus, "/clock": Clock})
        for topic, cls in topics.items():
            self.probe.create_subscription(
                cls, topic, lambda msg, t=topic: self.received[t].append(msg), reliable
            )
        self.probe.create_subscription(
            String, "/language_goal", lambda m: self.received["/language_goal"].append(m), latched
        )
        self.command_pub = self.probe.create_publisher(Float64MultiArray, "/command", reliable)
        self.chunk_pub = self.probe.create_publisher(ActionChunk, "/command_chunk", reliable)
        self.reset_client = self.probe.create_client(ResetEpisode, "/sim/reset")
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.bridge)
        self.executor.add_node(self.probe)
        self.spin_until(
            lambda: self.bridge.outputs_matched()
            and self.command_pub.get_subscription_count() >= 1
            and self.chunk_pub.get_subscription_count() >= 1
            and self.reset_client.service_is_ready(),
            what="discovery",
        )

    def spin_until(self, predicate, timeout: float = 20.0, what: str = "condition") -> None:
        assert spin_until(self.executor, predicate, timeout), f"timed out waiting for {what}"

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.02)

    def reset(self, task: str = "", variation: int = 0, seed: int = 0) -> ResetEpisode.Response:
        for queue in self.received.values():
            queue.clear()
        future = self.reset_client.call_async(
            ResetEpisode.Request(task=task, variation=variation, seed=seed)
        )
        self.spin_until(future.done, what="reset response")
        response = future.result()
        if response.success:  # the step-0 observation follows the reset
            self.spin_until(lambda: len(self.received["/joint_states"]) >= 1, what="step 0")
        return response

    def send(self, values) -> None:
        self.command_pub.publish(Float64MultiArray(data=[float(v) for v in values]))

    def ee_position(self) -> np.ndarray:
        p = self.received["/ee_pose"][-1].pose.position
        return np.array([p.x, p.y, p.z])

    def close(self) -> None:
        self.executor.shutdown()
        self.bridge.backend.close()
        self.bridge.destroy_node()
        self.probe.destroy_node()
        rclpy.shutdown(context=self.context)


