"""``import_lerobot``: a LeRobotDataset v3.0 directory (ours or anyone's) -> a training cache.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vla_eqm_ros.contract import Contract, ContractError
from vla_eqm_train.data.bags import Episode
from vla_eqm_train.data.dataset import META, cache_meta, write_cache
from vla_eqm_train.data.lerobot.layout import (
    ACTION_KEY,
    CODEBASE_VERSION,
    EPISODES_DIR,
    EXTRA_KEY,
    INFO_PATH,
    STATE_KEY,
    STATS_PATH,
    TASKS_PATH,
    LeRobotError,
    _bar,
    _camera_name,
    _check_empty_out,
    _hw,
    _names_of,
    _parse_ranges,
    _read_json,
    _read_parquet,
    _shape,
)
from vla_eqm_train.data.lerobot.video import (
    _decode_images,
    _VideoReader,
)


def _matrix(column: Any, dim: int, where: str) -> np.ndarray:
    """A list / fixed-size-list Parquet column of float vectors -> (N, dim) float32, exactly."""
    import pyarrow as pa

    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type) \
            or pa.types.is_large_list(col.type):
        if col.null_count:
            raise LeRobotError(f"{where}: {col.null_count} null rows")
        if not pa.types.is_fixed_size_list(col.type):
            lengths = np.diff(np.asarray(col.offsets))
            if len(lengths) and (lengths.min() != dim or lengths.max() != dim):
                raise LeRobotError(f"{where}: rows of length {sorted(set(lengths.tolist()))}, "
                                   f"the feature says {dim}")
        elif col.type.list_size != dim:
            raise LeRobotError(f"{where}: rows of length {col.type.list_size}, the feature "
                               f"says {dim}")
        flat = np.asarray(col.flatten().to_numpy(zero_copy_only=False))
    elif dim == 1:
        flat = np.asarray(col.to_numpy(zero_copy_only=False))
    else:
        raise LeRobotError(f"{where}: column type {col.type} is not a vector of {dim}")
    return flat.astype(np.float32, copy=False).reshape(len(col), dim)


class _Source:
    """A LeRobot v3.0 dataset on disk, validated before anything is written."""

    def __init__(self, root: Path, cameras: list[str] | None) -> None:
        self.root = root
        info_path = root / INFO_PATH
        self.info: dict[str, Any] = _read_json(info_path)
        if not isinstance(self.info, dict):
            raise LeRobotError(f"{info_path}: expected a JSON object")
        version = self.info.get("codebase_version")
        if not (isinstance(version, str) and re.fullmatch(r"v3\.\d+", version)):
            raise LeRobotError(f"{info_path}: codebase_version {version!r} is not supported; "
                               f"this reads {CODEBASE_VERSION} (convert older datasets with "
                               "LeRobot's convert_dataset_v21_to_v30 first)")
        features = self.info.get("features")
        if not isinstance(features, dict):
            raise LeRobotError(f"{info_path}: no 'features' mapping")
        self.features: dict[str, dict[str, Any]] = features
        try:
            self.fps = float(self.info["fps"])
        except (KeyError, TypeError, ValueError):
            raise LeRobotError(f"{info_path}: no valid 'fps' ({self.info.get('fps')!r})") from None
        if not self.fps > 0:
            raise LeRobotError(f"{info_path}: fps must be > 0, got {self.fps}")
        if ACTION_KEY not in features:
            raise LeRobotError(f"{info_path}: no '{ACTION_KEY}' feature (features: "
                               f"{sorted(features)})")
        self.action_dim = self._vector_dim(ACTION_KEY)
        if STATE_KEY not in features:  # the cache stores a (N, state_dim) array, never 0-wide
            raise LeRobotError(f"{info_path}: no '{STATE_KEY}' feature; the training cache "
                               f"needs a state vector (features: {sorted(features)})")
        self.state_dim = self._vector_dim(STATE_KEY)
        visual = {k: ft for k, ft in features.items() if ft.get("dtype") in ("video", "image")}
        self.cameras: dict[str, str] = {}  # camera name -> feature key
        for key in visual:
            name = _camera_name(key)
            while name in self.cameras:
                name += "_"
            self.cameras[name] = key
        if cameras is not None:
            unknown = [c for c in cameras if c not in self.cameras]
            if unknown:
                raise LeRobotError(f"{info_path}: no camera {unknown}; the dataset has "
                                   f"{sorted(self.cameras)}")
            self.cameras = {c: self.cameras[c] for c in cameras}
        self.hw = {c: _hw(features[k], k) for c, k in self.cameras.items()}
        if self.cameras and any(features[k]["dtype"] == "video" for k in self.cameras.values()) \
                and not isinstance(self.info.get("video_path"), str):
            raise LeRobotError(f"{info_path}: video features but no 'video_path' template")
        if not isinstance(self.info.get("data_path"), str):
            raise LeRobotError(f"{info_path}: no 'data_path' template")
        self.extra = self.info.get(EXTRA_KEY) if isinstance(self.info.get(EXTRA_KEY), dict) \
            else None
        self._load_episodes()
        self._load_tasks()
        for c in self.cameras:  # every video file exists and has the feature's size
            key = self.cameras[c]
            if features[key]["dtype"] != "video":
                continue
            for path in sorted({self.video_file(e, key) for e in range(len(self.episodes))}):
                _VideoReader(path, self.fps, self.hw[c]).close()

    def _vector_dim(self, key: str) -> int:
        shape = _shape(self.features[key], key)
        if len(shape) != 1 or shape[0] < 1:
            raise LeRobotError(f"{INFO_PATH}: feature {key!r} must be a vector, shape "
                               f"{list(shape)}")
        return shape[0]

    def _load_episodes(self) -> None:
        import pyarrow as pa

        files = sorted((self.root / EPISODES_DIR).glob("*/*.parquet"))
        if not files:
            raise LeRobotError(f"{self.root / EPISODES_DIR}: no episode metadata "
                               "(chunk-*/file-*.parquet)")
        need = ["episode_index", "length", "dataset_from_index", "dataset_to_index",
                "data/chunk_index", "data/file_index"]
        for key in self.cameras.values():
            if self.features[key]["dtype"] == "video":
                need += [f"videos/{key}/chunk_index", f"videos/{key}/file_index",
                         f"videos/{key}/from_timestamp"]
        cols = need + ["tasks"]
        tables = []
        for f in files:
            t = _read_parquet(f, need)
            tables.append(t.select([c for c in cols if c in t.column_names]))
        table = pa.concat_tables(tables, promote_options="default")
        rows = sorted(table.to_pylist(), key=lambda r: r["episode_index"])
        if [r["episode_index"] for r in rows] != list(range(len(rows))):
            raise LeRobotError(f"{self.root / EPISODES_DIR}: episode_index is not 0..{len(rows)-1}")
        self.episodes: list[dict[str, Any]] = rows
        total = self.info.get("total_episodes")
        if isinstance(total, int) and total != len(rows):
            raise LeRobotError(f"{self.root / INFO_PATH}: total_episodes {total} but "
                               f"{self.root / EPISODES_DIR} lists {len(rows)} episodes")

    def _load_tasks(self) -> None:
        import pyarrow as pa

        table = _read_parquet(self.root / TASKS_PATH, ["task_index"])
        text = next((c for c in ("task", "__index_level_0__") if c in table.column_names), None)
        if text is None:
            text = next((f.name for f in table.schema if pa.types.is_string(f.type)
                         or pa.types.is_large_string(f.type)), None)
        if text is None:
            raise LeRobotError(f"{self.root / TASKS_PATH}: no task string column")
        self.tasks = {int(i): str(s) for i, s in zip(table.column("task_index").to_pylist(),
                                                       table.column(text).to_pylist(),
                                                       strict=True)}

    def data_file(self, e: int) -> Path:
        ep = self.episodes[e]
        return self.root / self.info["data_path"].format(chunk_index=ep["data/chunk_index"],
                                                         file_index=ep["data/file_index"])

    def video_file(self, e: int, key: str) -> Path:
        ep = self.episodes[e]
        return self.root / self.info["video_path"].format(
            video_key=key, chunk_index=ep[f"videos/{key}/chunk_index"],
            file_index=ep[f"videos/{key}/file_index"])

    def action_range(self) -> tuple[np.ndarray, np.ndarray]:
        """min/max of every action dimension: meta/stats.json, else read from the data."""
        stats_path = self.root / STATS_PATH
        if stats_path.is_file():
            try:
                a = json.loads(stats_path.read_text())[ACTION_KEY]
                lo = np.asarray(a["min"], np.float64).reshape(-1)
                hi = np.asarray(a["max"], np.float64).reshape(-1)
                if lo.shape == hi.shape == (self.action_dim,) and np.all(np.isfinite(lo)) \
                        and np.all(np.isfinite(hi)):
                    return lo, hi
            except (ValueError, KeyError, TypeError):
                pass  # stale or partial statistics: read the data instead
        lo = np.full(self.action_dim, np.inf)
        hi = np.full(self.action_dim, -np.inf)
        for path in sorted({self.data_file(e) for e in range(len(self.episodes))}):
            a = _matrix(_read_parquet(path, [ACTION_KEY]).column(ACTION_KEY), self.action_dim,
                        f"{path}: column {ACTION_KEY}")
            if len(a):
                lo, hi = np.minimum(lo, a.min(0)), np.maximum(hi, a.max(0))
        return lo, hi

    def contract(self) -> tuple[Contract, str]:
        """Our stored contract (restricted to the chosen cameras), else one built from the
        features; the second value says which."""
        if self.extra is not None and isinstance(self.extra.get("contract"), dict):
            d = dict(self.extra["contract"])
            d["cameras"] = [c for c in d.get("cameras") or [] if c.get("name") in self.cameras]
            origin, where = "stored", f"{EXTRA_KEY}.contract"
        else:
            lo, hi = self.action_range()
            margin = np.maximum(0.5 * (hi - lo), 1e-3)
            action_names = _names_of(self.features[ACTION_KEY], self.action_dim, "action")
            state_names = _names_of(self.features[STATE_KEY], self.state_dim, "state")
            d = {
                "cameras": [{"name": c, "topic": f"/camera/{c}/image_raw", "height": h,
                             "width": w} for c, (h, w) in self.hw.items()],
                "state": [{"topic": "/joint_states", "type": "joint_state",
                           "names": state_names}],
                "action": {"names": action_names, "topic": "/command",
                           "type": "float64_multi_array", "kind": "joint",
                           "low": (lo - margin).tolist(), "high": (hi + margin).tolist(),
                           "hold": [None] * self.action_dim},
                "control_period": 1.0 / self.fps,
            }
            origin, where = "built from the features", "cannot build a contract from the features"
        try:
            contract = Contract.from_dict(d)
        except ContractError as exc:
            raise LeRobotError(f"{self.root / INFO_PATH}: {where}: {exc}") from exc
        got = {c.name: (c.height, c.width) for c in contract.cameras}
        if got != self.hw:
            raise LeRobotError(f"{self.root / INFO_PATH}: the stored contract's cameras {got} "
                               f"do not match the video features {self.hw}")
        if (contract.state_dim, contract.action_dim) != (self.state_dim, self.action_dim):
            raise LeRobotError(f"{self.root / INFO_PATH}: the stored contract has state/action "
                               f"dims {contract.state_dim}/{contract.action_dim}, the features "
                               f"{self.state_dim}/{self.action_dim}")
        return contract, origin

    def split(self) -> tuple[list[int], list[int]] | None:
        """The train/val split the dataset carries: ours exactly, else LeRobot ranges."""
        n = len(self.episodes)
        if self.extra is not None and isinstance(self.extra.get("split"), dict):
            s = self.extra["split"]
            train, val = _parse_ranges(s.get("train"), n), _parse_ranges(s.get("val"), n)
            if train is not None and val is not None and sorted(train + val) == list(range(n)):
                return train, val
        splits = self.info.get("splits") or {}
        if not isinstance(splits, dict):
            return None
        val = next((_parse_ranges(splits[k], n) for k in ("val", "validation", "test")
                    if k in splits), None)
        if not val:
            return None
        return [i for i in range(n) if i not in set(val)], val

    def _data_table(self, path: Path) -> tuple[Any, dict[int, tuple[int, int]]]:
        """One data file, sorted by (episode_index, frame_index), and each episode's row range
        in it (one pass, whatever the number of episodes per file)."""
        need = [STATE_KEY, ACTION_KEY, "episode_index", "frame_index", "timestamp",
                "task_index"]
        need += [k for k in self.cameras.values() if self.features[k]["dtype"] == "image"]
        table = _read_parquet(path, need)
        table = table.select(need)
        ep = np.asarray(table.column("episode_index").to_numpy(), np.int64)
        fi = np.asarray(table.column("frame_index").to_numpy(), np.int64)
        order = np.lexsort((fi, ep))
        if np.any(order != np.arange(len(order))):
            table, ep = table.take(order), ep[order]
        ids, first = np.unique(ep, return_index=True)
        last = np.append(first[1:], len(ep))
        return table, {int(i): (int(a), int(b)) for i, a, b in zip(ids, first, last, strict=True)}

    def episodes_iter(self, progress: bool) -> Iterator[Episode]:
        """Decode every episode (state, action, frames) in episode order."""
        stored = (self.extra or {}).get("episodes")
        stored = stored if isinstance(stored, list) and len(stored) == len(self.episodes) \
            else None
        readers: dict[str, _VideoReader] = {}
        table_path: Path | None = None
        table: Any = None
        bounds: dict[int, tuple[int, int]] = {}
        try:
            with _bar(len(self.episodes), "import", "episode", progress) as bar:
                for e, ep in enumerate(self.episodes):
                    path = self.data_file(e)
                    if path != table_path:
                        table, bounds = self._data_table(path)
                        table_path = path
                    lo, hi = bounds.get(e, (0, 0))
                    rows = table.slice(lo, hi - lo)
                    length = int(ep["length"])
                    if rows.num_rows != length:
                        raise LeRobotError(f"{path}: episode {e} has {rows.num_rows} rows, "
                                           f"{EPISODES_DIR} says length {length}")
                    actions = _matrix(rows.column(ACTION_KEY), self.action_dim,
                                      f"{path}: column {ACTION_KEY}")
                    state = _matrix(rows.column(STATE_KEY), self.state_dim,
                                    f"{path}: column {STATE_KEY}")
                    ts = np.asarray(rows.column("timestamp").to_numpy(), np.float64)
                    images: dict[str, np.ndarray] = {}
                    for cam, key in self.cameras.items():
                        if self.features[key]["dtype"] == "image":
                            images[cam] = _decode_images(rows.column(key), self.root,
                                                         f"{path}: column {key}", self.hw[cam])
                            continue
                        vpath = self.video_file(e, key)
                        reader = readers.get(cam)
                        if reader is None or reader.path != vpath:
                            if reader is not None:
                                reader.close()
                            reader = readers[cam] = _VideoReader(vpath, self.fps, self.hw[cam])
                        start = float(ep[f"videos/{key}/from_timestamp"])
                        images[cam] = reader.read(start + ts)
                    task_ids = rows.column("task_index").to_pylist()
                    goal = self.tasks.get(int(task_ids[0])) if task_ids else None
                    if goal is None:
                        tasks = ep.get("tasks") or [""]
                        goal = str(tasks[0])
                    if stored is not None:
                        rec = dict(stored[e])
                        bag = str(rec.pop("bag", f"episode_{e:06d}"))
                        skipped = int(rec.pop("skipped_ticks", 0) or 0)
                        info = rec
                    else:
                        bag = f"{self.root.name}/episode_{e:06d}"
                        skipped, info = 0, {"task": goal}
                    bar.update(1)
                    yield Episode(bag=bag, images=images, state=state, actions=actions,
                                  goal=goal, info=info, skipped_ticks=skipped)
        finally:
            for reader in readers.values():
                reader.close()


def import_lerobot(src_dir: Path | str, out_cache: Path | str, *,
                   cameras: list[str] | None = None, val_fraction: float = 0.1, seed: int = 0,
                   progress: bool = True) -> dict[str, Any]:
    """Read a LeRobotDataset v3.0 directory into a training cache; returns the cache's meta.

    ``cameras`` picks camera names (``observation.images.<name>``; default all). The split is
    the dataset's own (ours exactly, else a LeRobot "val" range) or, failing that, drawn by
    episode with ``val_fraction`` / ``seed``. The returned dict is meta.json plus ``path``,
    ``contract_origin`` ("stored" or "built from the features") and ``seconds``. Bad input
    raises ``LeRobotError`` naming the file and the problem, and leaves no ``out_cache``.
    """
    t0 = time.monotonic()
    src, out = Path(src_dir), Path(out_cache)
    _check_empty_out(out)
    source = _Source(src, cameras)  # everything checkable before writing is checked here
    contract, origin = source.contract()
    try:
        meta = write_cache(out, source.episodes_iter(progress), contract,
                           val_fraction=val_fraction, seed=seed, sources=[str(src)])
        split = source.split()
        if split is not None and (split[0], split[1]) != (meta["split"]["train"],
                                                          meta["split"]["val"]):
            # Statistics follow the training episodes, so they are recomputed for this split.
            meta = cache_meta(out, meta["episodes"], contract, split[0], split[1], meta["hash"],
                         meta["sources"])
            (out / META).write_text(json.dumps(meta, indent=1) + "\n")
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # never leave a half-written cache behind
        raise
    return {**meta, "path": str(out), "contract_origin": origin,
            "seconds": round(time.monotonic() - t0, 2)}
