"""The demo's recorder: what ``vla-eqm demo`` hears, buffered per episode, and its rosbag2.

ROS-free but for ``RunRecorder.subscribe``, which imports rclpy lazily: the demo hands it its
recorder node, and the subscriptions are raw, so the bag holds the CDR bytes exactly as they came
off the wire (as ``ros2 bag record`` stores them).

Only the first camera is recorded: the bag exists to show what the policy saw and did, and a second
96x96 stream would double its size (about 28 kB per frame) for no new insight.
"""

from __future__ import annotations

import struct
import threading
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vla_eqm_sim.bag_writer import BufferedMessage, write_episode_bag

DECODER_STATUS = "vla_eqm_msgs/msg/DecoderStatus"
ACTION_CHUNK = "vla_eqm_msgs/msg/ActionChunk"
EPISODE_STATUS = "vla_eqm_msgs/msg/EpisodeStatus"
IMAGE = "sensor_msgs/msg/Image"
# Types without a header: their bag time comes from the observation they answer (see bag_messages)
UNSTAMPED = frozenset({"std_msgs/msg/Float64MultiArray", "std_msgs/msg/String"})
LATCHED = frozenset({"/language_goal"})


def demo_topics(camera: str, command_topic: str, command_type: str,
                node: str = "/policy_node") -> dict[str, str]:
    """The recorded topics (name -> rosbags type name)."""
    return {
        f"/camera/{camera}/image_raw": IMAGE,
        "/joint_states": "sensor_msgs/msg/JointState",
        "/ee_pose": "geometry_msgs/msg/PoseStamped",
        "/language_goal": "std_msgs/msg/String",
        "/episode_status": EPISODE_STATUS,
        command_topic: command_type,
        f"{node}/decoder_status": DECODER_STATUS,
        f"{node}/action_chunk": ACTION_CHUNK,
    }


def header_stamp_ns(cdr: bytes) -> int:
    """Header stamp of a CDR message that starts with std_msgs/Header (sec at offset 4)."""
    sec, nanosec = struct.unpack_from("<iI" if cdr[1] & 1 else ">iI", cdr, 4)
    return sec * 1_000_000_000 + nanosec


@dataclass(frozen=True)
class Recorded:
    """One message as it arrived: raw CDR, its header stamp (None when it has none), episode."""

    topic: str
    msgtype: str
    data: bytes
    stamp_ns: int | None
    episode: int


@dataclass(frozen=True)
class EpisodeTag:
    index: int
    task: str
    variation: int


class RunRecorder:
    """Buffers every recorded message of the run in memory, tagged with the running episode.

    Episodes are tagged by arrival, not by stamp: the bridge's reset observation carries the same
    sim time as the previous episode's last one, so stamps alone cannot split episodes. The demo
    waits for the pipeline to go quiet before it starts the next episode, so arrival is exact.
    """

    def __init__(self, topics: dict[str, str]) -> None:
        self.topics = dict(topics)
        self.episodes: list[EpisodeTag] = []
        self._messages: list[Recorded] = []
        self._counts: Counter[tuple[str, int]] = Counter()
        self._lock = threading.Lock()
        self._episode: int | None = None
        self._subs: list[Any] = []

    def subscribe(self, node: Any, depth: int = 1000) -> None:
        """Raw, reliable subscriptions on ``node`` (an rclpy node); deep enough that a lockstep
        episode never overruns them (the publishers step only as fast as the policy answers)."""
        import importlib

        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        reliable = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        for topic, msgtype in self.topics.items():
            pkg, _, name = msgtype.split("/")
            cls = getattr(importlib.import_module(f"{pkg}.msg"), name)
            self._subs.append(node.create_subscription(
                cls, topic, self._callback(topic, msgtype),
                latched if topic in LATCHED else reliable, raw=True))

    def matched(self) -> bool:
        """Every subscription sees a publisher (lockstep: a message sent before is lost)."""
        return bool(self._subs) and all(s.get_publisher_count() >= 1 for s in self._subs)

    def _callback(self, topic: str, msgtype: str):
        def on_message(data: bytes) -> None:
            self.add(topic, msgtype, bytes(data))
        return on_message

    def add(self, topic: str, msgtype: str, data: bytes) -> None:
        """Buffer one message if an episode is running (also the test entry point)."""
        stamp = None if msgtype in UNSTAMPED else header_stamp_ns(data)
        with self._lock:
            if self._episode is None:
                return
            self._messages.append(Recorded(topic, msgtype, data, stamp, self._episode))
            self._counts[(topic, self._episode)] += 1

    def begin_episode(self, task: str, variation: int) -> int:
        with self._lock:
            self.episodes.append(EpisodeTag(len(self.episodes), task, variation))
            self._episode = len(self.episodes) - 1
            return self._episode

    def stop(self) -> None:
        with self._lock:
            self._episode = None

    def count(self, topic: str, episode: int | None = None) -> int:
        """Messages of ``topic`` in ``episode`` (default: the running or last one)."""
        with self._lock:
            ep = len(self.episodes) - 1 if episode is None else episode
            return self._counts[(topic, ep)]

    def messages(self) -> list[Recorded]:
        with self._lock:
            return list(self._messages)

    def totals(self) -> dict[str, int]:
        with self._lock:
            out: Counter[str] = Counter(m.topic for m in self._messages)
        return {t: out[t] for t in self.topics}


def bag_messages(recorded: Sequence[Recorded]) -> list[BufferedMessage]:
    """Bag times: header stamps (sim time); an unstamped message (command, goal) or one with a
    zero stamp gets the stamp of the observation it answers, found by order: the i-th command of
    an episode answers its i-th observation (lockstep), the goal precedes the first."""
    obs: dict[int, list[int]] = defaultdict(list)
    for m in recorded:
        if m.msgtype == EPISODE_STATUS and m.stamp_ns is not None:
            obs[m.episode].append(m.stamp_ns)
    seen: Counter[tuple[str, int]] = Counter()
    out = []
    for m in recorded:
        stamp = m.stamp_ns
        if not stamp:
            stamps = obs.get(m.episode) or [0]
            i = 0 if m.topic in LATCHED else seen[(m.topic, m.episode)]
            seen[(m.topic, m.episode)] += 1
            stamp = stamps[min(i, len(stamps) - 1)]
        out.append(BufferedMessage(m.topic, m.msgtype, stamp, m.data, m.topic in LATCHED))
    return out


def write_bag(path: Path, recorded: Sequence[Recorded], metadata: dict[str, Any]) -> Path:
    """The run as one MCAP bag; ``metadata`` (settings, episodes) goes where the project's
    recorder puts it: ``custom_data``, an ``/episode_info`` message and a JSON sidecar."""
    return write_episode_bag(Path(path), bag_messages(recorded), metadata)


# --------------------------------------------------------------------------- plain run data
