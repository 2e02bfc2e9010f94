"""The contract: YAML topics -> observation/action fields, validated with errors naming the key."""

from __future__ import annotations

import copy
import math

import pytest

from vla_eqm_ros.contract import Contract, ContractError

METAWORLD = {
    "cameras": [
        {"name": "corner", "topic": "/camera/corner/image_raw", "height": 96, "width": 96,
         "max_age": 0.2},
    ],
    "state": [
        {"topic": "/joint_states", "type": "joint_state", "names": ["r_close", "l_close"],
         "field": "position", "max_age": 0.2},
        {"topic": "/ee_pose", "type": "pose", "fields": ["x", "y", "z"], "max_age": 0.2},
    ],
    "goal": {"topic": "/language_goal"},
    "action": {"names": ["dx", "dy", "dz", "gripper"], "topic": "/command",
               "type": "float64_multi_array", "low": [-1, -1, -1, -1], "high": [1, 1, 1, 1],
               "hold": [0, 0, 0, None], "delta_scale": 0.01},
    "control_period": 0.05,
    "alignment": {"mode": "asof", "max_skew": 0.05},
}


def test_a_metaworld_contract_reports_its_dimensions_and_input_topics() -> None:
    c = Contract.from_dict(METAWORLD)
    assert c.state_dim == 5
    assert c.action_dim == 4
    assert c.camera_names == ["corner"]
    assert c.action.kind == "cartesian_delta"
    assert c.action.hold == (0.0, 0.0, 0.0, None)
    assert c.input_topics() == [
        ("/camera/corner/image_raw", "sensor_msgs/msg/Image"),
        ("/joint_states", "sensor_msgs/msg/JointState"),
        ("/ee_pose", "geometry_msgs/msg/PoseStamped"),
        ("/language_goal", "std_msgs/msg/String"),
    ]
    assert c.action.ros_type == "std_msgs/msg/Float64MultiArray"
    assert c.state_labels == ["r_close.position", "l_close.position", "/ee_pose.x", "/ee_pose.y",
                              "/ee_pose.z"]


def test_a_contract_survives_a_yaml_round_trip_unchanged(tmp_path) -> None:
    c = Contract.from_dict(METAWORLD)
    c.to_yaml(tmp_path / "contract.yaml")
    assert Contract.from_yaml(tmp_path / "contract.yaml") == c
    assert Contract.from_dict(c.to_dict()) == c


def test_joint_trajectory_actions_hold_by_repeating_the_last_value_by_default() -> None:
    d = copy.deepcopy(METAWORLD)
    d["action"] = {"names": ["j1", "j2"], "type": "joint_trajectory",
                   "topic": "/joint_trajectory_controller/joint_trajectory"}
    c = Contract.from_dict(d)
    assert c.action.kind == "joint"
    assert c.action.hold == (None, None)
    assert c.action.low == (-math.inf, -math.inf)
    assert c.action.ros_type == "trajectory_msgs/msg/JointTrajectory"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["action"].pop("names"), "action: missing key 'names'"),
        (lambda d: d["action"].update(type="twist"), "action.type"),
        (lambda d: d["action"].update(low=[-1, -1]), "action.low: expected 4 numbers"),
        (lambda d: d["action"].update(low=[1, 1, 1, 1]), "every low must be < high"),
        (lambda d: d["action"].update(hold=[0, 0, 5, None]), "action.hold[2]=5.0 lies outside"),
        (lambda d: d["cameras"][0].update(height=0), "height and width must be > 0"),
        (lambda d: d["cameras"][0].update(max_age=-1), "cameras[0].max_age"),
        (lambda d: d["state"][0].update(field="torque"), "state[0].field"),
        (lambda d: d["state"][1].update(fields=["x", "roll"]), "state[1].fields: unknown ['roll']"),
        (lambda d: d["state"][0].update(names=["a", "a"]), "duplicate names"),
        (lambda d: d["alignment"].update(mode="nearest"), "alignment.mode"),
        (lambda d: d.update(control_period=0), "control_period: must be a finite number > 0"),
        (lambda d: d.update(camera=[]), "unknown keys ['camera']"),
        (lambda d: d["state"][1].update(topic="/camera/corner/image_raw"), "its own topic"),
    ],
)
def test_a_bad_contract_is_rejected_with_a_message_naming_the_key(mutate, message) -> None:
    d = copy.deepcopy(METAWORLD)
    mutate(d)
    with pytest.raises(ContractError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Contract.from_dict(d)


def test_an_unreadable_contract_file_raises_a_contract_error(tmp_path) -> None:
    (tmp_path / "bad.yaml").write_text("cameras: [unclosed")
    with pytest.raises(ContractError, match="cannot read contract"):
        Contract.from_yaml(tmp_path / "bad.yaml")
