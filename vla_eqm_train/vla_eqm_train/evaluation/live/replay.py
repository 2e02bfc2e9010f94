"""Live bag replay: a bag through DDS at recorded timing, the real policy node, its outputs bagged.

Per bag, in one process and a fresh rclpy context (so nothing leaks between episodes: new node,
new warm start, new clock): a ``BagPlayer`` publishes the contract's input topics and ``/clock``
(never the recorded commands or ``/episode_status``); the real lifecycle ``PolicyNode`` runs with
``trigger: observation`` and ``use_sim_time`` (one cycle per new complete observation, as on the
lockstep sim; the sensor-to-command latency is then measured from the frame that caused the
command); an ``OutputRecorder`` subscribes raw to the node's command topic,
``~/decoder_status`` and ``~/action_chunk`` and writes them into a new MCAP bag under
``DIR/live/<bag>``, stored at the bag time of receipt (as ``ros2 bag record`` under sim time).

The comparison with the recording is in ``live_compare.py``. DDS stays on loopback: the process
environment must carry ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` and a private domain id.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from vla_eqm_ros.waiting import wait_until
from vla_eqm_train.evaluation.live.compare import compare_live

NODE_NAME = "policy_node"
STATUS_TOPIC = f"/{NODE_NAME}/decoder_status"
CHUNK_TOPIC = f"/{NODE_NAME}/action_chunk"
STATUS_TYPE = "vla_eqm_msgs/msg/DecoderStatus"
CHUNK_TYPE = "vla_eqm_msgs/msg/ActionChunk"
SETTLE_S = 0.6  # wall time without new outputs after the last frame before stopping
TAIL_LIMIT_S = 10.0  # ... but never longer than this


def _recorder_class():
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from vla_eqm_train.evaluation.live.player import message_class

    class OutputRecorder(Node):
        """Raw subscriptions to the node's outputs; buffers (topic, type, wall receipt, CDR)."""

        def __init__(self, topics: dict[str, str], **kwargs: Any) -> None:
            super().__init__("eval_bag_recorder", **kwargs)
            self.topics = dict(topics)
            self.received: list[tuple[str, str, float, bytes]] = []
            self.recording = True
            self._lock = threading.Lock()
            qos = QoSProfile(depth=500, reliability=ReliabilityPolicy.RELIABLE)
            self._subs = [self.create_subscription(message_class(t), topic,
                                                   self._callback(topic, t), qos, raw=True)
                          for topic, t in self.topics.items()]

        def _callback(self, topic: str, msgtype: str):
            def on_message(data: bytes) -> None:
                now = time.monotonic()
                with self._lock:
                    if self.recording:
                        self.received.append((topic, msgtype, now, bytes(data)))
            return on_message

        def matched(self) -> bool:
            return all(self.count_publishers(t) >= 1 for t in self.topics)

        def last_receipt(self) -> float:
            with self._lock:
                return self.received[-1][2] if self.received else -1.0

        def stop(self) -> list[tuple[str, str, float, bytes]]:
            with self._lock:
                self.recording = False
                return list(self.received)

    return OutputRecorder


def node_parameters(job: dict[str, Any], tau: list[float] | None,
                    warm_start: list[str] | None) -> dict[str, Any]:
    """The policy node's parameters: the checkpoint's settings, single-valued overrides applied."""
    params: dict[str, Any] = {"checkpoint": str(job["checkpoint"]), "trigger": "observation",
                              "use_sim_time": True, "seed": 0,
                              "execute_steps": int(job["execute_steps"]),
                              "k_max": int(job["cfg"].solver.k_max)}
    if tau and len(tau) == 1:
        params["tau"] = float(tau[0])
    if warm_start and len(warm_start) == 1:
        params["warm_start"] = warm_start[0]
    return params


