"""LeRobotDataset v3.0 interop: the published layout, an exact round trip of everything but the
pixels, pixels within the codec's error, foreign datasets, named errors, and the CLI."""

from __future__ import annotations

import json
import shutil

import av
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from bag_factory import CONTRACT

from vla_eqm_ros.contract import Contract
from vla_eqm_train.cli import main as vla_eqm
from vla_eqm_train.data.bags import Episode
from vla_eqm_train.data.dataset import ChunkDataset, write_cache
from vla_eqm_train.data.lerobot import LeRobotError, export_lerobot, import_lerobot
from vla_eqm_train.data.lerobot import export as lerobot_export
from vla_eqm_train.data.lerobot.video import _VideoReader
from vla_eqm_train.training.config import TrainConfig
from vla_eqm_train.training.trainer import Trainer

LENGTHS = (20, 13, 27)
# Two cameras: a square one and an odd-sized one (AV1 codes odd sizes in 4:2:0; x264 cannot).
CAMERAS = {"corner": (32, 32), "wrist": (23, 31)}
# Round-trip pixel tolerance, in 0..255 units, at LeRobot's encoder settings (AV1, crf 30,
# 4:2:0 chroma). Measured on these frames: mean abs error 2.4 (corner) / 1.6 (wrist), max 27 / 23
# (the max sits on the blob's coloured edge, where 4:2:0 shares one chroma sample between four
# pixels); 96 px frames of the same kind give mean 1.6, max 40. The bounds leave ~1.7x headroom on
# the mean and >1.5x on the max, and still catch real faults: the neighbouring frame (an
# off-by-one in the timestamps) gives a mean of ~8.3 and swapped channels ~40 (both checked
# below); decoding with the wrong colour matrix (BT.709 for BT.601) gives 4.6.
MEAN_TOL = 4.0
MAX_TOL = 64


def _frames(t: int, h: int, w: int, seed: int) -> np.ndarray:
    """Smooth, moving, colourful frames: gradients plus a drifting blob (codec-realistic, and
    every frame differs from its neighbours, so a shifted frame is caught)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for k in range(t):
        cx, cy = w * (0.3 + 0.4 * np.sin(0.35 * k + seed)), h * (0.5 + 0.3 * np.cos(0.3 * k))
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (w / 6) ** 2))
        rgb = np.stack([40 + 150 * xx / w + 60 * blob, 30 + 120 * yy / h + 90 * blob,
                        90 + 60 * np.sin(xx / w * 3 + 0.2 * k + seed) + 70 * blob], -1)
        out.append(np.clip(rgb, 0, 255).astype(np.uint8))
    return np.stack(out)


def _contract() -> Contract:
    d = dict(CONTRACT)
    d["cameras"] = [{"name": n, "topic": f"/camera/{n}/image_raw", "height": h, "width": w}
                    for n, (h, w) in CAMERAS.items()]
    return Contract.from_dict(d)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A cache of 3 episodes (2 instructions), its export and the re-import, made once."""
    root = tmp_path_factory.mktemp("lerobot")
    rng = np.random.default_rng(0)
    eps = [Episode(bag=f"bag{i}", goal=f"goal {i % 2}", skipped_ticks=i,
                   images={n: _frames(t, h, w, i + j) for j, (n, (h, w)) in
                           enumerate(CAMERAS.items())},
                   state=rng.normal(size=(t, 5)).astype(np.float32),
                   actions=rng.normal(size=(t, 4)).astype(np.float32),
                   info={"task": f"task{i}", "variation": i, "seed": 7, "success": True})
           for i, t in enumerate(LENGTHS)]
    meta = write_cache(root / "cache", eps, _contract(), val_fraction=0.34, seed=1)
    summary = export_lerobot(root / "cache", root / "lr", progress=False)
    imported = import_lerobot(root / "lr", root / "back", progress=False)
    return root, meta, summary, imported


def _info(root):
    return json.loads((root / "meta" / "info.json").read_text())


def _decode(path):
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = [(f.time, f.to_ndarray(format="rgb24")) for f in c.decode(stream)]
        return stream.codec_context.codec.canonical_name, frames


