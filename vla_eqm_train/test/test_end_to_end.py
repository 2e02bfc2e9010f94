"""The whole pipeline in miniature, on the real components: record two short expert episodes
through the sim bridge (rosbag2), build the cache, train a few steps, load the checkpoint, and run
one closed-loop episode through ROS topics in lockstep. A couple of minutes at most."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from vla_eqm_ros.policy import Policy
from vla_eqm_train.cli import main as vla_eqm
from vla_eqm_train.commands.dataset import DEFAULT_CONTRACT

TASK = "button-press-topdown-v3"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("e2e")
    contract = yaml.safe_load(DEFAULT_CONTRACT.read_text())
    contract["cameras"] = [{**contract["cameras"][0], "height": 32, "width": 32}]
    (root / "contract.yaml").write_text(yaml.safe_dump(contract))
    assert vla_eqm(["record", "--tasks", TASK, "--episodes", "2", "--max-attempts", "2",
                    "--out", str(root / "bags"),
                    "--cameras", "corner", "--image-size", "32", "--max-steps", "12",
                    "--no-progress"]) == 0
    assert vla_eqm(["dataset", "build", str(root / "bags"), "--out", str(root / "cache"),
                    "--contract", str(root / "contract.yaml"), "--include-failures",
                    "--val-fraction", "0.5", "--no-progress"]) == 0
    config = Path(__file__).resolve().parents[1] / "config" / "debug.yaml"
    assert vla_eqm(["train", "--config", str(config), "--dataset", str(root / "cache"),
                    "--out", str(root / "ckpt"), "--run-dir", str(root / "run"),
                    "--steps", "3", "--no-progress"]) == 0
    return {"root": root, "ckpt": root / "ckpt"}


def test_the_cache_holds_both_recorded_episodes_split_by_episode(pipeline):
    meta = json.loads((pipeline["root"] / "cache" / "meta.json").read_text())
    assert len(meta["episodes"]) == 2 and meta["tasks"] == [TASK]
    assert all(e["length"] == 12 for e in meta["episodes"])  # one frame per command
    assert len(meta["split"]["train"]) == 1 and len(meta["split"]["val"]) == 1


def test_the_trained_checkpoint_loads_and_decodes_a_chunk_of_the_contracts_shape(pipeline):
    policy = Policy.from_checkpoint(pipeline["ckpt"], seed=0)
    assert policy.config.provenance["dataset_tasks"] == [TASK]
    assert policy.config.model.cameras[0].height == 32
    assert (pipeline["root"] / "run" / "loss_curves.png").is_file()


def test_closed_loop_episodes_run_back_to_back_against_the_sim_bridge_over_ros_topics(
        pipeline, tmp_path):
    report_path = tmp_path / "eval.json"
    args = ["eval-sim", "--checkpoint", str(pipeline["ckpt"]), "--episodes", "2",
            "--workers", "1", "--max-steps", "3", "--k-max", "3", "--json", str(report_path),
            "--log", str(tmp_path / "episodes.jsonl"), "--no-progress"]
    assert vla_eqm(args) == 0
    report = json.loads(report_path.read_text())
    # a rerun finds both episodes in the log and runs none of them again
    assert vla_eqm(args) == 0
    again = json.loads(report_path.read_text())
    assert again["episodes_resumed"] == 2 and again["episodes"] == report["episodes"]
    # the log belongs to its settings: another K_max is refused, naming the key
    assert vla_eqm([*args[:-1], "--k-max", "4", "--no-progress"]) == 2
    task = report["tasks"][TASK]
    assert task["episodes"] == 2 and report["episodes_run"] == 2
    for episode in report["episodes"]:  # the second one starts after a reset (same sim time)
        assert episode["steps"] == 3 and not episode["error"]  # three commands, three steps
        assert episode["seed"] == 1000  # held out: the demos came from seed 0
        assert 1 <= len(episode["iterations"]) <= 3 and max(episode["iterations"]) <= 3
        # the final residual of every decode, and how many stopped at K_max (the confidence
        # signal's raw data)
        assert len(episode["residuals"]) == len(episode["iterations"])
        assert all(r >= 0 for r in episode["residuals"])
        hits = sum(i == 3 for i in episode["iterations"])
        assert episode["k_max_hits"] <= hits
        # the solve alone, inside prefix + solve (what a deadline_ms budget is compared with)
        assert len(episode["solve_ms"]) == len(episode["decode_ms"])
        assert all(0 < s <= d for s, d in zip(episode["solve_ms"], episode["decode_ms"],
                                              strict=True))
        assert episode["deadline_hits"] == 0  # no deadline_ms set
    assert report["decoder_settings"]["k_max"] == 3
    assert task["decode_ms_p50"] > 0 and task["iters_p50"] >= 1
