"""Bags in the shape ``ros2 bag record`` leaves on a real arm, written with rosbags.

A 6-DoF arm with a gripper: ``/joint_states`` at 50 Hz, a wrist camera (JPEG, ``rgb8; jpeg
compressed bgr8``) and a scene camera (PNG, ``bgr8; png compressed bgr8``) at 640x480 and 15 Hz
through image_transport, a Float64MultiArray position command at 10 Hz, an instruction topic, an
episode marker, and topics the policy never reads (``/tf``, ``/rosout`` and a vendor message
whose definition only the bag knows). One continuous teleoperation session holds several
episodes with pauses between them.

Layouts: MCAP (Jazzy's default) or sqlite3, split into several files like ``ros2 bag record
--max-bag-duration``, and Humble's sqlite3 schema 3 with metadata.yaml version 5 (no stored
message definitions).
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import yaml
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

JOINTS = ["shoulder_pan", "shoulder_lift", "elbow", "wrist_1", "wrist_2", "wrist_3", "gripper"]
WRIST = "/wrist_camera/image_raw/compressed"
SCENE = "/scene_camera/color/image_raw/compressed"
COMMAND = "/arm_controller/commands"
MARKER = "/episode"
INSTRUCTION = "/instruction"
VENDOR_TYPE = "acme_msgs/msg/GripperStatus"
VENDOR_DEF = "float64 force\nstring mode\n"
T0_NS = 1_700_000_000 * 10**9
HEIGHT, WIDTH = 480, 640


@dataclass
class Session:
    """What to record: episode lengths (s), pauses between them, and their instructions."""

    episodes_s: list[float] = field(default_factory=lambda: [2.0, 2.5, 2.0])
    pause_s: float = 1.5
    instructions: list[str] = field(default_factory=lambda: [
        "pick up the red block", "open the drawer", "push the button"])
    marker: str = "string"  # string | bool | none
    camera_hz: float = 15.0
    corrupt: str | None = None  # None | jpeg (one wrist frame) | png (one scene frame truncated)
    scene_format: str = "bgr8; png compressed bgr8"


def _store():
    store = get_typestore(Stores.ROS2_JAZZY)
    store.register(get_types_from_msg(VENDOR_DEF, VENDOR_TYPE))
    return store


def _frame(t: float, seed: int) -> np.ndarray:
    """A textured 640x480 RGB frame with a square that moves with time (JPEG is not trivial)."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    img = np.stack([(x * 255 // WIDTH), (y * 255 // HEIGHT),
                    np.full_like(x, (seed * 70) % 256)], -1).astype(np.uint8)
    cx = int(100 + 400 * ((t * 0.3) % 1.0))
    img[200:280, cx:cx + 80] = (220, 30, 30)
    return img


def _compressed(store, ns: int, rgb: np.ndarray, fmt: str, frame_id: str):
    T = store.types
    codec = ".png" if "png" in fmt else ".jpg"
    bgr_first = "compressed bgr8" in fmt or fmt in ("jpeg", "png")
    pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if bgr_first else rgb
    ok, buf = cv2.imencode(codec, pixels)
    assert ok
    return T["sensor_msgs/msg/CompressedImage"](header=_header(store, ns, frame_id), format=fmt,
                                                data=buf.reshape(-1))


def _header(store, ns: int, frame_id: str):
    T = store.types
    return T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9),
        frame_id=frame_id)


