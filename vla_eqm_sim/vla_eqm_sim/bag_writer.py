"""Write one episode's buffered messages as a rosbag2 (MCAP) bag with its metadata.

ROS-free (``rosbags`` only). The metadata goes three places, because readers differ: the bag's
``metadata.yaml`` ``custom_data`` (rosbag2's own key/value store), a latched ``/episode_info``
std_msgs/String JSON message inside the bag (survives ``ros2 bag convert``/``play``), and a JSON
sidecar next to the bag for tools that never open bags.
"""

from __future__ import annotations

import json
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import StoragePlugin, Writer

from vla_eqm_sim.bag_types import make_typestore

EPISODE_INFO_TOPIC = "/episode_info"
METADATA_KEY = "vla_eqm.episode"


@dataclass
class BufferedMessage:
    """One serialized message, ready for the bag: CDR bytes and the time it belongs to."""

    topic: str
    msgtype: str  # rosbags name, e.g. "sensor_msgs/msg/Image"
    stamp_ns: int
    data: bytes
    latched: bool = False  # offered as transient-local (language goal, episode info)


def header_stamp_ns(cdr: bytes) -> int:
    """The header stamp of a serialized message that starts with std_msgs/Header.

    CDR: a 4-byte encapsulation header (byte 1: 1 = little endian), then Time{int32 sec,
    uint32 nanosec} at offset 4, which is already aligned.
    """
    sec, nanosec = struct.unpack_from("<iI" if cdr[1] & 1 else ">iI", cdr, 4)
    return sec * 1_000_000_000 + nanosec


def _qos(latched: bool) -> Qos:
    zero = QosTime(0, 0)
    return Qos(
        QosHistory.KEEP_LAST,
        1 if latched else 10,
        QosReliability.RELIABLE,
        QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
        zero,
        zero,
        QosLiveliness.AUTOMATIC,
        zero,
        False,
    )


def sidecar_path(bag_path: Path) -> Path:
    """``DIR/<bag>.json`` next to the bag directory ``DIR/<bag>``."""
    return bag_path.with_name(bag_path.name + ".json")


def write_episode_bag(
    bag_path: Path, messages: list[BufferedMessage], metadata: dict[str, object],
    custom: dict[str, str] | None = None,
) -> Path:
    """Write ``messages`` (any order) into a new MCAP bag plus the metadata; returns the bag path.

    ``metadata`` must be JSON-serializable; it is stored under ``custom_data[METADATA_KEY]``, as the
    ``/episode_info`` message at the first message's time, and in the sidecar. ``custom`` adds
    more ``custom_data`` keys (the robot recorder: the contract and the instruction). A write that
    fails leaves no partial bag behind.
    """
    store = make_typestore()
    info_json = json.dumps(metadata, sort_keys=True)
    start_ns = min((m.stamp_ns for m in messages), default=0)
    info_msg = store.types["std_msgs/msg/String"](data=info_json)
    info = BufferedMessage(
        EPISODE_INFO_TOPIC,
        "std_msgs/msg/String",
        start_ns,
        bytes(store.serialize_cdr(info_msg, "std_msgs/msg/String")),
        latched=True,
    )
    ordered = sorted([info, *messages], key=lambda m: m.stamp_ns)
    writer = Writer(bag_path, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.set_custom_data(METADATA_KEY, info_json)
    for key, value in (custom or {}).items():
        writer.set_custom_data(key, value)
    try:
        with writer:
            connections = {}
            for msg in ordered:
                if msg.topic not in connections:
                    connections[msg.topic] = writer.add_connection(
                        msg.topic,
                        msg.msgtype,
                        typestore=store,
                        offered_qos_profiles=[_qos(msg.latched)],
                    )
                writer.write(connections[msg.topic], msg.stamp_ns, msg.data)
    except BaseException:
        shutil.rmtree(bag_path, ignore_errors=True)
        raise
    sidecar_path(bag_path).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    return bag_path
