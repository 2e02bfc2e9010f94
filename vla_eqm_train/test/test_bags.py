"""Bag conversion: time alignment, labels, and errors that name the bag, topic and problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bag_factory import command_of, contract, write_bag

from vla_eqm_ros.contract import Contract
from vla_eqm_train.data.bags import BagError, find_bags, read_episode


def test_each_frame_pairs_the_observation_of_a_tick_with_the_command_answering_it(tmp_path):
    ep = read_episode(write_bag(tmp_path / "ep", steps=6), contract())
    assert ep.length == 6  # the final observation (after the last command) has no label
    for k in range(6):
        assert ep.images["corner"][k, 0, 0, 0] == k
        np.testing.assert_allclose(ep.state[k], [k / 100, 0.5, 0.1, 0.01 * k, -0.01 * k],
                                   rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(ep.actions[k], command_of(k))
    assert ep.goal == "press the button"
    assert ep.info["task"] == "t"
    assert ep.skipped_ticks == 1


def test_a_tick_without_a_fresh_input_yields_no_frame_instead_of_a_stale_pairing(tmp_path):
    bag = write_bag(tmp_path / "ep", steps=4)
    wide = contract().to_dict()
    wide["control_period"] = 0.00625  # ticks between observations: inputs too old at asof
    wide["cameras"][0]["max_age"] = 0.001
    ep = read_episode(bag, Contract.from_dict(wide))
    assert ep.length == 4
    np.testing.assert_allclose(ep.actions[:, 0], [0, 1, 2, 3])


def test_a_missing_topic_raises_an_error_naming_the_bag_and_the_topic(tmp_path):
    bag = write_bag(tmp_path / "no_pose", steps=3, skip_topics=("/ee_pose",))
    with pytest.raises(BagError) as err:
        read_episode(bag, contract())
    assert err.value.topic == "/ee_pose"
    assert "no_pose" in str(err.value) and "missing" in str(err.value)


def test_a_message_type_that_differs_from_the_contract_is_a_contract_mismatch(tmp_path):
    bag = write_bag(tmp_path / "wrong_type", steps=3, image_type="std_msgs/msg/String")
    with pytest.raises(BagError, match="contract mismatch") as err:
        read_episode(bag, contract())
    assert err.value.topic == "/camera/corner/image_raw"
    assert "wrong_type" in err.value.bag


def test_an_image_size_that_differs_from_the_contract_names_the_camera_topic(tmp_path):
    bag = write_bag(tmp_path / "big", steps=3, image_size=16)
    with pytest.raises(BagError, match="16x16 != contract 8x8") as err:
        read_episode(bag, contract())
    assert err.value.topic == "/camera/corner/image_raw"


def test_a_corrupt_bag_raises_a_bag_error_instead_of_a_library_traceback(tmp_path):
    bag = write_bag(tmp_path / "corrupt", steps=3)
    mcap = next(Path(bag).glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) // 2])
    with pytest.raises(BagError, match="corrupt") as err:
        read_episode(bag, contract())
    assert "corrupt" in err.value.bag


def test_find_bags_walks_folders_and_skips_failed_demos(tmp_path):
    write_bag(tmp_path / "a", steps=1)
    write_bag(tmp_path / "failed" / "b", steps=1)
    assert [p.name for p in find_bags([tmp_path])] == ["a"]
    with pytest.raises(BagError, match="no such bag"):
        find_bags([tmp_path / "nothing"])


def _compressed_contract(resize: bool = False) -> Contract:
    d = contract().to_dict()
    d["cameras"][0].update(topic="/camera/corner/image_raw/compressed", transport="compressed",
                           resize=resize)
    return Contract.from_dict(d)


def test_compressed_camera_bags_decode_through_the_same_path_as_raw_ones(tmp_path):
    raw = read_episode(write_bag(tmp_path / "raw", steps=5), contract())
    bag = write_bag(tmp_path / "png", steps=5, image_type="sensor_msgs/msg/CompressedImage")
    packed = read_episode(bag, _compressed_contract())
    np.testing.assert_array_equal(packed.images["corner"], raw.images["corner"])  # PNG: lossless
    np.testing.assert_allclose(packed.actions, raw.actions)


def test_a_larger_compressed_frame_is_resized_to_the_contract_when_asked(tmp_path):
    bag = write_bag(tmp_path / "big_png", steps=3, image_size=32, compressed_fill=True,
                    image_type="sensor_msgs/msg/CompressedImage")
    with pytest.raises(BagError, match="size 32x32 != contract 8x8"):
        read_episode(bag, _compressed_contract(resize=False))
    ep = read_episode(bag, _compressed_contract(resize=True))
    assert ep.images["corner"].shape == (3, 8, 8, 3)
    np.testing.assert_array_equal(ep.images["corner"][2, :, :, 1:], 100 * np.ones((8, 8, 2))
                                  * [1, 2]), "a flat frame stays flat, colours in RGB order"


def test_contract_init_surveys_a_bag_and_writes_a_skeleton_that_converts_it(tmp_path, capsys):
    from vla_eqm_train.cli import main as vla_eqm

    bag = write_bag(tmp_path / "png", steps=6, image_size=32,
                    image_type="sensor_msgs/msg/CompressedImage")
    out = tmp_path / "contract.yaml"
    assert vla_eqm(["contract", "init", str(bag), "--out", str(out)]) == 0
    listing = capsys.readouterr().out
    assert "/camera/corner/image_raw/compressed" in listing and "/command" in listing
    text = out.read_text()
    assert "recorded 32x32 (rgb8; png compressed bgr8)" in text
    made = Contract.from_yaml(out)
    assert made.cameras[0].transport == "compressed" and made.cameras[0].resize
    assert {"r_close", "l_close"} <= set(made.state[0].names), "every recorded joint listed"
    assert made.action.topic == "/command" and made.action_dim == 4
    assert abs(made.control_period - 0.0125) < 1e-6, "1 / the recorded command rate"
    edited = made.to_dict()  # what a user edits: the robot's real limits
    edited["action"].update(low=[-100] * 4, high=[100] * 4)
    ep = read_episode(bag, Contract.from_dict(edited))
    assert ep.length == 6 and ep.images["corner"].shape == (6, 96, 96, 3)
    assert vla_eqm(["contract", "init", str(bag), "--out", str(out)]) == 2, "never overwrites"