def session_messages(session: Session) -> list[tuple[str, str, int, object]]:
    """(topic, type, t_ns, message) of the whole session, in time order."""
    store = _store()
    T = store.types
    out: list[tuple[str, str, int, object]] = []
    t = 0.5  # the recording starts before the first episode, as on a robot
    spans = []
    for dur in session.episodes_s:
        spans.append((t, t + dur))
        t += dur + session.pause_s
    end = spans[-1][1] + 0.5
    ns = lambda s: T0_NS + int(round(s * 1e9))  # noqa: E731 - local shorthand

    q = np.zeros(7)
    for k in range(int(end * 50)):  # joint states at 50 Hz, moving while an episode runs
        s = k / 50
        active = any(a <= s <= b for a, b in spans)
        if active:
            q = q + 0.002 * np.arange(1, 8)
        out.append(("/joint_states", "sensor_msgs/msg/JointState", ns(s),
                    T["sensor_msgs/msg/JointState"](
                        header=_header(store, ns(s), ""), name=JOINTS, position=q.copy(),
                        velocity=np.zeros(7), effort=np.zeros(7))))
    frames = int(end * session.camera_hz)
    for k in range(frames):
        s = k / session.camera_hz + 0.003  # the cameras are not in phase with the joints
        out.append((WRIST, "sensor_msgs/msg/CompressedImage", ns(s),
                    _compressed(store, ns(s), _frame(s, 1), "rgb8; jpeg compressed bgr8",
                                "wrist")))
        out.append((SCENE, "sensor_msgs/msg/CompressedImage", ns(s + 0.01),
                    _compressed(store, ns(s + 0.01), _frame(s, 2), session.scene_format,
                                "scene")))
    for i, (a, b) in enumerate(spans):
        out.append((INSTRUCTION, "std_msgs/msg/String", ns(a - 0.2),
                    T["std_msgs/msg/String"](data=session.instructions[i])))
        if session.marker == "string":
            out.append((MARKER, "std_msgs/msg/String", ns(a),
                        T["std_msgs/msg/String"](data=session.instructions[i])))
            out.append((MARKER, "std_msgs/msg/String", ns(b), T["std_msgs/msg/String"](data="end")))
        elif session.marker == "bool":
            out.append((MARKER, "std_msgs/msg/Bool", ns(a), T["std_msgs/msg/Bool"](data=True)))
            out.append((MARKER, "std_msgs/msg/Bool", ns(b), T["std_msgs/msg/Bool"](data=False)))
        for k in range(int(round((b - a) * 10))):  # commands at 10 Hz inside the episode
            s = a + 0.02 + k / 10
            out.append((COMMAND, "std_msgs/msg/Float64MultiArray", ns(s),
                        T["std_msgs/msg/Float64MultiArray"](
                            layout=T["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0),
                            data=np.linspace(-0.5, 0.5, 7) * np.sin(s))))
    for k in range(int(end * 10)):
        s = k / 10
        tf = T["geometry_msgs/msg/TransformStamped"](
            header=_header(store, ns(s), "base"), child_frame_id="tool0",
            transform=T["geometry_msgs/msg/Transform"](
                translation=T["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=float(s)),
                rotation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0)))
        out.append(("/tf", "tf2_msgs/msg/TFMessage", ns(s),
                    T["tf2_msgs/msg/TFMessage"](transforms=[tf])))
        out.append(("/gripper/status", VENDOR_TYPE, ns(s),
                    T[VENDOR_TYPE](force=float(k), mode="grasp")))
    out.append(("/rosout", "rcl_interfaces/msg/Log", ns(0.1), T["rcl_interfaces/msg/Log"](
        stamp=T["builtin_interfaces/msg/Time"](sec=0, nanosec=0), level=20, name="teleop",
        msg="session started", file="teleop.py", function="main", line=1)))
    out.sort(key=lambda m: m[2])
    _corrupt(out, session)
    return out


def _corrupt(out: list, session: Session) -> None:
    if session.corrupt is None:
        return
    topic = WRIST if session.corrupt == "jpeg" else SCENE
    victims = [m for m in out if m[0] == topic]
    msg = victims[len(victims) // 2][3]
    data = np.asarray(msg.data)
    if session.corrupt == "jpeg":  # garbage after the JPEG header
        msg.data = np.concatenate([data[:20], np.full(200, 7, np.uint8)])
    else:  # a PNG cut short, as a full disk leaves it
        msg.data = data[: len(data) // 3].copy()


def write_session(path: Path, session: Session | None = None, *, storage: str = "mcap",
                  split: int = 1, humble: bool = False,
                  custom_data: dict[str, str] | None = None) -> Path:
    """Write the session as one bag directory; ``split`` files, or Humble's layout."""
    session = session or Session()
    store = _store()
    msgs = session_messages(session)
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    parts = np.array_split(np.arange(len(msgs)), split)
    path = Path(path)
    tmp = path.with_name(path.name + ".parts")
    metas = []
    for i, rows in enumerate(parts):
        part = tmp / f"part{i}"
        writer = Writer(part, version=9, storage_plugin=plugin)
        for key, value in (custom_data or {}).items():
            writer.set_custom_data(key, value)
        with writer:
            conns = {}
            for topic, msgtype, _, _ in msgs:  # every file declares every topic, as rosbag2
                if topic not in conns:
                    conns[topic] = writer.add_connection(topic, msgtype, typestore=store)
            for r in rows:
                topic, msgtype, t_ns, msg = msgs[r]
                writer.write(conns[topic], t_ns, store.serialize_cdr(msg, msgtype))
        metas.append(yaml.safe_load((part / "metadata.yaml").read_text()))
    path.mkdir(parents=True)
    files = []
    for i, part in enumerate(sorted(tmp.iterdir())):
        (src,) = [p for p in part.iterdir() if p.suffix in (".mcap", ".db3")]
        name = f"{path.name}_{i}{src.suffix}"
        shutil.move(src, path / name)
        files.append(name)
    shutil.rmtree(tmp)
    meta = _merge(metas, files)
    if humble:
        meta = _to_humble(path, meta)
    (path / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return path


def _merge(metas: list[dict], files: list[str]) -> dict:
    infos = [m["rosbag2_bagfile_information"] for m in metas]
    head = dict(infos[0])
    counts: dict[str, dict] = {}
    for info in infos:
        for entry in info["topics_with_message_count"]:
            name = entry["topic_metadata"]["name"]
            if name in counts:
                counts[name]["message_count"] += entry["message_count"]
            else:
                counts[name] = dict(entry)
    start = min(i["starting_time"]["nanoseconds_since_epoch"] for i in infos)
    end = max(i["starting_time"]["nanoseconds_since_epoch"] + i["duration"]["nanoseconds"]
              for i in infos)
    head.update(
        starting_time={"nanoseconds_since_epoch": start}, duration={"nanoseconds": end - start},
        message_count=sum(i["message_count"] for i in infos),
        topics_with_message_count=list(counts.values()), relative_file_paths=files,
        files=[{**info["files"][0], "path": f} for info, f in zip(infos, files, strict=True)])
    return {"rosbag2_bagfile_information": head}


def _to_humble(path: Path, meta: dict) -> dict:
    """Humble's sqlite3 schema 3 (no message definitions) and metadata.yaml version 5."""
    info = meta["rosbag2_bagfile_information"]
    if info["storage_identifier"] != "sqlite3":
        raise ValueError("Humble bags are sqlite3")
    for name in info["relative_file_paths"]:
        db = sqlite3.connect(path / name)
        db.executescript("""
            DROP TABLE message_definitions;
            CREATE TABLE topics_h(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL,
                                  serialization_format TEXT NOT NULL,
                                  offered_qos_profiles TEXT NOT NULL);
            INSERT INTO topics_h SELECT id, name, type, serialization_format,
                                        offered_qos_profiles FROM topics;
            DROP TABLE topics;
            ALTER TABLE topics_h RENAME TO topics;
            UPDATE schema SET schema_version = 3, ros_distro = 'humble';
            UPDATE metadata SET metadata_version = 5;
        """)
        db.commit()
        db.close()
    keep = ("storage_identifier", "duration", "starting_time", "message_count",
            "compression_format", "compression_mode", "relative_file_paths", "files")
    out = {"version": 5, **{k: info[k] for k in keep}}
    out["topics_with_message_count"] = [
        {"topic_metadata": {k: e["topic_metadata"][k] for k in
                            ("name", "type", "serialization_format", "offered_qos_profiles")},
         "message_count": e["message_count"]} for e in info["topics_with_message_count"]]
    for e in out["topics_with_message_count"]:  # Humble stores the QoS list as a YAML string
        qos = e["topic_metadata"]["offered_qos_profiles"]
        if not isinstance(qos, str):
            e["topic_metadata"]["offered_qos_profiles"] = yaml.safe_dump(qos)
    return {"rosbag2_bagfile_information": out}
