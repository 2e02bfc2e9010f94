"""A recorder node: subscribes to what a robot recording holds and buffers one episode.

Topics: camera images, ``joint_states``, ``ee_pose``, ``language_goal``, ``command`` and
``episode_status`` (not the privileged ``sim/task_state``, which no robot has). Subscriptions are
raw: the bag gets the CDR bytes exactly as they came off the wire, as ``ros2 bag record`` stores
them. (``rclpy.serialization.serialize_message`` is no substitute: on Jazzy it returns trailing
junk bytes that strict CDR readers such as rosbags reject.)

Bag time: stamped messages use their header stamp (sim time in lockstep mode). Unstamped ones get a
deterministic time instead of a racy arrival time: command i is stamped with the time of
observation i it answers, and the language goal with the episode's first observation.
"""

from __future__ import annotations

import collections

from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray, String

from vla_eqm_msgs.msg import EpisodeStatus
from vla_eqm_sim.bag_types import make_typestore
from vla_eqm_sim.bag_writer import BufferedMessage, header_stamp_ns


class RecorderNode(Node):
    """Buffers the recorded topics between ``start_episode`` and ``take_episode``."""

    def __init__(self, cameras: list[str], image_transport: str = "raw", **node_kwargs) -> None:
        """``image_transport``: ``raw`` records ``/camera/<c>/image_raw``; ``compressed`` records
        ``/camera/<c>/image_raw/compressed`` (the bytes the camera sent, as on a robot)."""
        super().__init__("episode_recorder", **node_kwargs)
        self.cameras = list(cameras)
        compressed = image_transport == "compressed"
        image = ((CompressedImage, "sensor_msgs/msg/CompressedImage", "/compressed") if compressed
                 else (Image, "sensor_msgs/msg/Image", ""))
        reliable = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        self._stamped: dict[str, tuple[type, str]] = {
            **{f"/camera/{cam}/image_raw{image[2]}": image[:2] for cam in self.cameras},
            "/joint_states": (JointState, "sensor_msgs/msg/JointState"),
            "/ee_pose": (PoseStamped, "geometry_msgs/msg/PoseStamped"),
            "/episode_status": (EpisodeStatus, "vla_eqm_msgs/msg/EpisodeStatus"),
        }
        self.recording = False
        self.counts: collections.Counter[str] = collections.Counter()
        self.final_status = None  # rosbags EpisodeStatus once done
        self._messages: list[BufferedMessage] = []
        self._commands: list[bytes] = []
        self._obs_stamps: list[int] = []  # joint_states stamps: the observation clock
        self._goal: bytes | None = None
        self._subs = []
        self._store = make_typestore()
        for topic, (cls, name) in self._stamped.items():
            self._subs.append(self.create_subscription(
                cls, topic, self._make_stamped_cb(topic, name), reliable, raw=True
            ))
        self._subs.append(self.create_subscription(
            Float64MultiArray, "/command", self._on_command, reliable, raw=True
        ))
        self._subs.append(self.create_subscription(
            String, "/language_goal", self._on_goal, latched, raw=True
        ))

    @property
    def topics(self) -> list[str]:
        return [*self._stamped, "/command", "/language_goal"]

    def _make_stamped_cb(self, topic: str, msgtype: str):
        def callback(data: bytes) -> None:
            if not self.recording:
                return
            stamp = header_stamp_ns(data)
            self._messages.append(BufferedMessage(topic, msgtype, stamp, bytes(data)))
            self.counts[topic] += 1
            if topic == "/joint_states":
                self._obs_stamps.append(stamp)
            if topic == "/episode_status":
                status = self._store.deserialize_cdr(data, msgtype)
                if status.done:
                    self.final_status = status

        return callback

    def _on_command(self, data: bytes) -> None:
        if self.recording:
            self._commands.append(bytes(data))
            self.counts["/command"] += 1

    def _on_goal(self, data: bytes) -> None:
        if self.recording:  # the bridge republishes the goal at every reset; keep the newest
            self._goal = bytes(data)
            self.counts["/language_goal"] += 1

    # --- episode control (called by the recording driver) ------------------------------------
    def start_episode(self) -> None:
        self._messages, self._commands, self._obs_stamps = [], [], []
        self._goal = None
        self.counts.clear()
        self.final_status = None
        self.recording = True

    def is_complete(self) -> bool:
        """True once the done status arrived and every topic holds one message per observation
        (and one command per step)."""
        status = self.final_status
        if status is None or self._goal is None:
            return False
        n_obs = int(status.step) + 1
        return all(self.counts[t] >= n_obs for t in self._stamped) and (
            self.counts["/command"] >= int(status.step)
        )

    def take_episode(self) -> list[BufferedMessage]:
        """Stop buffering and return the episode's messages with deterministic bag times."""
        self.recording = False
        t0 = self._obs_stamps[0] if self._obs_stamps else 0
        messages = []
        if self._goal is not None:  # first, so readers see the goal before any observation
            messages.append(
                BufferedMessage("/language_goal", "std_msgs/msg/String", t0, self._goal, True)
            )
        messages.extend(self._messages)
        for i, data in enumerate(self._commands):
            # command i answers observation i (lockstep: exactly; realtime: the newest one)
            stamp = self._obs_stamps[min(i, len(self._obs_stamps) - 1)] if self._obs_stamps else 0
            messages.append(
                BufferedMessage("/command", "std_msgs/msg/Float64MultiArray", stamp, data)
            )
        return messages
