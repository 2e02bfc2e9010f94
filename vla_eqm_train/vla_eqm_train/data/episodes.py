"""Where the episodes of a recording begin and end, and which instruction each one carries.

A bag from our recorder is one episode. A bag from a teleoperation session is many: the contract's
``episodes`` section (``EpisodeSpec``) says how to cut it, by a marker topic or by pauses of the
reference input, and where each piece's instruction comes from. This module turns that rule
into time windows; ``bags.read_episodes`` decodes each window through the shared decode path.

Marker topics (``split: marker``):

- ``std_msgs/Bool``: ``true`` starts an episode, ``false`` ends it;
- ``std_msgs/String``: ``""``, ``end``, ``stop`` or ``done`` end it, any other text starts one
  (with ``instruction: marker`` the text is the instruction; the bare word ``start`` is none).

A start inside an open episode ends it and opens the next; an episode still open when the bag
ends closes at the bag's last message. Instructions (``instruction:``): ``goal`` takes the goal
topic as of the episode's first frame; ``marker`` the String marker's text; ``metadata`` the bag's
``custom_data`` key ``instruction`` (one for all) or ``instructions`` (a JSON list, one per
episode); ``sidecar`` the file ``<bag>/episodes.yaml`` with ``instruction: text`` or
``instructions: [text, ...]``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from vla_eqm_ros.contract import Contract
from vla_eqm_ros.contract_fields import MARKER_END_WORDS, MARKER_TYPES

SIDECAR = "episodes.yaml"
BOOL_TYPE = "std_msgs/msg/Bool"


class EpisodeSplitError(ValueError):
    """A recording that cannot be cut as the contract says; ``topic`` names where it failed."""

    def __init__(self, topic: str, problem: str) -> None:
        super().__init__(problem)
        self.topic, self.problem = topic, problem


@dataclass(frozen=True)
class Window:
    """One episode's time span in bag time (ns, both ends included)."""

    start_ns: int
    end_ns: int
    instruction: str | None = None  # from a String marker

    def holds(self, t_ns: int) -> bool:
        return self.start_ns <= t_ns <= self.end_ns


WHOLE_BAG = Window(0, 2**63 - 1)


def reference_topic(contract: Contract) -> str:
    """The input that times a recording: the first camera, else the first state source."""
    return contract.cameras[0].topic if contract.cameras else contract.state[0].topic


def marker_windows(events: Iterable[tuple[int, str, Any]], last_ns: int) -> list[Window]:
    """Windows from marker messages ``(t_ns, msgtype, data)`` in time order."""
    out: list[Window] = []
    open_at: int | None = None
    text: str | None = None
    for t_ns, msgtype, data in events:
        if msgtype == BOOL_TYPE:
            start, words = bool(data), None
        else:
            word = str(data).strip()
            start = word.lower() not in MARKER_END_WORDS
            words = word if start and word.lower() != "start" else None
        if open_at is not None:  # an end closes the open episode, and so does a new start
            out.append(Window(open_at, t_ns, text))
            open_at = None
        if start:
            open_at, text = t_ns, words
    if open_at is not None:
        out.append(Window(open_at, last_ns, text))
    return [w for w in out if w.end_ns > w.start_ns]


def gap_windows(stamps_ns: Iterable[int], gap_s: float) -> list[Window]:
    """Windows between pauses of the reference input longer than ``gap_s``."""
    t = np.asarray(sorted(stamps_ns), dtype=np.int64)
    if t.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(t) > int(round(gap_s * 1e9)))
    starts = np.concatenate([[0], cuts + 1])
    ends = np.concatenate([cuts, [t.size - 1]])
    return [Window(int(t[a]), int(t[b])) for a, b in zip(starts, ends, strict=True) if b > a]


def find_windows(contract: Contract, connections: dict[str, str],
                 read: Callable[[str], Iterable[tuple[int, Any]]], last_ns: int) -> list[Window]:
    """The episode windows of one bag. ``read(topic)`` yields ``(t_ns, message)`` in order."""
    spec = contract.episodes
    if spec.split == "bag":
        return [WHOLE_BAG]
    if spec.split == "marker":
        topic = str(spec.marker)
        if topic not in connections:
            raise EpisodeSplitError(topic, "the episode marker topic is missing from the bag "
                                           "(split: marker); record it, or use split: gap")
        msgtype = connections[topic]
        if msgtype not in MARKER_TYPES:
            raise EpisodeSplitError(topic, f"an episode marker must be one of {MARKER_TYPES}, "
                                           f"the bag stores {msgtype}")
        events = [(t, msgtype, msg.data) for t, msg in read(topic)]
        if not events:
            raise EpisodeSplitError(topic, "the episode marker topic has no messages")
        return marker_windows(events, last_ns)
    topic = reference_topic(contract)
    return gap_windows((t for t, _ in read(topic)), spec.gap)


def instructions_for(contract: Contract, bag: Path, custom: dict[str, str] | None,
                     windows: list[Window], goals: list[str | None]) -> list[str]:
    """One instruction per window; ``goals`` is the goal topic as of each window's first frame."""
    source, n = contract.episodes.instruction, len(windows)
    default = contract.goal.default
    if source == "goal":
        return [g if g is not None else default for g in goals]
    if source == "marker":
        return [w.instruction if w.instruction is not None else (g or default)
                for w, g in zip(windows, goals, strict=True)]
    if source == "metadata":
        data = custom or {}
        if "instructions" in data:
            try:
                listed = json.loads(data["instructions"])
            except json.JSONDecodeError as exc:
                raise EpisodeSplitError("-", f"custom_data 'instructions' is not JSON: {exc}"
                                        ) from exc
            return _per_episode(listed, n, "the bag's custom_data 'instructions'")
        if "instruction" in data:
            return [str(data["instruction"])] * n
        raise EpisodeSplitError("-", "instruction: metadata, but the bag's metadata.yaml has no "
                                     f"custom_data 'instruction' or 'instructions' (it has "
                                     f"{sorted(data)})")
    path = bag / SIDECAR
    if not path.is_file():
        raise EpisodeSplitError("-", f"instruction: sidecar, but {path} does not exist")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise EpisodeSplitError("-", f"{path}: not YAML ({exc})") from exc
    if isinstance(doc, dict) and "instructions" in doc:
        return _per_episode(doc["instructions"], n, str(path))
    if isinstance(doc, dict) and "instruction" in doc:
        return [str(doc["instruction"])] * n
    raise EpisodeSplitError("-", f"{path}: expected a key 'instruction' or 'instructions'")


def _per_episode(listed: Any, n: int, where: str) -> list[str]:
    if not isinstance(listed, list) or len(listed) != n:
        count = len(listed) if isinstance(listed, list) else "no list"
        raise EpisodeSplitError("-", f"{where}: {count} instructions for {n} episodes")
    return [str(x) for x in listed]
