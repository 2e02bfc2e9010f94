"""A robot's ``ros2 bag record`` session, from the bag to a trained checkpoint, with the contract as
the only hand edit: contract init -> contract check -> dataset build -> a 2-step train ->
eval-bag. The bags (``robot_bags.py``) hold 640x480 JPEG and PNG CompressedImage cameras, a
7-joint JointState, an episode marker and topics the policy never reads, in MCAP split over two
files and in Humble's sqlite3 layout. Broken inputs stop with an error that names the bag, the
topic and the problem, and leave nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from robot_bags import COMMAND, JOINTS, MARKER, SCENE, VENDOR_TYPE, WRIST, Session, write_session

from vla_eqm_ros.contract import Contract
from vla_eqm_train.cli import main as vla_eqm
from vla_eqm_train.data.bag_survey import survey
from vla_eqm_train.data.bags import BagError, read_episodes

DEBUG_CONFIG = Path(__file__).resolve().parents[1] / "config" / "debug.yaml"
SIZE = 32  # model input; the bags hold 640x480


@pytest.fixture(scope="module")
def robot(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("robot")
    jazzy = write_session(root / "bags" / "jazzy_session", storage="mcap", split=2)
    humble = write_session(root / "bags" / "humble_session", storage="sqlite3", split=2,
                           humble=True)
    return {"root": root, "jazzy": jazzy, "humble": humble}


def _contract_from_init(robot: dict, capsys) -> Path:
    """``contract init`` on the Jazzy bag, then the one hand edit: the model's input size."""
    path = robot["root"] / "contract.yaml"
    if not path.exists():
        _init_and_resize(robot["jazzy"], path)
        capsys.readouterr()
    return path


def _init_and_resize(bag: Path, path: Path) -> None:
    assert vla_eqm(["contract", "init", str(bag), "--out", str(path)]) == 0
    data = yaml.safe_load(path.read_text())
    for cam in data["cameras"]:
        cam.update(height=SIZE, width=SIZE)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_both_layouts_survey_the_same_topics_and_the_vendor_type_decodes_from_the_bag(robot):
    jazzy = {t.topic: t for t in survey(robot["jazzy"])}
    humble = {t.topic: t for t in survey(robot["humble"])}
    assert set(jazzy) == set(humble)
    assert {WRIST, SCENE, COMMAND, MARKER, "/tf", "/rosout", "/gripper/status"} <= set(jazzy)
    assert jazzy[WRIST].count == humble[WRIST].count  # both split files are read
    assert jazzy[WRIST].detail == {"format": "rgb8; jpeg compressed bgr8", "height": 480,
                                   "width": 640}
    assert jazzy["/joint_states"].detail["names"] == JOINTS
    # MCAP stores the vendor definition: it registers and decodes; Humble stores none
    assert jazzy["/gripper/status"].msgtype == VENDOR_TYPE
    assert "error" not in jazzy["/gripper/status"].detail
    assert round(jazzy[COMMAND].rate_hz) == 10  # the median period, pauses excluded


def test_contract_init_writes_compressed_cameras_joint_names_and_the_marker(robot, capsys):
    data = yaml.safe_load(_contract_from_init(robot, capsys).read_text())
    cams = {c["topic"]: c for c in data["cameras"]}
    assert cams[WRIST]["transport"] == "compressed" and cams[WRIST]["resize"] is True
    assert data["state"][0]["names"] == JOINTS
    assert data["action"]["topic"] == COMMAND and len(data["action"]["names"]) == 7
    assert data["episodes"] == {"split": "marker", "marker": MARKER, "instruction": "goal"}
    assert data["control_period"] == pytest.approx(0.1)


def test_contract_check_reports_rates_skew_drops_and_samples(robot, capsys):
    contract = _contract_from_init(robot, capsys)
    assert vla_eqm(["contract", "check", str(robot["jazzy"]), str(robot["humble"]),
                    "--contract", str(contract), "--json"]) == 0
    out = capsys.readouterr()
    jazzy, humble = sorted(json.loads(out.out), key=lambda r: r["bag"])[::-1]
    for report in (jazzy, humble):
        assert [e["goal"] for e in report["episodes"]] == [
            "pick up the red block", "open the drawer", "push the button"]
        assert [e["frames"] for e in report["episodes"]] == [20, 25, 20]
        assert report["samples"] == 65
        assert report["unused_topics"] == ["/gripper/status", "/rosout", "/tf"]
        assert set(report["skew_vs_reference"]) == {"wrist_camera", "/joint_states"}
        assert report["skew_vs_reference"]["wrist_camera"]["max_ms"] == pytest.approx(10.0)
    assert "skew against the reference input" in out.err and "65 training samples" in out.err


