"""``ros2 run vla_eqm_train episode_recorder``: a teleoperation session becomes training data.

The node subscribes to everything the contract names (cameras, raw or compressed, state sources,
the goal and the command) and records between two service calls:

- ``~/start_episode`` (``vla_eqm_msgs/srv/StartEpisode``): starts an episode; its instruction is
  stored on the contract's goal topic at the start and in the bag's metadata;
- ``~/stop_episode`` (``vla_eqm_msgs/srv/StopEpisode``): writes the episode as one MCAP bag under
  ``out`` (or drops it with ``discard``), with ``success`` stored for ``dataset build``.

Each bag carries the contract (``custom_data["vla_eqm.contract"]``, YAML) and the instruction
(``custom_data["instruction"]``), so ``dataset build`` needs nothing but the folder. Messages are
stored raw, at their arrival time on the node's clock, as ``ros2 bag record`` stores them, so a
bag from here and one from ``ros2 bag record`` decode the same way. ``~/recording``
(std_msgs/Bool, latched) says whether an episode is running: recorded by ``ros2 bag record`` it is
exactly the ``split: marker`` topic a continuous session needs.

Bad requests (a start while recording, a stop while idle) are refused with the reason; an episode
without a message on one of the contract's topics is still written, never lost, and the reply and
the log name the silent topics.

Parameters: ``contract`` (YAML path, required), ``out`` (folder, default ``~/vla_data/robot_bags``),
``prefix`` (bag name prefix, default ``episode``), ``extra_topics`` (``topic=pkg/msg/Type``
entries recorded as well, e.g. ``/tf=tf2_msgs/msg/TFMessage``).
"""

from __future__ import annotations

import datetime
import os
import re
from pathlib import Path
from typing import Any

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Bool

from vla_eqm_msgs.srv import StartEpisode, StopEpisode
from vla_eqm_ros.contract import Contract, ContractError
from vla_eqm_sim.bag_types import make_typestore
from vla_eqm_sim.bag_writer import BufferedMessage, write_episode_bag
from vla_eqm_train.topic_recorder import Recorded, TopicRecorder

CONTRACT_KEY = "vla_eqm.contract"
INSTRUCTION_KEY = "instruction"
DEFAULT_OUT = "~/vla_data/robot_bags"


def contract_topics(contract: Contract, extra: list[str]) -> dict[str, str]:
    """Topic -> rosbags type of everything an episode must hold (the contract) and ``extra``."""
    topics = dict(contract.input_topics())
    topics[contract.action.topic] = contract.action.ros_type
    if contract.ee_pose_topic:
        topics.setdefault(contract.ee_pose_topic, "geometry_msgs/msg/PoseStamped")
    known = make_typestore().types
    for entry in extra:
        topic, sep, msgtype = entry.partition("=")
        if not sep or not re.fullmatch(r"\w+/msg/\w+", msgtype) or not topic.startswith("/"):
            raise ContractError(f"extra_topics: expected 'topic=pkg/msg/Type', got {entry!r}")
        if msgtype not in known:
            raise ContractError(f"extra_topics: {topic}: type {msgtype} is not a ROS 2 Jazzy or "
                                "vla_eqm_msgs type the recorder can store")
        topics.setdefault(topic, msgtype)
    return topics


def episode_bag(recorded: list[Recorded], goal_topic: str, instruction: str,
                start_ns: int) -> list[BufferedMessage]:
    """Bag messages at their arrival times, plus the instruction on the goal topic at the start
    (latched), unless the episode carries no instruction."""
    out = [BufferedMessage(m.topic, m.msgtype, m.recv_ns, m.data, m.topic == goal_topic)
           for m in recorded]
    if instruction:
        store = make_typestore()
        msg = store.types["std_msgs/msg/String"](data=instruction)
        out.append(BufferedMessage(goal_topic, "std_msgs/msg/String", start_ns,
                                   bytes(store.serialize_cdr(msg, "std_msgs/msg/String")), True))
    return out


def next_bag_path(out: Path, prefix: str) -> Path:
    """``out/<prefix>_<NNNN>``: numbering continues after the bags already there (resumable)."""
    taken = [int(m.group(1)) for p in out.glob(f"{prefix}_*")
             if (m := re.fullmatch(re.escape(prefix) + r"_(\d+)", p.name))]
    return out / f"{prefix}_{max(taken, default=-1) + 1:04d}"


