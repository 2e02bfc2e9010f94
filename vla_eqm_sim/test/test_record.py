"""``vla-eqm record``: bags that read back with rosbags, with every topic and the metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from vla_eqm_sim.bag_types import make_typestore
from vla_eqm_sim.bag_writer import EPISODE_INFO_TOPIC, METADATA_KEY, sidecar_path
from vla_eqm_train.cli import main as vla_eqm

ROBOT_TOPICS = {
    "/camera/corner/image_raw": "sensor_msgs/msg/Image",
    "/camera/gripperPOV/image_raw": "sensor_msgs/msg/Image",
    "/joint_states": "sensor_msgs/msg/JointState",
    "/ee_pose": "geometry_msgs/msg/PoseStamped",
    "/language_goal": "std_msgs/msg/String",
    "/command": "std_msgs/msg/Float64MultiArray",
    "/episode_status": "vla_eqm_msgs/msg/EpisodeStatus",
    EPISODE_INFO_TOPIC: "std_msgs/msg/String",
}


def _read(bag: Path) -> tuple[dict, dict[str, list]]:
    """(custom_data, topic -> [(bag time, message)]) read with rosbags alone."""
    store = make_typestore()
    out: dict[str, list] = {}
    with Reader(bag) as reader:
        custom = dict(reader.storage.metadata.custom or {})
        types = {c.topic: c.msgtype for c in reader.connections}
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, store.deserialize_cdr(raw, conn.msgtype)))
    assert types == ROBOT_TOPICS
    return custom, out


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("bags")
    rc = vla_eqm([
        "record", "--tasks", "button-press-v3", "--episodes", "1", "--seed", "0",
        "--out", str(out), "--cameras", "corner,gripperPOV", "--image-size", "64",
        "--max-steps", "120", "--no-progress",
    ])
    assert rc == 0
    return out, json.loads(sidecar_path(out / "button-press-v3__var00__seed0").read_text())


def test_a_recorded_bag_reads_back_with_every_robot_topic_and_one_message_per_step(recorded):
    out, meta = recorded
    _, topics = _read(out / "button-press-v3__var00__seed0")
    steps = meta["steps"]
    assert meta["success"] and 0 < steps < 120
    for topic in ("/camera/corner/image_raw", "/camera/gripperPOV/image_raw", "/joint_states",
                  "/ee_pose", "/episode_status"):
        assert len(topics[topic]) == steps + 1, topic
    assert len(topics["/command"]) == steps
    assert [m.step for _, m in topics["/episode_status"]] == list(range(steps + 1))
    assert topics["/episode_status"][-1][1].success
    image = topics["/camera/corner/image_raw"][0][1]
    assert (image.height, image.width, image.encoding) == (64, 64, "rgb8")
    assert topics["/language_goal"][0][1].data == "press the button from the front"


def test_bag_times_are_sim_time_and_each_command_follows_its_observation(recorded):
    out, meta = recorded
    _, topics = _read(out / "button-press-v3__var00__seed0")
    obs_times = [t for t, _ in topics["/joint_states"]]
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
              for _, m in topics["/joint_states"]]
    assert obs_times == stamps
    assert np.allclose(np.diff(obs_times), meta["control_period_s"] * 1e9)
    assert [t for t, _ in topics["/command"]] == obs_times[:-1]
    for _, cmd in topics["/command"]:
        assert len(cmd.data) == 4 and np.all(np.abs(cmd.data) <= 1.0)


def test_metadata_agrees_in_custom_data_the_episode_info_message_and_the_sidecar(recorded):
    out, meta = recorded
    custom, topics = _read(out / "button-press-v3__var00__seed0")
    in_bag = json.loads(topics[EPISODE_INFO_TOPIC][0][1].data)
    assert json.loads(custom[METADATA_KEY]) == in_bag == meta
    for key, value in {
        "task": "button-press-v3", "variation": 0, "seed": 0, "success": True,
        "label": "success", "instruction": "press the button from the front",
        "control_mode": "cartesian", "cameras": ["corner", "gripperPOV"], "complete": True,
    }.items():
        assert meta[key] == value, key
    assert meta["steps"] > 0


def test_failed_expert_episodes_are_kept_and_labelled_or_set_aside_with_success_only(tmp_path):
    rc = vla_eqm([
        "record", "--tasks", "drawer-open-v3", "--episodes", "1", "--max-attempts", "2",
        "--out", str(tmp_path), "--image-size", "32", "--max-steps", "8", "--no-progress",
        "--success-only",
    ])
    assert rc == 0
    summary = json.loads((tmp_path / "record_summary.json").read_text())
    assert summary["short"] == {"drawer-open-v3": 0}  # listed, not hidden
    assert summary["tasks"]["drawer-open-v3"]["attempts"] == 2
    failed = sorted((tmp_path / "failed").glob("*.json"))
    assert [p.name for p in failed] == ["drawer-open-v3__var00__seed0.json",
                                        "drawer-open-v3__var01__seed0.json"]
    for sidecar in failed:
        meta = json.loads(sidecar.read_text())
        assert meta["label"] == "failure" and not meta["success"] and meta["steps"] == 8
        custom, _ = _read_failure(sidecar.with_suffix(""))
        assert json.loads(custom[METADATA_KEY])["label"] == "failure"


def _read_failure(bag: Path):
    with Reader(bag) as reader:
        return dict(reader.storage.metadata.custom or {}), reader.message_count


def test_a_rerun_records_nothing_it_has_and_other_settings_are_refused(recorded, capsys):
    out, meta = recorded
    before = sidecar_path(out / "button-press-v3__var00__seed0").stat().st_mtime_ns
    assert vla_eqm(["record", "--tasks", "button-press-v3", "--episodes", "1", "--out", str(out),
                    "--cameras", "corner,gripperPOV", "--image-size", "64", "--max-steps", "120",
                    "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["episodes"] == 0 and report["totals"]["successes"] == 1
    assert sidecar_path(out / "button-press-v3__var00__seed0").stat().st_mtime_ns == before
    assert vla_eqm(["record", "--tasks", "button-press-v3", "--episodes", "1",
                    "--out", str(out)]) == 2  # default cameras and size differ from the bags'
    assert "other settings" in capsys.readouterr().err
    assert vla_eqm(["record", "--tasks", "no-such-task-v3", "--out", str(out)]) == 2
    assert "unknown task" in capsys.readouterr().err
    assert vla_eqm(["record", "--tasks", "reach-v3", "--episodes", "3", "--max-attempts", "2",
                    "--out", str(out)]) == 2
    assert "--max-attempts" in capsys.readouterr().err
