"""``BagPlayer``: play a rosbag2 episode through DDS at recorded timing (rclpy + rosbags).

What ``ros2 bag play --clock`` does, for the tools this workplace has (no rosbag2_py): messages
are read with ``rosbags`` and published *raw* (the CDR bytes exactly as recorded, through rclpy's
``publish(bytes)``), each at its recorded time relative to the first message, scaled by ``rate``.
Before every new bag time the player publishes ``/clock`` with that time, so a node running with
``use_sim_time`` lives on the bag's clock: header stamps and the node's "now" agree, which is what
the contract's age checks need. Topics whose bag QoS was transient-local (the language goal) are
re-offered transient-local, so a late subscriber still receives them.

Only the topics asked for are played (eval-bag plays the contract's inputs, never the recorded
commands). For every published message the player keeps the wall time it went out, and for every
header stamp the wall time its last message went out (when that observation became complete):
the start point of the end-to-end latency.
"""

from __future__ import annotations

import importlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

CLOCK_TOPIC = "/clock"
LEAD_S = 0.05  # wall time between play() and the first message


def message_class(msgtype: str) -> type:
    """``sensor_msgs/msg/Image`` -> the rclpy message class (imported from its package)."""
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


@dataclass
class _Message:
    topic: str
    time_ns: int  # bag time
    data: bytes  # CDR, as recorded
    stamp_ns: int | None  # header stamp, when the type has a header


@dataclass
class PlayResult:
    """What went out: per topic counts, and wall times for latency."""

    counts: dict[str, int] = field(default_factory=dict)
    first_ns: int = 0  # bag time of the first played message
    last_ns: int = 0
    wall_start: float = 0.0  # time.monotonic() at which first_ns was played
    stamp_wall: dict[int, float] = field(default_factory=dict)  # header stamp -> last publish
    late_ms_max: float = 0.0  # worst lateness of a publish against its schedule
    interrupted: bool = False


class BagPlayer(Node):
    """A node that publishes a bag's ``topics`` at recorded timing; see the module docstring."""

    def __init__(self, bag: Path, topics: list[str], *, rate: float = 1.0, clock: bool = True,
                 **node_kwargs: Any) -> None:
        super().__init__("bag_player", **node_kwargs)
        from rosbags.rosbag2 import Reader

        from vla_eqm_sim.bag_types import make_typestore

        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.bag, self.rate, self.clock = Path(bag), float(rate), clock
        store = make_typestore()
        self.messages: list[_Message] = []
        self._pubs: dict[str, Any] = {}
        with Reader(self.bag) as reader:
            conns = [c for c in reader.connections if c.topic in topics]
            missing = sorted(set(topics) - {c.topic for c in conns})
            if missing:
                raise ValueError(f"{self.bag}: topics {missing} are not in the bag")
            for conn in conns:
                if conn.topic not in self._pubs:
                    self._pubs[conn.topic] = self.create_publisher(
                        message_class(conn.msgtype), conn.topic, self._qos(conn))
            for conn, t_ns, raw in reader.messages(connections=conns):
                msg = store.deserialize_cdr(raw, conn.msgtype)
                stamp = getattr(msg, "header", None)
                stamp_ns = (int(stamp.stamp.sec) * 10**9 + int(stamp.stamp.nanosec)
                            if stamp is not None else None)
                self.messages.append(_Message(conn.topic, t_ns, bytes(raw), stamp_ns))
        self.messages.sort(key=lambda m: m.time_ns)
        self._clock_pub = self.create_publisher(Clock, CLOCK_TOPIC, 10) if clock else None
        self.result = PlayResult()

    @staticmethod
    def _qos(conn: Any) -> QoSProfile:
        profiles = getattr(conn.ext, "offered_qos_profiles", None) or []
        latched = any(getattr(p.durability, "name", "") == "TRANSIENT_LOCAL" for p in profiles)
        if latched:
            return QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                              durability=DurabilityPolicy.TRANSIENT_LOCAL)
        return QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)

    @property
    def topics(self) -> list[str]:
        return list(self._pubs)

    def matched(self) -> bool:
        """Every played topic (and /clock) has at least one subscriber."""
        topics = self.topics + ([CLOCK_TOPIC] if self.clock else [])
        return all(self.count_subscribers(t) >= 1 for t in topics)

    def bag_time_at(self, wall: float) -> int:
        """Bag time (ns) the player's schedule assigns to a ``time.monotonic()`` instant."""
        r = self.result
        return r.first_ns + int(round((wall - r.wall_start) * self.rate * 1e9))

    def _publish_clock(self, t_ns: int) -> None:
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(int(t_ns), 10**9)
        self._clock_pub.publish(msg)

    def play(self, stop: threading.Event | None = None) -> PlayResult:
        """Publish every message at its recorded time (blocking); returns what went out."""
        r = self.result = PlayResult()
        if not self.messages:
            return r
        r.first_ns, r.last_ns = self.messages[0].time_ns, self.messages[-1].time_ns
        r.wall_start = time.monotonic() + LEAD_S
        last_clock = None
        for m in self.messages:
            if stop is not None and stop.is_set():
                r.interrupted = True
                break
            due = r.wall_start + (m.time_ns - r.first_ns) * 1e-9 / self.rate
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            else:
                r.late_ms_max = max(r.late_ms_max, -wait * 1e3)
            if self._clock_pub is not None and m.time_ns != last_clock:
                self._publish_clock(m.time_ns)
                last_clock = m.time_ns
            self._pubs[m.topic].publish(m.data)
            now = time.monotonic()
            r.counts[m.topic] = r.counts.get(m.topic, 0) + 1
            if m.stamp_ns is not None:
                r.stamp_wall[m.stamp_ns] = now
        return r