@pytest.fixture(scope="module")
def trained(robot) -> Path:
    """dataset build over both bags (6 episodes) and a 2-step train on the debug preset."""
    root = robot["root"]
    contract = root / "contract.yaml"
    if not contract.exists():
        _init_and_resize(robot["jazzy"], contract)
    assert vla_eqm(["dataset", "build", str(root / "bags"), "--out", str(root / "cache"),
                    "--contract", str(contract), "--no-progress", "--val-fraction", "0.34"]) == 0
    assert vla_eqm(["train", "--config", str(DEBUG_CONFIG), "--dataset", str(root / "cache"),
                    "--out", str(root / "ckpt"), "--run-dir", str(root / "run"),
                    "--steps", "2", "--no-progress"]) == 0
    return root / "ckpt"


def test_a_session_trains_and_replays_with_no_edit_but_the_contract(robot, trained):
    root = robot["root"]
    meta = json.loads((root / "cache" / "meta.json").read_text())
    assert len(meta["episodes"]) == 6 and meta["frames"] == 130
    assert sorted(meta["instructions"]) == ["open the drawer", "pick up the red block",
                                            "push the button"]
    assert Contract.from_dict(meta["contract"]).episodes.split == "marker"
    rc = vla_eqm(["eval-bag", "--checkpoint", str(trained), "--bags", str(robot["jazzy"]),
                  "--out", str(root / "eval"), "--no-progress", "--probe-cycles", "0"])
    report = json.loads((root / "eval" / "report.json").read_text())
    assert rc == 0 and report["complete"], report["bags"]
    assert [e["name"] for e in report["episodes"]] == [f"jazzy_session#{k}" for k in range(3)]
    assert [e["length"] for e in report["episodes"]] == [20, 25, 20]


def _broken(tmp_path: Path, **kw) -> Path:
    return write_session(tmp_path / "broken_session",
                         Session(episodes_s=[1.0, 1.0], instructions=["a", "b"], **kw))


@pytest.mark.parametrize("kw, topic, problem", [
    ({"corrupt": "jpeg"}, WRIST, "cannot decode: .*jpeg"),
    ({"corrupt": "png"}, SCENE, "cannot decode: .*png"),
    ({"scene_format": "rgb8; webp compressed bgr8"}, SCENE, "cannot decode: .*webp"),
    ({"marker": "none"}, MARKER, "episode marker topic is missing"),
], ids=["corrupt-jpeg", "truncated-png", "unknown-format", "no-marker"])
def test_broken_input_names_bag_topic_and_problem_and_writes_nothing(robot, capsys, tmp_path,
                                                                     kw, topic, problem):
    bag = _broken(tmp_path, **kw)
    contract = _contract_from_init(robot, capsys)
    with pytest.raises(BagError, match=problem) as err:
        read_episodes(bag, Contract.from_yaml(contract))
    assert err.value.topic == topic and "broken_session" in err.value.bag
    assert vla_eqm(["contract", "check", str(bag), "--contract", str(contract)]) == 1
    assert f"topic {topic}" in capsys.readouterr().err
    cache = tmp_path / "cache"
    assert vla_eqm(["dataset", "build", str(bag), "--out", str(cache), "--contract",
                    str(contract), "--no-progress"]) == 1
    err_text = capsys.readouterr().err
    assert "broken_session" in err_text and f"topic {topic}" in err_text
    assert not cache.exists()  # nothing half-written


def test_eval_bag_reports_a_broken_bag_as_failed_with_the_reason(trained, tmp_path):
    bag = _broken(tmp_path, corrupt="jpeg")
    rc = vla_eqm(["eval-bag", "--checkpoint", str(trained), "--bags", str(bag),
                  "--out", str(tmp_path / "eval"), "--no-progress", "--probe-cycles", "0"])
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert rc == 1 and not report["complete"]
    (failed,) = report["bags"]["failed"]
    assert f"topic {WRIST}" in failed["reason"] and "cannot decode" in failed["reason"]
