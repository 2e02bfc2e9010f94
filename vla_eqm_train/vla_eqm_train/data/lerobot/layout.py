"""The v3.0 layout: paths, feature keys, defaults, statistics and Parquet helpers shared by both
directions (see the package docstring for the format).
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from vla_eqm_train.data.dataset import DatasetError

CODEBASE_VERSION = "v3.0"
EXTRA_KEY = "vla_eqm"  # our key in meta/info.json (see the module docstring)
EXTRA_FORMAT = 1
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
# LeRobot's defaults. One file of each kind is written whatever the size (readers follow the
# per-episode chunk/file indices, so bigger files are still read correctly).
CHUNKS_SIZE = 1000
DATA_FILES_SIZE_IN_MB = 100
VIDEO_FILES_SIZE_IN_MB = 200
IMAGE_PREFIX = "observation.images."
STATE_KEY = "observation.state"
ACTION_KEY = "action"
DEFAULT_KEYS = ("timestamp", "frame_index", "episode_index", "index", "task_index")
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
# (encoder, options): LeRobot's default first; the others only if a PyAV build lacks it.
ENCODERS: tuple[tuple[str, dict[str, str]], ...] = (
    ("libsvtav1", {"g": "2", "crf": "30", "preset": "12"}),
    ("libx264", {"g": "2", "crf": "23"}),
    ("mpeg4", {"g": "2", "qscale": "2"}),
)

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration otherwise


class LeRobotError(DatasetError):
    """A LeRobot dataset that cannot be read or written; the message names the file."""


def _bar(total: int, desc: str, unit: str, progress: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not progress, file=sys.stderr)


def _check_empty_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LeRobotError(f"{out}: exists and is not empty; choose a new directory")


def _numeric_stats(x: np.ndarray) -> dict[str, Any]:
    """LeRobot's per-feature statistics of (N, D) samples (also q01..q99, as LeRobot >= 0.4)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    out: dict[str, Any] = {"min": x.min(0).tolist(), "max": x.max(0).tolist(),
                           "mean": x.mean(0).tolist(), "std": x.std(0).tolist(),
                           "count": [int(len(x))]}
    qs = np.quantile(x, list(QUANTILES.values()), axis=0)  # one sort for all five
    for name, v in zip(QUANTILES, qs, strict=True):
        out[name] = v.tolist()
    return out


def _sample_rows(n: int) -> np.ndarray:
    """Which frames of an episode feed its image statistics: LeRobot samples ~n^0.75 (100 to
    10 000), evenly spaced, because decoding every frame of a long episode is not worth it."""
    k = n if n < 100 else max(100, min(int(n ** 0.75), 10_000))
    return np.unique(np.round(np.linspace(0, n - 1, k)).astype(np.int64))


def _image_stats(frames: np.ndarray) -> dict[str, Any]:
    """Per-channel statistics of (T, H, W, 3) uint8 frames in [0, 1], shaped (3, 1, 1) as LeRobot
    stores image statistics (channel-first, broadcastable against a CHW tensor).

    Exact, from a 256-bin histogram per channel: pixels are uint8, so this is O(pixels) where
    sorting them for the quantiles would dominate the whole export.
    """
    if max(frames.shape[1:3]) >= 300:  # LeRobot downsamples big frames for statistics too
        step = max(1, max(frames.shape[1:3]) // 150)
        frames = frames[:, ::step, ::step]
    values = np.arange(256, dtype=np.float64)
    per: dict[str, list[float]] = {k: [] for k in ("min", "max", "mean", "std", *QUANTILES)}
    for c in range(3):
        counts = np.bincount(np.ascontiguousarray(frames[..., c]).reshape(-1), minlength=256)
        n = int(counts.sum())
        mean = float(counts @ values) / n
        nz = np.flatnonzero(counts)
        per["min"].append(float(nz[0]))
        per["max"].append(float(nz[-1]))
        per["mean"].append(mean)
        per["std"].append(math.sqrt(max(float(counts @ (values - mean) ** 2) / n, 0.0)))
        cum = np.cumsum(counts)
        for name, q in QUANTILES.items():  # numpy's default ("linear") quantile, exactly
            pos = q * (n - 1)
            lo = int(np.searchsorted(cum, math.floor(pos), side="right"))
            hi = int(np.searchsorted(cum, math.ceil(pos), side="right"))
            per[name].append(lo + (pos - math.floor(pos)) * (hi - lo))

    def chw(v: list[float]) -> list[Any]:
        return (np.asarray(v, dtype=np.float64) / 255.0).reshape(3, 1, 1).tolist()

    out: dict[str, Any] = {k: chw(v) for k, v in per.items()}
    out["count"] = [int(len(frames))]
    return {k: out[k] for k in ("min", "max", "mean", "std", "count", *QUANTILES)}


def _integral_fps(fps: float, where: str) -> int:
    if not (math.isfinite(fps) and fps > 0 and abs(fps - round(fps)) < 1e-6):
        raise LeRobotError(f"{where}: LeRobot stores an integer fps > 0, got {fps!r}; pass an "
                           "integer fps (--fps)")
    return int(round(fps))


def _pandas_index_metadata(index: str, columns: list[tuple[str, str, str]]) -> bytes:
    """The ``pandas`` schema metadata that makes ``pd.read_parquet`` restore ``index`` as the
    DataFrame index, as LeRobot's own ``tasks.to_parquet`` writes it (we write Parquet with
    pyarrow alone; pandas is not a dependency)."""
    import pyarrow as pa

    return json.dumps({
        "index_columns": [index],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode",
                            "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
        "columns": [{"name": n, "field_name": n, "pandas_type": p, "numpy_type": t,
                     "metadata": None} for n, p, t in columns],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }).encode()


def _write_tasks(out: Path, tasks: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()),
                      "task": pa.array(tasks, pa.string())})
    meta = _pandas_index_metadata("task", [("task_index", "int64", "int64"),
                                           ("task", "unicode", "object")])
    pq.write_table(table.replace_schema_metadata({b"pandas": meta}), out / TASKS_PATH)