class EpisodeRecorderNode(Node):
    """Records the contract's topics between ``~/start_episode`` and ``~/stop_episode``."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__("episode_recorder", **node_kwargs)
        path = self.declare_parameter("contract", "").value
        out = self.declare_parameter("out", DEFAULT_OUT).value
        self.prefix = str(self.declare_parameter("prefix", "episode").value)
        extra = list(self.declare_parameter("extra_topics", [""]).value or [])
        if not path:
            raise ContractError("parameter 'contract' is required (a contract YAML path)")
        self.contract = Contract.from_yaml(os.path.expanduser(str(path)))
        self.contract_yaml = Path(os.path.expanduser(str(path))).read_text()
        self.out = Path(os.path.expanduser(str(out)))
        self.out.mkdir(parents=True, exist_ok=True)
        self.topics = contract_topics(self.contract, [e for e in extra if e])
        self.recorder = TopicRecorder(self.topics, latched={self.contract.goal.topic},
                                      clock_ns=lambda: self.get_clock().now().nanoseconds)
        try:
            self.recorder.subscribe(self)
        except (ImportError, AttributeError) as exc:  # a type whose Python package is missing
            raise ContractError(f"cannot subscribe: {exc}") from exc
        self._episode: dict[str, Any] | None = None
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._recording = self.create_publisher(Bool, "~/recording", latched)
        self._recording.publish(Bool(data=False))
        self.create_service(StartEpisode, "~/start_episode", self._on_start)
        self.create_service(StopEpisode, "~/stop_episode", self._on_stop)
        self.get_logger().info(f"recording {len(self.topics)} topics into {self.out}: "
                               f"{', '.join(sorted(self.topics))}")

    def _on_start(self, request: Any, response: Any) -> Any:
        if self._episode is not None:
            response.success = False
            response.message = (f"refused: episode {self._episode['path'].name} is recording; "
                                "stop it first")
            self.get_logger().warning(response.message)
            return response
        path = next_bag_path(self.out, self.prefix)
        now = self.get_clock().now().nanoseconds
        index = self.recorder.begin_episode(str(request.instruction), 0)
        self._episode = {"path": path, "index": index, "start_ns": now,
                         "instruction": str(request.instruction),
                         "started": datetime.datetime.now(datetime.UTC).isoformat(
                             timespec="seconds")}
        self._recording.publish(Bool(data=True))
        response.success, response.message = True, str(path)
        self.get_logger().info(f"episode {path.name} started: {request.instruction!r}")
        return response

    def _on_stop(self, request: Any, response: Any) -> Any:
        episode = self._episode
        if episode is None:
            response.written, response.messages = False, 0
            response.message = "refused: no episode is recording (call ~/start_episode first)"
            self.get_logger().warning(response.message)
            return response
        self.recorder.stop()
        self._episode = None
        self._recording.publish(Bool(data=False))
        recorded = self.recorder.take(episode["index"])
        response.messages = len(recorded)
        if request.discard or not recorded:
            response.written = False
            response.message = (f"discarded {episode['path'].name}" if request.discard
                                else "nothing was recorded: is anything publishing?")
            self.get_logger().warning(f"episode {episode['path'].name}: {response.message}")
            return response
        silent = sorted(set(self.topics) - {m.topic for m in recorded}
                        - {self.contract.goal.topic})
        metadata = {"instruction": episode["instruction"], "success": bool(request.success),
                    "started": episode["started"], "episode": episode["path"].name,
                    "control_period_s": self.contract.control_period, "recorder": self.get_name(),
                    "silent_topics": silent}
        try:
            write_episode_bag(episode["path"],
                              episode_bag(recorded, self.contract.goal.topic,
                                          episode["instruction"], episode["start_ns"]),
                              metadata, custom={CONTRACT_KEY: self.contract_yaml,
                                                INSTRUCTION_KEY: episode["instruction"]})
        except Exception as exc:  # a full disk or a bad path: say so, keep the node alive
            response.written = False
            response.message = f"writing {episode['path']} failed: {type(exc).__name__}: {exc}"
            self.get_logger().error(response.message)
            return response
        response.written = True
        response.message = str(episode["path"]) + (
            f" (no message on {', '.join(silent)})" if silent else "")
        log = self.get_logger().warning if silent else self.get_logger().info
        log(f"episode written: {response.message}, {len(recorded)} messages")
        return response


def main(argv: list[str] | None = None) -> None:
    import sys

    from vla_eqm_ros.nodes.runtime import run_single_node

    try:
        code = run_single_node(EpisodeRecorderNode, argv)
    except ContractError as exc:  # a missing or bad contract: one line, not a traceback
        print(f"episode_recorder: {exc}", file=sys.stderr)
        code = 2
    raise SystemExit(code)
