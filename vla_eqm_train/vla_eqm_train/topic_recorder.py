"""Raw topic recording, tagged by episode: the one buffer behind the demo's run bag and the robot's
episode recorder (``episode_recorder_node``).

ROS-free but for ``TopicRecorder.subscribe``, which imports rclpy lazily. Subscriptions are raw,
so a bag holds the CDR bytes exactly as they came off the wire (as ``ros2 bag record`` stores
them); each message keeps its header stamp and its arrival time, and the writer picks the bag
time (the demo: the lockstep rule of ``demo.recorder.bag_messages``; the robot: arrival, as
``ros2 bag record``).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from functools import cache
from typing import Any

from vla_eqm_sim.bag_writer import header_stamp_ns


@cache
def starts_with_header(msgtype: str) -> bool:
    """Whether a type's first field is a std_msgs/Header (so its CDR starts with the stamp)."""
    from vla_eqm_sim.bag_types import make_typestore

    fields = make_typestore().fielddefs.get(msgtype, (None, []))[1]
    if not fields:
        return False
    _, (_, detail) = fields[0]
    return detail == "std_msgs/msg/Header"


@dataclass(frozen=True)
class Recorded:
    """One message as it arrived: raw CDR, its header stamp (None when it has none), episode."""

    topic: str
    msgtype: str
    data: bytes
    stamp_ns: int | None
    episode: int
    recv_ns: int = 0  # arrival on the recorder's clock (ros2 bag record's bag time)


@dataclass(frozen=True)
class EpisodeTag:
    index: int
    task: str
    variation: int


class TopicRecorder:
    """Buffers every recorded message of the run in memory, tagged with the running episode.

    Episodes are tagged by arrival, not by stamp: the bridge's reset observation carries the same
    sim time as the previous episode's last one, so stamps alone cannot split episodes. The demo
    waits for the pipeline to go quiet before it starts the next episode, so arrival is exact.
    """

    def __init__(self, topics: dict[str, str], latched: frozenset[str] | set[str] = frozenset(),
                 clock_ns: Any = time.time_ns) -> None:
        """``topics``: name -> rosbags type; ``latched`` are subscribed transient-local;
        ``clock_ns`` dates arrivals (the node's clock on a robot)."""
        self.topics = dict(topics)
        self.latched = frozenset(latched)
        self._clock_ns = clock_ns
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
                latched if topic in self.latched else reliable, raw=True))

    def matched(self) -> bool:
        """Every subscription sees a publisher (lockstep: a message sent before is lost)."""
        return bool(self._subs) and all(s.get_publisher_count() >= 1 for s in self._subs)

    def _callback(self, topic: str, msgtype: str):
        def on_message(data: bytes) -> None:
            self.add(topic, msgtype, bytes(data))
        return on_message

    def add(self, topic: str, msgtype: str, data: bytes) -> None:
        """Buffer one message if an episode is running (also the test entry point)."""
        stamp = header_stamp_ns(data) if starts_with_header(msgtype) else None
        recv = int(self._clock_ns())
        with self._lock:
            if self._episode is None:
                return
            self._messages.append(Recorded(topic, msgtype, data, stamp, self._episode, recv))
            self._counts[(topic, self._episode)] += 1

    def begin_episode(self, task: str, variation: int) -> int:
        with self._lock:
            self.episodes.append(EpisodeTag(len(self.episodes), task, variation))
            self._episode = len(self.episodes) - 1
            return self._episode

    def stop(self) -> None:
        with self._lock:
            self._episode = None

    @property
    def running(self) -> bool:
        with self._lock:
            return self._episode is not None

    def take(self, episode: int) -> list[Recorded]:
        """Remove and return the messages of ``episode`` (a robot session runs for hours: the
        buffer holds only the episode being recorded)."""
        with self._lock:
            mine = [m for m in self._messages if m.episode == episode]
            self._messages = [m for m in self._messages if m.episode != episode]
            return mine

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
