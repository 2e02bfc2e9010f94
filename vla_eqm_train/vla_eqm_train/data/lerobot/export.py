"""``export_lerobot``: a training cache -> a LeRobotDataset v3.0 directory.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from vla_eqm_train.data.dataset import META, ChunkDataset
from vla_eqm_train.data.lerobot.layout import (
    ACTION_KEY,
    CHUNKS_SIZE,
    CODEBASE_VERSION,
    DATA_FILES_SIZE_IN_MB,
    DATA_PATH,
    DEFAULT_KEYS,
    EPISODES_PATH,
    EXTRA_FORMAT,
    EXTRA_KEY,
    IMAGE_PREFIX,
    INFO_PATH,
    STATE_KEY,
    STATS_PATH,
    VIDEO_FILES_SIZE_IN_MB,
    VIDEO_PATH,
    LeRobotError,
    _bar,
    _check_empty_out,
    _image_stats,
    _integral_fps,
    _numeric_stats,
    _sample_rows,
    _vector_column,
    _write_tasks,
)
from vla_eqm_train.data.lerobot.video import (
    _encode_video,
    _video_info,
)


def export_lerobot(cache_dir: Path | str, out_dir: Path | str, *, fps: int | None = None,
                   crf: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Write a cache as a LeRobotDataset v3.0 directory; returns a summary.

    ``fps`` defaults to 1 / the contract's control period (frames are control ticks). ``crf``
    overrides the encoder's quality (LeRobot's default 30; lower is closer to the cache). On any
    error the partly written ``out_dir`` is removed.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    t0 = time.monotonic()
    cache_dir, out = Path(cache_dir), Path(out_dir)
    data = ChunkDataset(cache_dir, horizon=1)  # validates meta.json and opens the memmaps
    meta, contract = data.meta, data.contract
    if fps is None:
        fps_i = _integral_fps(1.0 / contract.control_period,
                              f"{cache_dir}: control period {contract.control_period} s")
    else:
        fps_i = _integral_fps(float(fps), "fps")
    _check_empty_out(out)
    try:
        episodes = meta["episodes"]
        n = int(meta["frames"])
        lengths = np.array([e["length"] for e in episodes], dtype=np.int64)
        starts = np.array([e["start"] for e in episodes], dtype=np.int64)
        if lengths.sum() != n or np.any(starts != np.concatenate(([0], np.cumsum(lengths)[:-1]))):
            raise LeRobotError(f"{cache_dir / META}: episode starts and lengths do not tile the "
                               f"{n} frames")
        tasks: list[str] = []
        for e in episodes:  # task_index in order of first appearance, like LeRobot's recorder
            if e["goal"] not in tasks:
                tasks.append(e["goal"])
        ep_index = np.repeat(np.arange(len(episodes), dtype=np.int64), lengths)
        frame_index = np.asarray(data.frame_index, dtype=np.int64)
        task_index = np.repeat(np.array([tasks.index(e["goal"]) for e in episodes], np.int64),
                               lengths)
        columns: dict[str, Any] = {}
        state = np.asarray(data.state, dtype=np.float32)
        actions = np.asarray(data.actions, dtype=np.float32)
        if contract.state_dim:
            columns[STATE_KEY] = state
        columns[ACTION_KEY] = actions
        columns["timestamp"] = (frame_index / fps_i).astype(np.float32)
        columns["frame_index"] = frame_index
        columns["episode_index"] = ep_index
        columns["index"] = np.arange(n, dtype=np.int64)
        columns["task_index"] = task_index

        features: dict[str, Any] = {}
        if contract.state_dim:
            features[STATE_KEY] = {"dtype": "float32", "shape": [contract.state_dim],
                                   "names": list(contract.state_labels)}
        features[ACTION_KEY] = {"dtype": "float32", "shape": [contract.action_dim],
                                "names": list(contract.action.names)}
        for cam in contract.cameras:
            features[IMAGE_PREFIX + cam.name] = {
                "dtype": "video", "shape": [cam.height, cam.width, 3],
                "names": ["height", "width", "channels"]}
        features["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
        for key in DEFAULT_KEYS[1:]:
            features[key] = {"dtype": "int64", "shape": [1], "names": None}

        # data/: one row group per episode (random access per episode, as LeRobot writes it)
        arrays = [_vector_column(v) if v.ndim == 2 else pa.array(v) for v in columns.values()]
        table = pa.Table.from_arrays(arrays, names=list(columns))
        data_path = out / DATA_PATH.format(chunk_index=0, file_index=0)
        data_path.parent.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(str(data_path), table.schema, compression="snappy") as writer:
            for s, ln in zip(starts, lengths, strict=True):
                writer.write_table(table.slice(int(s), int(ln)))

        # videos/: every episode of a camera, concatenated, frame k at k / fps
        rows = np.arange(n, dtype=np.int64)
        encodings: dict[str, dict[str, Any]] = {}
        for cam in contract.camera_names:
            key = IMAGE_PREFIX + cam
            path = out / VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=0)
            with _bar(n, f"encode {cam}", "frame", progress) as bar:
                encodings[key] = _encode_video(path, data.images[cam], rows, fps_i, crf, bar)
            features[key]["info"] = _video_info(path, fps_i, encodings[key])

        # statistics: whole dataset (LeRobot's meaning) and per episode (stats/<key>/<stat>)
        ep_rows: list[dict[str, Any]] = []
        samples: dict[str, list[np.ndarray]] = {IMAGE_PREFIX + c: [] for c in
                                                contract.camera_names}
        for e, (s, ln) in enumerate(zip(starts, lengths, strict=True)):
            s, ln = int(s), int(ln)
            row: dict[str, Any] = {
                "episode_index": e, "tasks": [episodes[e]["goal"]], "length": ln,
                "data/chunk_index": 0, "data/file_index": 0,
                "dataset_from_index": s, "dataset_to_index": s + ln}
            for cam in contract.camera_names:
                key = IMAGE_PREFIX + cam
                row[f"videos/{key}/chunk_index"] = 0
                row[f"videos/{key}/file_index"] = 0
                row[f"videos/{key}/from_timestamp"] = s / fps_i
                row[f"videos/{key}/to_timestamp"] = (s + ln) / fps_i
            for key, x in columns.items():
                for stat, v in _numeric_stats(x[s:s + ln]).items():
                    row[f"stats/{key}/{stat}"] = v
            for cam in contract.camera_names:
                key = IMAGE_PREFIX + cam
                frames = np.asarray(data.images[cam][s + _sample_rows(ln)])
                samples[key].append(frames)
                for stat, v in _image_stats(frames).items():
                    row[f"stats/{key}/{stat}"] = v
            row["meta/episodes/chunk_index"] = 0
            row["meta/episodes/file_index"] = 0
            ep_rows.append(row)
        stats: dict[str, Any] = {key: _numeric_stats(x) for key, x in columns.items()}
        for key, parts in samples.items():
            stats[key] = _image_stats(np.concatenate(parts))

        episodes_path = out / EPISODES_PATH.format(chunk_index=0, file_index=0)
        episodes_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(ep_rows), str(episodes_path), compression="snappy")
        _write_tasks(out, tasks)
        (out / STATS_PATH).write_text(json.dumps(stats, indent=4) + "\n")

        keep_out = {"bag", "start", "length", "goal"}
        first = next(iter(encodings.values()), None)
        info: dict[str, Any] = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": None,
            "total_episodes": len(episodes),
            "total_frames": n,
            "total_tasks": len(tasks),
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": DATA_FILES_SIZE_IN_MB,
            "video_files_size_in_mb": VIDEO_FILES_SIZE_IN_MB,
            "fps": fps_i,
            "splits": {"train": f"0:{len(episodes)}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if contract.cameras else None,
            "features": features,
            EXTRA_KEY: {
                "format": EXTRA_FORMAT,
                "contract": contract.to_dict(),
                "split": {"train": list(meta["split"]["train"]),
                          "val": list(meta["split"]["val"])},
                "episodes": [{"bag": e.get("bag", ""),
                              **{k: v for k, v in e.items() if k not in keep_out}}
                             for e in episodes],
                "cache_hash": meta["hash"],
                "cache_version": meta["version"],
                "sources": list(meta.get("sources", [])),
                "video": first,
            },
        }
        (out / INFO_PATH).write_text(json.dumps(info, indent=4) + "\n")
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # never leave a half-written dataset behind
        raise
    return {"out": str(out), "episodes": len(episodes), "frames": n, "tasks": len(tasks),
            "fps": fps_i, "cameras": contract.camera_names,
            "video": {k: v["encoder"] for k, v in encodings.items()},
            "seconds": round(time.monotonic() - t0, 2)}
