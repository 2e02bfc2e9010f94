"""The recorded run as a timeline: camera frames, solver statuses and executed chunks per episode.

Decoded from the recorder's CDR bytes (``extract``), so the GIF and the plots show exactly what the
bag holds. ``boundary_jumps`` recomputes the hand-over jump from every recorded ``~/action_chunk``
(the node's own /diagnostics window keeps only the last 200).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from vla_eqm_ros.images import decode_compressed
from vla_eqm_sim.bag_types import make_typestore
from vla_eqm_train.demo.recorder import (
    ACTION_CHUNK,
    DECODER_STATUS,
    EPISODE_STATUS,
    Recorded,
)


@dataclass(frozen=True)
class Frame:
    episode: int
    step: int
    stamp_ns: int
    image: np.ndarray  # (H, W, 3) uint8


@dataclass(frozen=True)
class Decode:
    episode: int
    stamp_ns: int
    iterations: int
    residual: float
    tau: float
    trace: tuple[float, ...]
    warm: bool


@dataclass(frozen=True)
class RecordedChunk:
    """An installed chunk: ``rows`` (H, d), produced at sim step ``step``, executed from row
    ``first_step`` on."""

    episode: int
    step: int
    first_step: int
    rows: np.ndarray


def extract(recorded: Sequence[Recorded], camera_topic: str
            ) -> tuple[list[Frame], list[Decode], list[RecordedChunk]]:
    """Decode the camera frames, decoder statuses and action chunks of a recording."""
    store = make_typestore()
    steps: dict[tuple[int, int], int] = {}  # (episode, stamp) -> sim step of that observation
    for m in recorded:
        if m.msgtype == EPISODE_STATUS:
            steps[(m.episode, m.stamp_ns or 0)] = int(store.deserialize_cdr(m.data, m.msgtype).step)
    frames, decodes, chunks = [], [], []
    per_episode: Counter[int] = Counter()
    for m in recorded:
        key = (m.episode, m.stamp_ns or 0)
        if m.topic == camera_topic:
            msg = store.deserialize_cdr(m.data, m.msgtype)
            if hasattr(msg, "format"):  # CompressedImage, as a compressed contract reads it
                image = decode_compressed(msg.data, msg.format)
            else:
                image = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width,
                                                                         -1)
                if msg.encoding == "bgr8":
                    image = image[:, :, ::-1]
            frames.append(Frame(m.episode, steps.get(key, per_episode[m.episode]), key[1],
                                np.ascontiguousarray(image[:, :, :3])))
            per_episode[m.episode] += 1
        elif m.msgtype == DECODER_STATUS:
            msg = store.deserialize_cdr(m.data, m.msgtype)
            decodes.append(Decode(m.episode, key[1], int(msg.iterations), float(msg.residual),
                                  float(msg.tau), tuple(float(r) for r in msg.residual_trace),
                                  bool(msg.warm_start_used)))
        elif m.msgtype == ACTION_CHUNK and key in steps:
            msg = store.deserialize_cdr(m.data, m.msgtype)
            rows = np.asarray(msg.data, float).reshape(int(msg.horizon), int(msg.action_dim))
            chunks.append(RecordedChunk(m.episode, steps[key], int(msg.first_step), rows))
    return frames, decodes, chunks


def boundary_jumps(chunks: Iterable[RecordedChunk]) -> list[float]:
    """The node's chunk-boundary jump at every hand-over, from the published chunks alone.

    As in ``ChunkQueue.install``: a chunk produced at step P and installed from row b replaces the
    previous chunk (produced at P', installed from b'), which would have executed its row
    (P + b) - P' at that tick; the jump is the distance of the two rows. The first chunk of an
    episode has nothing to compare with (the node clears its queue on reset).
    """
    out: list[float] = []
    prev: RecordedChunk | None = None
    for c in chunks:
        if prev is not None and prev.episode == c.episode:
            old_row = c.step + c.first_step - prev.step
            if 0 <= old_row < len(prev.rows) and c.first_step < len(c.rows):
                new, old = c.rows[c.first_step], prev.rows[old_row]
                if np.all(np.isfinite(new)) and np.all(np.isfinite(old)):
                    out.append(float(np.linalg.norm(new - old)))
        prev = c
    return out


def latest_decode(decodes: Sequence[Decode], episode: int, stamp_ns: int) -> Decode | None:
    """The most recent decode of ``episode`` whose observation is not newer than ``stamp_ns``."""
    best = None
    for d in decodes:
        if d.episode == episode and d.stamp_ns <= stamp_ns and (
                best is None or d.stamp_ns >= best.stamp_ns):
            best = d
    return best


# --------------------------------------------------------------------------- GIF, contact sheet
