"""The training cache: bags decoded once into memory-mapped arrays with an episode index.

Layout of a cache directory (every array is a ``.npy`` opened with ``mmap_mode="r"``, so an epoch
never re-decodes a bag and the page cache, not Python, holds the images)::

    images_<camera>.npy  (N, H, W, 3) uint8      state.npy    (N, state_dim) float32
    actions.npy          (N, action_dim) float32 episode_index.npy (N,) int32
    frame_index.npy      (N,) int32  (position of the frame inside its episode)
    meta.json            episodes, tasks, instructions, split, statistics, contract, hash

``ChunkDataset`` serves (observation, action chunk, mask) samples: the chunk of frame i is the
actions i .. i+H-1 of *its own* episode; past the episode end it is padded by repeating the last
action and the mask marks those rows invalid, so no target ever crosses into the next episode
(LeRobot's ``action_is_pad``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vla_eqm_ros.contract import Contract
from vla_eqm_train.data.bags import Episode

META = "meta.json"
CACHE_VERSION = 1


class DatasetError(RuntimeError):
    """A cache that is missing, incomplete or does not match what the caller expects."""


def field_stats(x: np.ndarray) -> dict[str, list[float]]:
    """Per-dimension statistics of (N, D) samples: the normalizers' inputs plus min/max."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if x.shape[0] == 0:
        raise DatasetError("cannot compute statistics of zero samples")
    return {
        "mean": x.mean(0).tolist(), "std": x.std(0).tolist(),
        "min": x.min(0).tolist(), "max": x.max(0).tolist(),
        "q01": np.quantile(x, 0.01, axis=0).tolist(), "q99": np.quantile(x, 0.99, axis=0).tolist(),
    }