def _vector_column(x: np.ndarray) -> Any:
    """(N, D) float32 -> a fixed-size list column, the Arrow type of ``datasets.Sequence(
    Value("float32"), length=D)`` that LeRobot declares for a (D,) feature."""
    import pyarrow as pa

    x = np.ascontiguousarray(x, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), int(x.shape[1]))


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise LeRobotError(f"{path}: missing; not a LeRobotDataset v3.0 directory")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LeRobotError(f"{path}: unreadable JSON ({exc})") from exc


def _read_parquet(path: Path, columns: list[str] | None = None) -> Any:
    import pyarrow.parquet as pq

    if not path.is_file():
        raise LeRobotError(f"{path}: missing (listed by the dataset's metadata)")
    try:
        table = pq.read_table(str(path))
    except Exception as exc:  # ArrowInvalid and friends: a corrupt or non-Parquet file
        raise LeRobotError(f"{path}: unreadable Parquet ({type(exc).__name__}: {exc})") from exc
    missing = [c for c in columns or [] if c not in table.column_names]
    if missing:
        raise LeRobotError(f"{path}: missing columns {missing} (it has {table.column_names})")
    return table


def _shape(ft: dict[str, Any], key: str) -> tuple[int, ...]:
    shape = ft.get("shape")
    if not isinstance(shape, list | tuple) or not all(isinstance(s, int) for s in shape):
        raise LeRobotError(f"{INFO_PATH}: feature {key!r} has no valid shape ({shape!r})")
    return tuple(shape)


def _names_of(ft: dict[str, Any], dim: int, fallback: str) -> list[str]:
    """Per-dimension names from a feature's ``names``: a list (v3), or a dict holding one list
    (v2-era ``{"motors": [...]}``); generic names when they do not name every dimension."""
    names = ft.get("names")
    if isinstance(names, dict):
        names = next((v for v in names.values() if isinstance(v, list) and len(v) == dim), None)
    if (isinstance(names, list) and len(set(names)) == len(names) == dim
            and all(isinstance(s, str) and s for s in names)):
        return list(names)
    return [f"{fallback}_{i}" for i in range(dim)]


def _hw(ft: dict[str, Any], key: str) -> tuple[int, int]:
    """(height, width) of an image/video feature: the video info, else the named shape."""
    info = ft.get("info") or {}
    if isinstance(info.get("video.height"), int) and isinstance(info.get("video.width"), int):
        return int(info["video.height"]), int(info["video.width"])
    shape = _shape(ft, key)
    if len(shape) != 3:
        raise LeRobotError(f"{INFO_PATH}: feature {key!r} shape {list(shape)} is not 3-D")
    names = [str(n).lower() for n in ft.get("names") or []]
    if len(names) == 3 and names[0] in ("c", "channel", "channels"):
        return shape[1], shape[2]
    if shape[0] in (1, 3, 4) and shape[2] not in (1, 3, 4):  # CHW without names
        return shape[1], shape[2]
    return shape[0], shape[1]


def _camera_name(key: str) -> str:
    name = key[len(IMAGE_PREFIX):] if key.startswith(IMAGE_PREFIX) else key.split(".")[-1]
    return re.sub(r"[^A-Za-z0-9_]", "_", name) or "camera"


def _parse_ranges(value: Any, n: int) -> list[int] | None:
    """A LeRobot split ("start:end", or several joined by commas, or a list of indices)."""
    if isinstance(value, list) and all(isinstance(i, int) for i in value):
        return sorted(i for i in value if 0 <= i < n)
    if not isinstance(value, str):
        return None
    out: list[int] = []
    for part in value.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", part)
        if m is None:
            return None
        out.extend(range(int(m.group(1)), min(int(m.group(2)), n)))
    return sorted(set(out))
