"""``vla-eqm record`` at benchmark scale, on two short tasks: record until N successes in parallel
workers, JPEG cameras as a robot records them, a summary from the files, and resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import Reader

from vla_eqm_ros.contract import Contract
from vla_eqm_ros.images import decode_compressed
from vla_eqm_sim.bag_types import make_typestore
from vla_eqm_sim.bag_writer import sidecar_path
from vla_eqm_sim.bringup import bridge_image_transport
from vla_eqm_train.cli import main as vla_eqm

TASKS = ["reach-v3", "button-press-topdown-v3"]
ARGS = ["--episodes", "2", "--workers", "2", "--image-transport", "compressed",
        "--cameras", "corner,gripperPOV", "--image-size", "32", "--max-steps", "150",
        "--no-progress"]
COMPRESSED_CONTRACT = (Path(__file__).resolve().parents[2] / "vla_eqm_train" / "config"
                       / "metaworld_compressed_contract.yaml")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite")
    assert vla_eqm(["record", "--tasks", *TASKS, "--out", str(out), *ARGS]) == 0
    return out


def test_each_task_records_until_it_holds_its_successes_with_a_summary_per_task(recorded):
    summary = json.loads((recorded / "record_summary.json").read_text())
    assert summary["short"] == {}
    for task in TASKS:
        row = summary["tasks"][task]
        assert row["successes"] == 2 and row["attempts"] >= 2
        assert row["expert_success_rate"] == pytest.approx(2 / row["attempts"])
        bags = sorted(recorded.glob(f"{task}__var*__seed0"))
        metas = [json.loads(sidecar_path(b).read_text()) for b in bags if b.is_dir()]
        assert row["frames"] == sum(m["steps"] + 1 for m in metas if m["success"])
        assert row["bytes"] == sum(f.stat().st_size for b in bags if b.is_dir()
                                   for f in b.iterdir())
    assert summary["settings"]["codec"] == "jpeg" and summary["settings"]["jpeg_quality"] == 90
    assert summary["runs"][-1]["workers"] == 2 and summary["episodes_per_minute"] > 0
    error = summary["pixel_error"]
    # 32 px frames are mostly edges, where JPEG errs most (96 px: about 32 dB)
    assert error["frames"] >= 8 and 0 < error["mean_abs"] < 12 and error["psnr_db"] > 20


def test_cameras_are_stored_as_jpeg_compressed_images_that_decode_to_the_recorded_size(recorded):
    store = make_typestore()
    bag = recorded / "reach-v3__var00__seed0"
    with Reader(bag) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        assert types["/camera/corner/image_raw/compressed"] == "sensor_msgs/msg/CompressedImage"
        assert "/camera/corner/image_raw" not in types
        meta = json.loads(sidecar_path(bag).read_text())
        frames = [store.deserialize_cdr(raw, c.msgtype) for c, _, raw in reader.messages()
                  if c.topic == "/camera/gripperPOV/image_raw/compressed"]
    assert len(frames) == meta["steps"] + 1  # one per observation: nothing lost across workers
    assert meta["image_transport"] == "compressed" and meta["jpeg_quality"] == 90
    assert frames[0].format == "rgb8; jpeg compressed bgr8"
    rgb = decode_compressed(frames[0].data, frames[0].format)
    assert rgb.shape == (32, 32, 3) and rgb.std() > 5


def test_a_rerun_records_only_the_interrupted_episode(recorded, capsys):
    bag = recorded / "reach-v3__var01__seed0"
    sidecar_path(bag).unlink()  # as a write that was killed before its sidecar
    kept = sidecar_path(recorded / "button-press-topdown-v3__var00__seed0").stat().st_mtime_ns
    capsys.readouterr()
    assert vla_eqm(["record", "--tasks", *TASKS, "--out", str(recorded), *ARGS]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [Path(b).name for b in report["bags"]] == ["reach-v3__var01__seed0"]
    assert sidecar_path(bag).is_file()
    assert sidecar_path(recorded / "button-press-topdown-v3__var00__seed0").stat(
    ).st_mtime_ns == kept
    summary = json.loads((recorded / "record_summary.json").read_text())
    assert len(summary["runs"]) == 2 and summary["totals"]["successes"] == 4


def test_the_compressed_bags_build_a_dataset_through_the_compressed_contract(recorded, tmp_path):
    contract = yaml.safe_load(COMPRESSED_CONTRACT.read_text())
    for cam in contract["cameras"]:
        cam["height"] = cam["width"] = 32
    path = tmp_path / "contract.yaml"
    path.write_text(yaml.safe_dump(contract))
    assert bridge_image_transport(Contract.from_yaml(path)) == "compressed"  # what a bridge
    # serving a checkpoint trained on this contract publishes
    assert vla_eqm(["dataset", "build", str(recorded), "--out", str(tmp_path / "cache"),
                    "--contract", str(path), "--no-progress"]) == 0
    images = np.load(tmp_path / "cache" / "images_corner.npy", mmap_mode="r")
    assert images.shape[1:] == (32, 32, 3) and images.shape[0] > 4


@pytest.fixture(scope="module")
def compressed_checkpoint(recorded, tmp_path_factory):
    """A 2-step debug policy trained on the JPEG bags through the compressed contract."""
    root = tmp_path_factory.mktemp("compressed_ckpt")
    contract = yaml.safe_load(COMPRESSED_CONTRACT.read_text())
    for cam in contract["cameras"]:
        cam["height"] = cam["width"] = 32
    (root / "contract.yaml").write_text(yaml.safe_dump(contract))
    assert vla_eqm(["dataset", "build", str(recorded), "--out", str(root / "cache"),
                    "--contract", str(root / "contract.yaml"), "--no-progress"]) == 0
    config = Path(__file__).resolve().parents[2] / "vla_eqm_train" / "config" / "debug.yaml"
    assert vla_eqm(["train", "--config", str(config), "--dataset", str(root / "cache"),
                    "--out", str(root / "ckpt"), "--run-dir", str(root / "run"), "--steps", "2",
                    "--no-progress"]) == 0
    return root / "ckpt"


def test_eval_sim_serves_a_compressed_checkpoint_and_scores_it_as_the_mt50_table(
        compressed_checkpoint, tmp_path):
    report_path, table = tmp_path / "eval.json", tmp_path / "mt50.md"
    assert vla_eqm(["eval-sim", "--checkpoint", str(compressed_checkpoint), "--tasks", *TASKS,
                    "--episodes", "1", "--workers", "2", "--max-steps", "3", "--k-max", "2",
                    "--json", str(report_path), "--markdown", str(table), "--name", "tiny",
                    "--no-progress"]) == 0
    report = json.loads(report_path.read_text())
    assert report["episodes_run"] == 2 and report["workers"] == 2
    assert all(not e["error"] and e["steps"] == 3 and e["decode_errors"] == 0
               for e in report["episodes"])  # JPEG frames decoded: the bridge sent compressed
    assert set(report["per_task"]) == set(TASKS)
    assert set(report["group_success"]) == {"easy"} and not report["groups_complete"]
    assert report["group_mean"] == report["group_success"]["easy"]
    assert report["step_limit"] == 3 and report["variation_seed"] == 1000
    assert report["episodes_per_task"] == 1
    assert report["checkpoint"] == str(compressed_checkpoint)
    text = table.read_text()
    assert "| SmolVLA | 87.1 | 51.8 | 70.0 | 64.0 | 68.2 |" in text and "| tiny |" in text


def test_the_demo_runs_a_compressed_checkpoint_on_a_suite_task(compressed_checkpoint, tmp_path):
    assert vla_eqm(["demo", "--checkpoint", str(compressed_checkpoint), "--tasks", TASKS[0],
                    "--max-steps", "4", "--out", str(tmp_path / "demo"),
                    "--json", str(tmp_path / "demo.json"), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "demo.json").read_text())
    assert summary["episodes"] == 1 and summary["holds"] == 0 and summary["dropped_cycles"] == 0
    # the run bag holds the camera as the policy read it: JPEG, drawn into the GIF
    assert summary["artifacts"]["gif"] and (tmp_path / "demo" / "camera.gif").stat().st_size