def split_episodes(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Train/validation split by episode (never by frame: neighbouring frames are near copies).

    At least one validation episode when there are two or more episodes and val_fraction > 0.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and n >= 2:
        n_val = max(1, n_val)
    n_val = min(n_val, n - 1) if n > 0 else 0
    return sorted(int(i) for i in order[n_val:]), sorted(int(i) for i in order[:n_val])


class _Appender:
    """Grows one array file frame by frame (raw bytes), turned into a ``.npy`` at the end."""

    def __init__(self, path: Path, dtype: np.dtype, frame_shape: tuple[int, ...]) -> None:
        self.path, self.dtype, self.frame_shape = path, np.dtype(dtype), frame_shape
        self.raw = path.with_suffix(".raw")
        self._fh = open(self.raw, "wb")  # noqa: SIM115 - closed in finish()
        self.rows = 0

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.frame_shape:
            raise DatasetError(f"{self.path.name}: frame shape {block.shape[1:]} != "
                               f"{self.frame_shape}")
        self._fh.write(block.tobytes())
        self.rows += len(block)

    def finish(self) -> None:
        self._fh.close()
        src = np.memmap(self.raw, dtype=self.dtype, mode="r",
                        shape=(self.rows, *self.frame_shape)) if self.rows else None
        out = np.lib.format.open_memmap(self.path, mode="w+", dtype=self.dtype,
                                        shape=(self.rows, *self.frame_shape))
        step = 4096
        for i in range(0, self.rows, step):
            out[i:i + step] = src[i:i + step]  # type: ignore[index]
        out.flush()
        del out, src
        self.raw.unlink()


def write_cache(
    out: Path,
    episodes: Iterable[Episode],
    contract: Contract,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    sources: list[str] | None = None,
    on_episode: Callable[[Episode], None] | None = None,
) -> dict[str, Any]:
    """Stream episodes into a cache directory; returns (and writes) its ``meta.json``.

    The hash covers the contract and every stored byte, so a checkpoint's provenance pins the
    exact data it was trained on.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(json.dumps(contract.to_dict(), sort_keys=True).encode())
    cams = {c.name: (c.height, c.width, 3) for c in contract.cameras}
    files = {f"images_{n}": _Appender(out / f"images_{n}.npy", np.uint8, s)
             for n, s in cams.items()}
    files["state"] = _Appender(out / "state.npy", np.float32, (contract.state_dim,))
    files["actions"] = _Appender(out / "actions.npy", np.float32, (contract.action_dim,))
    files["episode_index"] = _Appender(out / "episode_index.npy", np.int32, ())
    files["frame_index"] = _Appender(out / "frame_index.npy", np.int32, ())
    records: list[dict[str, Any]] = []
    start = 0
    for ep in episodes:
        e = len(records)
        arrays = {**{f"images_{n}": ep.images[n] for n in cams}, "state": ep.state,
                  "actions": ep.actions,
                  "episode_index": np.full(ep.length, e, np.int32),
                  "frame_index": np.arange(ep.length, dtype=np.int32)}
        for key, arr in arrays.items():
            files[key].append(arr)
            digest.update(np.ascontiguousarray(arr).tobytes())
        digest.update(ep.goal.encode())
        info = ep.info
        records.append({
            "bag": Path(ep.bag).name, "start": start, "length": ep.length, "goal": ep.goal,
            "task": info.get("task", ""), "variation": info.get("variation"),
            "seed": info.get("seed"), "success": info.get("success"),
            "skipped_ticks": ep.skipped_ticks, "segment": info.get("segment"),
        })
        start += ep.length
        if on_episode is not None:
            on_episode(ep)
    for f in files.values():
        f.finish()
    if not records:
        raise DatasetError("no episodes to write")
    train, val = split_episodes(len(records), val_fraction, seed)
    meta = cache_meta(out, records, contract, train, val, digest.hexdigest(), sources or [])
    (out / META).write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def cache_meta(out: Path, records: list[dict[str, Any]], contract: Contract, train: list[int],
          val: list[int], digest: str, sources: list[str]) -> dict[str, Any]:
    """Statistics (train episodes only: validation must not leak into normalization)."""
    state = np.load(out / "state.npy", mmap_mode="r")
    actions = np.load(out / "actions.npy", mmap_mode="r")
    ep_index = np.load(out / "episode_index.npy", mmap_mode="r")
    rows = np.isin(ep_index, np.asarray(train or [0]))
    stats: dict[str, Any] = {"action": field_stats(actions[rows])}
    if contract.state_dim:
        stats["state"] = field_stats(state[rows])
    for cam in contract.camera_names:
        img = np.load(out / f"images_{cam}.npy", mmap_mode="r")
        sample = img[np.flatnonzero(rows)[:: max(1, int(rows.sum()) // 256)]]
        stats[f"images_{cam}"] = {"mean": (sample.reshape(-1, 3).mean(0) / 255.0).tolist(),
                                  "std": (sample.reshape(-1, 3).std(0) / 255.0).tolist()}
    tasks = sorted({r["task"] for r in records})
    return {
        "version": CACHE_VERSION,
        "hash": digest,
        "frames": int(len(actions)),
        "episodes": records,
        "tasks": tasks,
        "instructions": sorted({r["goal"] for r in records}),
        "frames_per_task": {t: sum(r["length"] for r in records if r["task"] == t) for t in tasks},
        "split": {"train": train, "val": val},
        "stats": stats,
        "contract": contract.to_dict(),
        "state_names": contract.state_labels,
        "action_names": list(contract.action.names),
        "sources": sources,
    }


@dataclass
class ChunkSample:
    """A batch of training samples (numpy; the trainer moves them to torch)."""

    images: dict[str, np.ndarray]  # camera -> (B, H, W, 3) uint8
    state: np.ndarray  # (B, state_dim) float32
    actions: np.ndarray  # (B, horizon, action_dim) float32, padded past the episode end
    mask: np.ndarray  # (B, horizon) bool, False on padded rows
    goals: list[str]


class ChunkDataset:
    """Samples from a cache: frame i -> (observation i, actions i..i+H-1 of its episode, mask)."""

    def __init__(self, root: Path | str, horizon: int, split: str | None = None) -> None:
        self.root = Path(root)
        meta_path = self.root / META
        if not meta_path.is_file():
            raise DatasetError(f"{self.root}: not a dataset cache ({META} missing); "
                               "build one with `vla-eqm dataset build`")
        self.meta: dict[str, Any] = json.loads(meta_path.read_text())
        if self.meta.get("version") != CACHE_VERSION:
            raise DatasetError(f"{meta_path}: cache version {self.meta.get('version')} != "
                               f"{CACHE_VERSION}; rebuild it")
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        self.horizon = horizon
        self.contract = Contract.from_dict(self.meta["contract"])
        self.cameras = self.contract.camera_names
        self.images = {c: np.load(self.root / f"images_{c}.npy", mmap_mode="r")
                       for c in self.cameras}
        self.state = np.load(self.root / "state.npy", mmap_mode="r")
        self.actions = np.load(self.root / "actions.npy", mmap_mode="r")
        self.episode_index = np.load(self.root / "episode_index.npy", mmap_mode="r")
        self.frame_index = np.load(self.root / "frame_index.npy", mmap_mode="r")
        episodes = self.meta["episodes"]
        self.episode_start = np.array([e["start"] for e in episodes], dtype=np.int64)
        self.episode_length = np.array([e["length"] for e in episodes], dtype=np.int64)
        self.goals = [e["goal"] for e in episodes]
        if split is None:
            self.indices = np.arange(len(self.actions), dtype=np.int64)
        elif split in ("train", "val"):
            chosen = np.asarray(self.meta["split"][split], dtype=np.int64)
            self.indices = np.flatnonzero(np.isin(self.episode_index, chosen)).astype(np.int64)
        else:
            raise ValueError(f"split must be 'train', 'val' or None, got {split!r}")

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def hash(self) -> str:
        return str(self.meta["hash"])

    def chunk_targets(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Action chunks (B, H, d) and validity masks (B, H) for absolute frame numbers."""
        frames = np.asarray(frames, dtype=np.int64)
        ep = np.asarray(self.episode_index[frames], dtype=np.int64)
        end = self.episode_start[ep] + self.episode_length[ep]  # one past the episode's last
        want = frames[:, None] + np.arange(self.horizon)[None, :]  # (B, H)
        mask = want < end[:, None]
        rows = np.minimum(want, end[:, None] - 1)  # pad: repeat the episode's last action
        return np.asarray(self.actions[rows], dtype=np.float32), mask

    def batch(self, positions: np.ndarray) -> ChunkSample:
        """Samples at positions into this split (0 .. len-1)."""
        frames = self.indices[np.asarray(positions, dtype=np.int64)]
        order = np.argsort(frames)  # memmap reads in file order, then undo
        inverse = np.argsort(order)
        sorted_frames = frames[order]
        images = {c: np.asarray(self.images[c][sorted_frames])[inverse] for c in self.cameras}
        actions, mask = self.chunk_targets(frames)
        ep = np.asarray(self.episode_index[frames])
        return ChunkSample(images=images, state=np.asarray(self.state[frames], dtype=np.float32),
                     actions=actions, mask=mask, goals=[self.goals[int(e)] for e in ep])

    def __getitem__(self, position: int) -> ChunkSample:
        return self.batch(np.array([position]))