def test_the_export_has_the_v3_layout_info_and_parquet_columns(built):
    root, meta, summary, _ = built
    lr = root / "lr"
    info = _info(lr)
    n, e = sum(LENGTHS), len(LENGTHS)
    assert info["codebase_version"] == "v3.0" and info["fps"] == 80  # 1 / 12.5 ms
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (e, n, 2)
    assert info["chunks_size"] == 1000 and info["data_files_size_in_mb"] == 100
    assert info["video_files_size_in_mb"] == 200 and info["splits"] == {"train": "0:3"}
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == \
        "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    f = info["features"]
    assert f["observation.state"] == {"dtype": "float32", "shape": [5],
                                      "names": _contract().state_labels}
    assert f["action"] == {"dtype": "float32", "shape": [4],
                           "names": ["dx", "dy", "dz", "gripper"]}
    for key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert f[key]["shape"] == [1] and f[key]["names"] is None
    for cam, (h, w) in CAMERAS.items():
        ft = f[f"observation.images.{cam}"]
        assert ft["dtype"] == "video" and ft["shape"] == [h, w, 3]
        assert ft["names"] == ["height", "width", "channels"]
        assert ft["info"]["video.codec"] == "av1" and ft["info"]["video.pix_fmt"] == "yuv420p"
        assert (ft["info"]["video.height"], ft["info"]["video.width"]) == (h, w)
    extra = info["vla_eqm"]
    assert extra["contract"] == _contract().to_dict() and extra["split"] == meta["split"]
    assert extra["cache_hash"] == meta["hash"] and extra["episodes"][1]["task"] == "task1"

    data = pq.read_table(lr / "data" / "chunk-000" / "file-000.parquet")
    assert data.column_names == ["observation.state", "action", "timestamp", "frame_index",
                                 "episode_index", "index", "task_index"]
    assert data.schema.field("action").type == pa.list_(pa.float32(), 4)
    assert data.column("index").to_pylist() == list(range(n))
    assert data.column("timestamp").to_pylist()[:2] == [0.0, np.float32(1 / 80)]
    eps = pq.read_table(lr / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    for col in ("episode_index", "tasks", "length", "data/chunk_index", "data/file_index",
                "dataset_from_index", "dataset_to_index",
                "videos/observation.images.wrist/chunk_index",
                "videos/observation.images.wrist/file_index",
                "videos/observation.images.wrist/from_timestamp",
                "videos/observation.images.wrist/to_timestamp",
                "stats/action/mean", "stats/observation.images.corner/std"):
        assert col in eps.column_names, col
    rows = eps.to_pylist()
    assert [r["length"] for r in rows] == list(LENGTHS)
    assert [r["tasks"] for r in rows] == [["goal 0"], ["goal 1"], ["goal 0"]]
    assert [r["dataset_from_index"] for r in rows] == [0, 20, 33]
    assert rows[1]["videos/observation.images.corner/from_timestamp"] == 20 / 80
    tasks = pq.read_table(lr / "meta" / "tasks.parquet")
    assert tasks.to_pydict() == {"task_index": [0, 1], "task": ["goal 0", "goal 1"]}
    pandas_meta = json.loads(tasks.schema.metadata[b"pandas"])
    assert pandas_meta["index_columns"] == ["task"]  # pd.read_parquet: index "task", as LeRobot
    stats = json.loads((lr / "meta" / "stats.json").read_text())
    assert np.asarray(stats["observation.images.corner"]["mean"]).shape == (3, 1, 1)
    assert stats["action"]["count"] == [n] and len(stats["action"]["q99"]) == 4
    assert summary["video"] == {"observation.images.corner": "libsvtav1",
                                "observation.images.wrist": "libsvtav1"}


def test_each_camera_is_one_decodable_mp4_with_every_frame_at_k_over_fps(built):
    root = built[0]
    for cam, (h, w) in CAMERAS.items():
        path = root / "lr" / "videos" / f"observation.images.{cam}" / "chunk-000" / "file-000.mp4"
        codec, frames = _decode(path)
        assert codec == "av1" and len(frames) == sum(LENGTHS)
        assert frames[0][1].shape == (h, w, 3)
        np.testing.assert_allclose([t for t, _ in frames], np.arange(sum(LENGTHS)) / 80,
                                   atol=1e-6)


def test_the_round_trip_keeps_state_actions_episodes_instructions_and_split_exactly(built):
    root, meta, _, back = built
    a, b = ChunkDataset(root / "cache", 1), ChunkDataset(root / "back", 1)
    assert np.array_equal(a.actions, b.actions) and np.array_equal(a.state, b.state)
    assert np.array_equal(a.episode_index, b.episode_index)
    assert np.array_equal(a.frame_index, b.frame_index)
    assert back["episodes"] == meta["episodes"]  # start, length, goal, bag, task, seed, ...
    assert back["instructions"] == meta["instructions"] and back["split"] == meta["split"]
    assert back["contract"] == meta["contract"] and back["contract_origin"] == "stored"
    assert back["stats"]["action"] == meta["stats"]["action"]  # same (train) episodes


def test_frames_come_back_within_the_codec_tolerance(built):
    root = built[0]
    a, b = ChunkDataset(root / "cache", 1), ChunkDataset(root / "back", 1)
    for cam in CAMERAS:
        orig = np.asarray(a.images[cam]).astype(np.int16)
        got = np.asarray(b.images[cam]).astype(np.int16)
        err = np.abs(got - orig)
        assert err.mean() <= MEAN_TOL and err.max() <= MAX_TOL, (cam, err.mean(), err.max())
        # the bound is meaningful: the neighbouring frame or a channel swap would fail it
        assert np.abs(got[1:] - orig[:-1]).mean() > MEAN_TOL
        assert np.abs(got[..., ::-1] - orig).mean() > MEAN_TOL


def test_the_imported_cache_trains(built, tmp_path):
    root = built[0]
    cfg = TrainConfig(dataset=str(root / "back"), out=str(tmp_path / "ckpt"),
                      run_dir=str(tmp_path / "run"), preset="debug", steps=2, batch_size=4,
                      repeats=1, warmup_steps=1, val_every=2, val_batches=1, ckpt_every=2,
                      threads=1, device="cpu")
    trainer = Trainer(cfg, progress=False)
    trainer.fit()
    assert len(trainer.history["train_loss"]) == 2
    assert (tmp_path / "ckpt" / "model.safetensors").is_file()


def _foreign(built, tmp_path):
    """Our export made anonymous: no vla_eqm key, LeRobot's own split ranges."""
    src = tmp_path / "foreign"
    shutil.copytree(built[0] / "lr", src)
    info = _info(src)
    del info["vla_eqm"]
    info["splits"] = {"train": "0:2", "val": "2:3"}
    (src / "meta" / "info.json").write_text(json.dumps(info))
    return src


def test_a_foreign_dataset_gets_a_contract_built_from_its_features(built, tmp_path):
    root, meta = built[0], built[1]
    back = import_lerobot(_foreign(built, tmp_path), tmp_path / "cache", progress=False)
    c = Contract.from_dict(back["contract"])
    assert back["contract_origin"] == "built from the features"
    assert {x.name: (x.height, x.width) for x in c.cameras} == CAMERAS
    assert list(c.action.names) == ["dx", "dy", "dz", "gripper"]
    assert c.state_dim == 5 and c.control_period == pytest.approx(1 / 80)
    actions = np.asarray(ChunkDataset(root / "cache", 1).actions)
    assert np.all(actions >= np.array(c.action.low)) and np.all(actions <= np.array(c.action.high))
    assert back["split"] == {"train": [0, 1], "val": [2]}  # from LeRobot's "splits"
    assert [e["goal"] for e in back["episodes"]] == [e["goal"] for e in meta["episodes"]]
    assert np.array_equal(ChunkDataset(tmp_path / "cache", 1).actions, actions)


def test_a_dataset_spread_over_several_files_imports_the_same(built, tmp_path):
    """LeRobot rolls data, episode and video files over at a size limit; episode 2 is moved to
    file-001 of each kind (its video file is a copy, so its from_timestamp stays valid)."""
    src = _foreign(built, tmp_path)
    data = src / "data" / "chunk-000"
    table = pq.read_table(data / "file-000.parquet")
    last = pc.equal(table.column("episode_index"), 2)
    pq.write_table(table.filter(pc.invert(last)), data / "file-000.parquet")
    pq.write_table(table.filter(last), data / "file-001.parquet")
    meta = src / "meta" / "episodes" / "chunk-000"
    eps = pq.read_table(meta / "file-000.parquet")
    for col in ("data/file_index", "videos/observation.images.wrist/file_index"):
        eps = eps.set_column(eps.column_names.index(col), col, pa.array([0, 0, 1]))
    pq.write_table(eps.slice(0, 2), meta / "file-000.parquet")
    pq.write_table(eps.slice(2), meta / "file-001.parquet")
    video = src / "videos" / "observation.images.wrist" / "chunk-000"
    shutil.copy(video / "file-000.mp4", video / "file-001.mp4")
    import_lerobot(src, tmp_path / "cache", progress=False)
    a, b = ChunkDataset(built[0] / "back", 1), ChunkDataset(tmp_path / "cache", 1)
    assert np.array_equal(a.actions, b.actions)
    for cam in CAMERAS:
        assert np.array_equal(a.images[cam], b.images[cam])  # the same decoded frames


def test_the_video_reader_seeks_back_for_an_earlier_time(built):
    path = built[0] / "lr" / "videos" / "observation.images.corner" / "chunk-000" / "file-000.mp4"
    _, frames = _decode(path)
    reader = _VideoReader(path, 80, CAMERAS["corner"])
    try:
        later = reader.read(np.array([50, 51]) / 80)
        earlier = reader.read(np.array([3, 4, 4]) / 80)  # before the last one: seek back
    finally:
        reader.close()
    assert np.array_equal(later, np.stack([frames[50][1], frames[51][1]]))
    assert np.array_equal(earlier, np.stack([frames[3][1], frames[4][1], frames[4][1]]))


def test_a_camera_subset_can_be_imported(built, tmp_path):
    back = import_lerobot(built[0] / "lr", tmp_path / "cache", cameras=["wrist"], progress=False)
    assert [c["name"] for c in back["contract"]["cameras"]] == ["wrist"]
    assert not (tmp_path / "cache" / "images_corner.npy").exists()
    with pytest.raises(LeRobotError, match="no camera"):
        import_lerobot(built[0] / "lr", tmp_path / "x", cameras=["top"], progress=False)


def test_a_hand_written_dataset_with_embedded_png_images_and_dict_names_imports(tmp_path):
    """Someone else's layout: an ``image`` feature (PNG bytes in the data parquet), CHW shape,
    v2-style ``{"motors": [...]}`` names, a state whose names do not name its dimensions, no
    stats.json, the tasks index as a plain column, variable-length list columns."""
    from PIL import Image

    src = tmp_path / "other"
    (src / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    (src / "data" / "chunk-000").mkdir(parents=True)
    imgs = _frames(7, 6, 10, 3)

    def png(a):
        buf = __import__("io").BytesIO()
        Image.fromarray(a).save(buf, format="PNG")
        return buf.getvalue()

    act = np.arange(14, dtype=np.float32).reshape(7, 2) / 7
    pq.write_table(pa.table({
        "observation.images.top": pa.array([{"bytes": png(x), "path": None} for x in imgs]),
        "observation.state": pa.array((-act).tolist(), pa.list_(pa.float32())),
        "action": pa.array(act.tolist(), pa.list_(pa.float32())),
        "timestamp": pa.array(np.arange(7) % 4 / 10, pa.float32()),
        "frame_index": pa.array([0, 1, 2, 3, 0, 1, 2]),
        "episode_index": pa.array([0, 0, 0, 0, 1, 1, 1]),
        "index": pa.array(range(7)), "task_index": pa.array([1, 1, 1, 1, 0, 0, 0])}),
        src / "data" / "chunk-000" / "file-000.parquet")
    pq.write_table(pa.table({"episode_index": [0, 1], "length": [4, 3],
                             "dataset_from_index": [0, 4], "dataset_to_index": [4, 7],
                             "data/chunk_index": [0, 0], "data/file_index": [0, 0]}),
                   src / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    pq.write_table(pa.table({"task_index": [0, 1], "__index_level_0__": ["open", "close"]}),
                   src / "meta" / "tasks.parquet")
    (src / "meta" / "info.json").write_text(json.dumps({
        "codebase_version": "v3.0", "fps": 10, "total_episodes": 2, "data_path":
        "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet", "video_path": None,
        "features": {"observation.images.top": {"dtype": "image", "shape": [3, 6, 10],
                                                "names": ["channels", "height", "width"]},
                     "observation.state": {"dtype": "float32", "shape": [2],
                                           "names": ["motors"]},
                     "action": {"dtype": "float32", "shape": [2],
                                "names": {"motors": ["shoulder", "elbow"]}}}}))
    back = import_lerobot(src, tmp_path / "cache", progress=False)
    data = ChunkDataset(tmp_path / "cache", 1)
    assert np.array_equal(data.images["top"], imgs)  # PNG is lossless
    assert np.array_equal(data.actions, act) and np.array_equal(data.state, -act)
    assert list(data.contract.action.names) == ["shoulder", "elbow"]
    assert data.contract.state_labels == ["state_0.position", "state_1.position"]
    assert data.contract.control_period == pytest.approx(0.1)
    info = json.loads((src / "meta" / "info.json").read_text())
    del info["features"]["observation.state"]
    (src / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(LeRobotError, match="no 'observation.state' feature"):
        import_lerobot(src, tmp_path / "x", progress=False)
    assert [e["goal"] for e in back["episodes"]] == ["close", "open"]
    assert [e["length"] for e in back["episodes"]] == [4, 3]


# --- errors: the file and the problem are named, nothing is left behind ---


def test_a_directory_without_info_json_is_refused_by_name(tmp_path):
    with pytest.raises(LeRobotError, match=r"meta/info\.json: missing"):
        import_lerobot(tmp_path, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_another_codebase_version_is_refused(built, tmp_path):
    src = _foreign(built, tmp_path)
    info = _info(src)
    info["codebase_version"] = "v2.1"
    (src / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(LeRobotError, match=r"info\.json: codebase_version 'v2.1'"):
        import_lerobot(src, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_missing_video_file_is_named(built, tmp_path):
    src = _foreign(built, tmp_path)
    shutil.rmtree(src / "videos" / "observation.images.wrist")
    with pytest.raises(LeRobotError, match=r"observation\.images\.wrist/chunk-000/file-000\.mp4: "
                                           "missing video file"):
        import_lerobot(src, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_video_whose_size_differs_from_its_feature_is_refused(built, tmp_path):
    src = _foreign(built, tmp_path)
    info = _info(src)
    info["features"]["observation.images.corner"]["info"]["video.height"] = 64
    (src / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(LeRobotError, match=r"file-000\.mp4: video frames are 32x32, the "
                                           "dataset's feature says 64x32"):
        import_lerobot(src, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_video_shorter_than_its_episodes_fails_mid_import_and_removes_the_cache(built,
                                                                                   tmp_path):
    src = _foreign(built, tmp_path)
    path = src / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    eps = pq.read_table(path)
    key = "videos/observation.images.corner/from_timestamp"
    shifted = pa.array([t + 1.0 for t in eps.column(key).to_pylist()])  # 80 frames too late
    pq.write_table(eps.set_column(eps.column_names.index(key), key, shifted), path)
    with pytest.raises(LeRobotError, match=r"file-000\.mp4: no frame at 1\.0000 s"):
        import_lerobot(src, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_an_export_that_fails_half_way_leaves_nothing(built, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(lerobot_export, "_encode_video", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        export_lerobot(built[0] / "cache", tmp_path / "lr", progress=False)
    assert not (tmp_path / "lr").exists()


# --- the CLI ---


def test_the_cli_exports_and_imports_and_guards_existing_outputs(built, tmp_path, capsys):
    cache = built[0] / "cache"
    args = ["dataset", "export-lerobot", str(cache), "--out", str(tmp_path / "lr"),
            "--no-progress"]
    assert vla_eqm(args) == 0
    assert _info(tmp_path / "lr")["total_frames"] == sum(LENGTHS)
    assert vla_eqm(args) == 2 and "--overwrite" in capsys.readouterr().err
    assert vla_eqm([*args, "--overwrite", "--crf", "20"]) == 0
    imp = ["dataset", "import-lerobot", str(tmp_path / "lr"), "--out", str(tmp_path / "cache"),
           "--no-progress", "--json"]
    assert vla_eqm(imp) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["episodes"] == 3 and summary["frames"] == sum(LENGTHS)
    assert summary["contract"] == "stored"
    assert vla_eqm(imp) == 2


def test_the_cli_reports_a_bad_dataset_with_exit_code_1_and_no_output(tmp_path, capsys):
    rc = vla_eqm(["dataset", "import-lerobot", str(tmp_path), "--out", str(tmp_path / "cache"),
                  "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("error: ") and "meta/info.json: missing" in err
    assert not (tmp_path / "cache").exists()
    rc = vla_eqm(["dataset", "export-lerobot", str(tmp_path / "nope"), "--out",
                  str(tmp_path / "lr"), "--no-progress"])
    assert rc == 1 and "error: " in capsys.readouterr().err and not (tmp_path / "lr").exists()
