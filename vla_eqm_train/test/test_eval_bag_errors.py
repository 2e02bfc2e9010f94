"""Bad inputs to eval-bag: each names the bag (or checkpoint) and the reason; a failed bag is
reported as failed, never as part of a complete result, and the other bags still run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from eval_bag_support import contract_dict, copy_bag, debug_checkpoint, record_bags, truncate_bag

from vla_eqm_ros.contract import Contract
from vla_eqm_train.cli import main as vla_eqm
from vla_eqm_train.data.bags import BagError
from vla_eqm_train.evaluation.bag.replay import load_episodes


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("evalbag_errors")
    bags = record_bags(root / "bags", episodes=1, steps=8)
    return {"root": root, "bag": bags[0], "ckpt": debug_checkpoint(root / "ckpt"),
            "contract": Contract.from_dict(contract_dict())}


def test_a_truncated_bag_is_a_bag_error_naming_the_bag_and_corruption(setup, tmp_path):
    bag = truncate_bag(setup["bag"], tmp_path / "truncated")
    with pytest.raises(BagError, match="corrupt") as err:
        load_episodes(bag, setup["contract"])
    assert "truncated" in str(err.value)


def test_a_missing_topic_is_a_bag_error_naming_the_topic(setup, tmp_path):
    bag = copy_bag(setup["bag"], tmp_path / "no_state", drop_topics=("/joint_states",))
    with pytest.raises(BagError, match="missing from the bag") as err:
        load_episodes(bag, setup["contract"])
    assert err.value.topic == "/joint_states" and "no_state" in err.value.bag


def test_an_empty_bag_is_a_bag_error_saying_empty(setup, tmp_path):
    bag = copy_bag(setup["bag"], tmp_path / "empty", max_messages=0)
    with pytest.raises(BagError, match="empty bag") as err:
        load_episodes(bag, setup["contract"])
    assert "empty" in err.value.bag


def test_a_contract_that_disagrees_with_the_recording_is_a_contract_mismatch(setup):
    slower = contract_dict()
    slower["control_period"] = 0.05
    with pytest.raises(BagError, match="contract mismatch: recorded at 0.0125 s per step"):
        load_episodes(setup["bag"], Contract.from_dict(slower))
    with pytest.raises(BagError, match="size 32x32 != contract 24x24") as err:
        load_episodes(setup["bag"], Contract.from_dict(contract_dict(size=24)))
    assert err.value.topic == "/camera/corner/image_raw"


def test_a_checkpoint_mismatch_stops_before_replaying_with_a_clear_reason(setup, tmp_path,
                                                                         capsys):
    base = ["eval-bag", "--bags", str(setup["bag"]), "--out", str(tmp_path / "r"),
            "--no-progress"]
    assert vla_eqm([*base, "--checkpoint", str(setup["ckpt"]), "--decoder", "fm"]) == 2
    assert "checkpoint mismatch" in capsys.readouterr().err
    assert vla_eqm([*base, "--checkpoint", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
    bad = debug_checkpoint(tmp_path / "six_states", state_dim=6)  # contract has 5 state values
    assert vla_eqm([*base, "--checkpoint", str(bad)]) == 2
    assert "contract state_dim 5 != model 6" in capsys.readouterr().err
    assert not (tmp_path / "r" / "report.json").exists()


def test_a_bag_that_fails_is_reported_failed_and_the_other_bags_still_run(setup, tmp_path,
                                                                          capsys):
    bags = tmp_path / "bags"
    bags.mkdir()
    good = copy_bag(setup["bag"], bags / "a_good")
    truncate_bag(setup["bag"], bags / "b_truncated", keep=0.7)
    copy_bag(setup["bag"], bags / "c_no_pose", drop_topics=("/ee_pose",))
    copy_bag(setup["bag"], bags / "d_empty", max_messages=0)
    contract = tmp_path / "contract.yaml"
    contract.write_text(yaml.safe_dump(contract_dict()))
    out = tmp_path / "report"
    rc = vla_eqm(["eval-bag", "--checkpoint", str(setup["ckpt"]), "--bags", str(bags),
                  str(tmp_path / "not_a_bag"), "--contract", str(contract), "--tau", "0.5",
                  "--warm-start", "none,shifted", "--out", str(out), "--no-progress"])
    assert rc == 1
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] is False
    failed = {Path(f["bag"]).name: f["reason"] for f in report["bags"]["failed"]}
    assert set(failed) == {"b_truncated", "c_no_pose", "d_empty", "not_a_bag"}
    assert "corrupt" in failed["b_truncated"] and "empty bag" in failed["d_empty"]
    assert "/ee_pose" in failed["c_no_pose"] and "no such bag" in failed["not_a_bag"]
    assert report["bags"]["ok"] == 1 and report["bags"]["total"] == 5
    for agg in report["aggregates"].values():  # aggregates hold the good bag only
        assert agg["episodes_ok"] == 1 and agg["episodes_failed"] == 3
    ok = [e for e in report["episodes"] if e["status"] == "ok"]
    assert [Path(e["bag"]) for e in ok] == [good]
    md = (out / "report.md").read_text()
    assert md.startswith("# vla-eqm eval-bag report\n\n> **INCOMPLETE**")
    assert "FAILED" in capsys.readouterr().err
