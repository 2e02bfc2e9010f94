"""What a recorded bag holds, and a contract skeleton for it (``vla-eqm contract init``).

A user with a real robot has a bag from ``ros2 bag record``: MCAP or sqlite3, maybe split into
several files, full of topics the policy does not use. ``survey`` lists every topic with its type,
message count, rate and largest gap, and looks inside the first message of the topics a contract
can use (camera size and encoding, joint names, command length). ``skeleton`` turns that into a
commented contract YAML that already parses: the user edits names and limits, not syntax.

ROS-free: rosbags reads every storage and split layout, and deserializes with the bag's own
message definitions when the type is not a standard one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
MARKER_TYPES = ("std_msgs/msg/Bool", "std_msgs/msg/String")
MARKER_WORDS = ("episode", "marker", "record")  # topic names that look like an episode marker
COMMAND_TYPES = ("std_msgs/msg/Float64MultiArray", "trajectory_msgs/msg/JointTrajectory")
MODEL_IMAGE_SIZE = 96  # the default model's camera size; frames are resized to it


@dataclass
class TopicInfo:
    """One topic of a bag: how often it came, and what its first message says."""

    topic: str
    msgtype: str
    count: int
    rate_hz: float
    max_gap_s: float
    detail: dict[str, Any] = field(default_factory=dict)


def _detail(msgtype: str, msg: Any) -> dict[str, Any]:
    if msgtype == "sensor_msgs/msg/Image":
        return {"height": int(msg.height), "width": int(msg.width), "encoding": msg.encoding}
    if msgtype == "sensor_msgs/msg/CompressedImage":
        from vla_eqm_ros.images import decode_compressed

        out: dict[str, Any] = {"format": msg.format}
        try:
            h, w = decode_compressed(msg.data, msg.format).shape[:2]
            out.update(height=int(h), width=int(w))
        except ValueError as exc:
            out["error"] = str(exc)
        return out
    if msgtype == "sensor_msgs/msg/JointState":
        return {"names": [str(n) for n in msg.name]}
    if msgtype == "std_msgs/msg/Float64MultiArray":
        return {"length": len(msg.data)}
    if msgtype == "trajectory_msgs/msg/JointTrajectory":
        return {"names": [str(n) for n in msg.joint_names]}
    if msgtype == "std_msgs/msg/String":
        return {"first": str(msg.data)[:80]}
    return {}


def survey(bag: Path) -> list[TopicInfo]:
    """Every topic of ``bag`` (any storage, split or not), sorted by name."""
    from rosbags.rosbag2 import Reader

    from vla_eqm_sim.bag_types import typestore_for

    with Reader(Path(bag)) as reader:
        store = typestore_for(reader.connections)
        times: dict[str, list[int]] = {c.topic: [] for c in reader.connections}
        types = {c.topic: c.msgtype for c in reader.connections}
        details: dict[str, dict[str, Any]] = {}
        for conn, t_ns, raw in reader.messages():
            times[conn.topic].append(t_ns)
            if conn.topic not in details and conn.msgtype in store.types:
                try:
                    details[conn.topic] = _detail(conn.msgtype,
                                                  store.deserialize_cdr(raw, conn.msgtype))
                except Exception as exc:  # listed with the reason, never fatal
                    details[conn.topic] = {"error": f"{type(exc).__name__}: {exc}"}
    out = []
    for topic in sorted(times):
        t = np.asarray(sorted(times[topic]), dtype=np.float64) * 1e-9
        gaps = np.diff(t)
        # the median period, not count / span: a session with pauses between episodes still
        # reports the rate its driver runs at
        median = float(np.median(gaps)) if gaps.size else 0.0
        rate = 1.0 / median if median > 0 else 0.0
        out.append(TopicInfo(topic, types[topic], len(t), round(float(rate), 3),
                             round(float(gaps.max()), 4) if gaps.size else 0.0,
                             details.get(topic, {})))
    return out


def table(topics: list[TopicInfo]) -> str:
    """The survey as a fixed-width table for the terminal."""
    rows = [f"{'topic':<44} {'type':<38} {'count':>6} {'rate Hz':>8} {'max gap s':>9}"]
    rows += [f"{t.topic:<44} {t.msgtype:<38} {t.count:>6} {t.rate_hz:>8.2f} "
             f"{t.max_gap_s:>9.3f}" for t in topics]
    return "\n".join(rows)


def _camera_name(topic: str) -> str:
    parts = [p for p in topic.split("/") if p and p not in ("image_raw", "compressed", "image",
                                                          "camera", "color", "rgb")]
    return (parts[-1] if parts else "camera").replace("-", "_")


def _transport(msgtype: str) -> str:
    return "compressed" if msgtype.endswith("CompressedImage") else "raw"


def _age(rate_hz: float) -> float:
    return round(2.0 / rate_hz, 3) if rate_hz > 0 else 0.2


def skeleton(topics: list[TopicInfo]) -> str:
    """A commented contract YAML for ``topics`` that ``Contract.from_dict`` accepts as is."""
    cams = [t for t in topics if t.msgtype in IMAGE_TYPES]
    joints = [t for t in topics if t.msgtype == "sensor_msgs/msg/JointState"]
    commands = [t for t in topics if t.msgtype in COMMAND_TYPES]
    strings = [t for t in topics if t.msgtype == "std_msgs/msg/String"]
    markers = [t for t in topics if t.msgtype in MARKER_TYPES
               and any(w in t.topic.lower() for w in MARKER_WORDS)]
    lines = ["# Contract skeleton written by `vla-eqm contract init` from a survey of the bag.",
             "# Edit names, limits and hold values; every key is validated on load.",
             "# Schema: vla_eqm_ros/vla_eqm_ros/contract.py.",
             "cameras:"]
    for t in cams:
        d = t.detail
        recorded = f"{d.get('height', '?')}x{d.get('width', '?')}"
        enc = d.get("encoding") or d.get("format", "?")
        lines += [f"  - name: {_camera_name(t.topic)}",
                  f"    topic: {t.topic}",
                  f"    height: {MODEL_IMAGE_SIZE}            # model input; recorded {recorded} "
                  f"({enc}), {t.rate_hz:.1f} Hz",
                  f"    width: {MODEL_IMAGE_SIZE}",
                  f"    max_age: {_age(t.rate_hz)}          # two frame periods",
                  f"    transport: {_transport(t.msgtype)}",
                  "    resize: true               # scale the recorded frames to height x width"]
    if not cams:
        lines[-1] = "cameras: []                      # no Image or CompressedImage topic found"
    lines.append("state:" if joints else "state: []                        # no JointState topic")
    for t in joints:
        names = t.detail.get("names") or []
        lines += [f"  - topic: {t.topic}", "    type: joint_state", f"    names: {names}",
                  "    field: position", f"    max_age: {_age(t.rate_hz)}"]
    goal = next((t.topic for t in strings if "goal" in t.topic or "instruction" in t.topic),
                "/language_goal")
    lines += [f"goal: {{topic: {goal}, default: \"\"}}   # the instruction; latched String"]
    command = commands[0] if commands else None
    if command is None:
        lines += ["action:                          # no command topic found: fill this in",
                  "  names: [a0]", "  topic: /command", "  type: float64_multi_array",
                  "  low: [-1.0]", "  high: [1.0]", "control_period: 0.05"]
        return "\n".join(lines) + "\n"
    if command.msgtype.endswith("JointTrajectory"):
        names = command.detail.get("names") or ["j0"]
        kind = "  type: joint_trajectory\n  kind: joint"
    else:
        names = [f"a{i}" for i in range(int(command.detail.get("length", 1)))]
        kind = "  type: float64_multi_array\n  kind: cartesian_delta    # or joint"
    period = round(1.0 / command.rate_hz, 6) if command.rate_hz > 0 else 0.05
    n = len(names)
    lines += _episodes_section(markers, command, period)
    lines += [f"action:                          # {command.topic}: {command.rate_hz:.1f} Hz",
              f"  names: {names}", f"  topic: {command.topic}", kind,
              f"  low: {[-1.0] * n}        # hard limits: set the robot's",
              f"  high: {[1.0] * n}",
              f"control_period: {period}        # s per action: 1 / the command rate",
              "alignment: {mode: asof, max_skew: 0.05}"]
    return "\n".join(lines) + "\n"


def _episodes_section(markers: list[TopicInfo], command: TopicInfo, period: float) -> list[str]:
    """How to cut the bag: by a marker-looking topic, by pauses, or one bag per episode."""
    if markers:
        m = markers[0]
        return ["episodes:                        # a continuous session: cut by the marker",
                "  split: marker",
                f"  marker: {m.topic}              # {m.msgtype}, {m.count} messages",
                "  instruction: goal               # goal | marker | metadata | sidecar"]
    if command.max_gap_s > 10 * period:
        gap = round(min(command.max_gap_s / 2, 5 * period), 3)
        return ["episodes:                        # the command pauses for "
                f"{command.max_gap_s:.2f} s: one episode per stretch",
                "  split: gap", f"  gap: {gap}", "  instruction: goal"]
    return ["# episodes: {split: marker, marker: /episode}   # for a bag holding several"]


def check(bag: Path, contract: Any) -> dict[str, Any]:
    """What ``contract`` makes of ``bag``: rates, skew, dropped ticks and the samples it yields.

    Runs the real conversion (``bags.read_episodes``), so what this reports is what ``dataset
    build`` will do; raises ``BagError`` exactly where the build would stop.
    """
    from vla_eqm_train.data.bags import ConversionStats, read_episodes

    stats = ConversionStats()
    episodes = read_episodes(bag, contract, stats)
    used = {t for t, _ in contract.input_topics()} | {contract.action.topic}
    if contract.episodes.marker:
        used.add(contract.episodes.marker)
    surveyed = survey(bag)
    topics = [t for t in surveyed if t.topic in used]
    skew = {}
    for name, values in stats.skew_s.items():
        a = np.abs(np.asarray(values))
        skew[name] = {"p50_ms": round(float(np.median(a)) * 1e3, 3),
                      "p99_ms": round(float(np.quantile(a, 0.99)) * 1e3, 3),
                      "max_ms": round(float(a.max()) * 1e3, 3)}
    return {
        "bag": str(bag),
        "topics": [{"topic": t.topic, "type": t.msgtype, "count": t.count, "rate_hz": t.rate_hz,
                    "max_gap_s": t.max_gap_s} for t in topics],
        "unused_topics": sorted({t.topic for t in surveyed} - used),
        "reference": stats.reference,
        "skew_vs_reference": skew,
        "ticks": stats.ticks,
        "dropped_ticks": dict(stats.dropped.most_common()),
        "episodes": [{"name": e.name, "frames": e.length, "goal": e.goal,
                      "skipped_ticks": e.skipped_ticks} for e in episodes],
        "empty_windows": stats.empty_windows,
        "samples": sum(e.length for e in episodes),
    }


def check_table(report: dict[str, Any]) -> str:
    """``check``'s report for the terminal."""
    rows = [f"bag {report['bag']}", table([TopicInfo(t["topic"], t["type"], t["count"],
                                                     t["rate_hz"], t["max_gap_s"])
                                           for t in report["topics"]])]
    if report["unused_topics"]:
        rows.append(f"ignored (not in the contract): {', '.join(report['unused_topics'])}")
    rows.append(f"skew against the reference input {report['reference']} (|stamp difference|):")
    rows += [f"  {name:<40} p50 {s['p50_ms']:8.2f} ms  p99 {s['p99_ms']:8.2f} ms  "
             f"max {s['max_ms']:8.2f} ms" for name, s in report["skew_vs_reference"].items()]
    dropped = sum(report["dropped_ticks"].values())
    rows.append(f"control ticks {report['ticks']}: {dropped} dropped")
    rows += [f"  {count:6d}  {reason}" for reason, count in report["dropped_ticks"].items()]
    rows.append(f"{len(report['episodes'])} episode(s), {report['samples']} training samples"
                + (f", {report['empty_windows']} marked episode(s) without a frame"
                   if report["empty_windows"] else ""))
    rows += [f"  {e['name']:<40} {e['frames']:6d} frames  goal {e['goal']!r}"
             for e in report["episodes"]]
    return "\n".join(rows)