def live_episode(bag: Path, contract: Any, params: dict[str, Any], out_dir: Path,
                 rate: float) -> dict[str, Any]:
    """Play one bag against a fresh policy node, bag its outputs, compare; raises on failure."""
    if os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") != "LOCALHOST":
        raise RuntimeError("refusing live replay off loopback: set "
                           "ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a private ROS_DOMAIN_ID")
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from vla_eqm_ros.nodes.policy_node import PolicyNode
    from vla_eqm_ros.nodes.runtime import InProcess
    from vla_eqm_train.evaluation.live.player import BagPlayer

    inputs = [t for t, _ in contract.input_topics()]
    if contract.ee_pose_topic and contract.ee_pose_topic not in inputs:
        inputs.append(contract.ee_pose_topic)
    outputs = {contract.action.topic: contract.action.ros_type, STATUS_TOPIC: STATUS_TYPE,
               CHUNK_TOPIC: CHUNK_TYPE}

    def make_nodes(context: Any) -> list[Any]:
        return [BagPlayer(bag, inputs, rate=rate, context=context),
                PolicyNode(NODE_NAME, context=context, parameter_overrides=[
                    Parameter(k, value=v) for k, v in params.items()]),
                _recorder_class()(outputs, context=context)]

    with InProcess(make_nodes, policy_node=lambda nodes: nodes[1]) as run:
        player, node, recorder = run.nodes
        if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise RuntimeError("policy node failed to configure (see its log)")
        if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
            raise RuntimeError("policy node failed to activate (see its log)")
        if not wait_until(lambda: player.matched() and recorder.matched(), 20.0):
            raise RuntimeError("DDS discovery timed out (player, node and recorder not matched)")
        time.sleep(0.3)
        played = player.play()
        end = time.monotonic()
        wait_until(lambda: time.monotonic() - max(end, recorder.last_receipt()) >= SETTLE_S,
                   TAIL_LIMIT_S)
        received = recorder.stop()  # before deactivate: its hold command is not the policy's
        stats = node.stats
        node_stats = {"solves": stats.solves, "commands": stats.commands,
                      "dropped_cycles": stats.dropped_cycles, "holds": stats.holds,
                      "last_hold_reason": stats.last_hold_reason,
                      "rejected": dict(stats.rejected)}
    output_bag = write_output_bag(out_dir / bag.name, received, player, bag, params)
    result = compare_live(bag, contract, received, played, player.bag_time_at)
    result.update(output_bag=str(output_bag), node_stats=node_stats,
                  frames_played=played.counts.get(contract.cameras[0].topic if contract.cameras
                                                  else contract.state[0].topic, 0),
                  messages_played=played.counts, late_ms_max=played.late_ms_max)
    return result


def write_output_bag(path: Path, received: list[tuple[str, str, float, bytes]], player: Any,
                     source: Path, params: dict[str, Any]) -> Path:
    """The node's outputs as a rosbag2 (MCAP) bag at the bag time of receipt."""
    import shutil

    from vla_eqm_sim.bag_writer import BufferedMessage, sidecar_path, write_episode_bag

    if path.exists():
        shutil.rmtree(path)
        sidecar_path(path).unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    messages = [BufferedMessage(topic, msgtype, player.bag_time_at(wall), data)
                for topic, msgtype, wall, data in received]
    meta = {"source_bag": str(source), "tool": "vla-eqm eval-bag --live",
            "node_parameters": params, "rate": player.rate}
    return write_episode_bag(path, messages, meta)


def run_live(job: dict[str, Any], bags: list[Path], out: Path, rate: float, bar: Any, *,
             tau: list[float] | None = None, warm_start: list[str] | None = None
             ) -> dict[str, Any]:
    """Live replay of every bag; a bag that fails is reported failed and the rest continue."""
    params = node_parameters(job, tau, warm_start)
    episodes = []
    for bag in bags:
        bar.set_postfix_str(f"live {bag.name[:30]}")
        try:
            entry = live_episode(bag, job["contract"], params, Path(out) / "live", rate)
            entry.update(status="ok", error=None)
        except Exception as exc:
            entry = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        entry.update(bag=str(bag), name=bag.name)
        episodes.append(entry)
        bar.update(1)
    return {"trigger": "observation", "rate": rate, "node_parameters": params,
            "episodes": episodes}
