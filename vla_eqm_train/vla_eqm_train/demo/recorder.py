"""The demo's recorder: what ``vla-eqm demo`` hears, buffered per episode, and its rosbag2.

The buffer is the shared ``topic_recorder.TopicRecorder`` (the robot's episode recorder uses it
too); what is the demo's own is the topic list and the lockstep rule that dates unstamped
messages (``bag_messages``).

Only the first camera is recorded: the bag exists to show what the policy saw and did, and a second
96x96 stream would double its size (about 28 kB per frame) for no new insight.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vla_eqm_sim.bag_writer import BufferedMessage, header_stamp_ns, write_episode_bag
from vla_eqm_train.topic_recorder import EpisodeTag, Recorded, TopicRecorder

__all__ = ["EpisodeTag", "Recorded", "RunRecorder", "bag_messages", "demo_topics",
           "header_stamp_ns", "write_bag"]

DECODER_STATUS = "vla_eqm_msgs/msg/DecoderStatus"
ACTION_CHUNK = "vla_eqm_msgs/msg/ActionChunk"
EPISODE_STATUS = "vla_eqm_msgs/msg/EpisodeStatus"
IMAGE = "sensor_msgs/msg/Image"
LATCHED = frozenset({"/language_goal"})


class RunRecorder(TopicRecorder):
    """The demo's run: its topics, the goal latched."""

    def __init__(self, topics: dict[str, str]) -> None:
        super().__init__(topics, latched=LATCHED)


def demo_topics(camera_topic: str, command_topic: str, command_type: str,
                node: str = "/policy_node", camera_type: str = IMAGE) -> dict[str, str]:
    """The recorded topics (name -> rosbags type name); the camera as the contract reads it."""
    return {
        camera_topic: camera_type,
        "/joint_states": "sensor_msgs/msg/JointState",
        "/ee_pose": "geometry_msgs/msg/PoseStamped",
        "/language_goal": "std_msgs/msg/String",
        "/episode_status": EPISODE_STATUS,
        command_topic: command_type,
        f"{node}/decoder_status": DECODER_STATUS,
        f"{node}/action_chunk": ACTION_CHUNK,
    }


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
