"""`vla-eqm dataset build`: a summary on success; on failure a named error and no cache."""

from __future__ import annotations

import json

import yaml
from bag_factory import CONTRACT, write_bag

from vla_eqm_train.cli import main as vla_eqm


def _contract_file(tmp_path):
    path = tmp_path / "contract.yaml"
    path.write_text(yaml.safe_dump(CONTRACT))
    return path


def test_build_prints_a_json_summary_with_episodes_frames_tasks_and_field_stats(tmp_path, capsys):
    for i in range(3):
        write_bag(tmp_path / "bags" / f"ep{i}", steps=4 + i, task=f"task{i % 2}")
    write_bag(tmp_path / "bags" / "bad_demo", steps=3, success=False)
    rc = vla_eqm(["dataset", "build", str(tmp_path / "bags"), "--out", str(tmp_path / "cache"),
                  "--contract", str(_contract_file(tmp_path)), "--json", "--no-progress"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["episodes"] == 3 and summary["frames"] == 4 + 5 + 6
    assert summary["tasks"] == {"task0": {"episodes": 2, "frames": 10},
                                "task1": {"episodes": 1, "frames": 5}}
    assert summary["dropped_failed_demos"] == ["bad_demo"]
    assert set(summary["stats_mean_std"]["action"]) == {"dx", "dy", "dz", "gripper"}
    assert (tmp_path / "cache" / "images_corner.npy").is_file()


def test_a_missing_topic_fails_the_build_naming_bag_and_topic_and_leaves_no_cache(tmp_path,
                                                                                   capsys):
    write_bag(tmp_path / "bags" / "good", steps=3)
    write_bag(tmp_path / "bags" / "no_joints", steps=3, skip_topics=("/joint_states",))
    rc = vla_eqm(["dataset", "build", str(tmp_path / "bags"), "--out", str(tmp_path / "cache"),
                  "--contract", str(_contract_file(tmp_path)), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "no_joints" in err and "topic /joint_states" in err and "missing" in err
    assert not (tmp_path / "cache").exists()


def test_an_existing_cache_is_not_overwritten_without_the_flag(tmp_path, capsys):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "meta.json").write_text("{}")
    write_bag(tmp_path / "bags" / "a", steps=2)
    rc = vla_eqm(["dataset", "build", str(tmp_path / "bags"), "--out", str(tmp_path / "cache"),
                  "--contract", str(_contract_file(tmp_path)), "--no-progress"])
    assert rc == 2 and "--overwrite" in capsys.readouterr().err
