"""Bag -> episode arrays, through the same decode path the live policy node uses.

A rosbag2 episode is read with ``rosbags`` and its messages are fed, in bag order, to the shared
``vla_eqm_ros.decode.ObservationAssembler``; at every control tick the assembler is asked for the
observation exactly as the node would ask it live, and the command in force at that tick becomes
the label. That is the whole point of the contract: training and serving cannot disagree
about how topics become an observation.

Ticks lie on the contract's control-period grid, starting at the first command (integer
nanoseconds, so a 12.5 ms sim step never drifts); the label of a tick is the newest command
stamped at or before it and younger than one period (what a controller at that rate would
execute). A tick without an observation (missing or stale input, skew) or without a command in
force yields no frame; the count is reported.

Every failure raises ``BagError`` naming the bag, the topic and the problem, so a broken episode
in a folder of hundreds is found at once.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla_eqm_ros.contract import Contract
from vla_eqm_ros.decode import DecodeError, ObservationAssembler, decode_command
from vla_eqm_ros.observation import Observation
from vla_eqm_train.data.episodes import (
    WHOLE_BAG,
    EpisodeSplitError,
    Window,
    find_windows,
    instructions_for,
)

EPISODE_INFO_TOPIC = "/episode_info"


class BagError(RuntimeError):
    """A bag that cannot become an episode; the message names the bag, topic and problem."""

    def __init__(self, bag: Path | str, topic: str, problem: str) -> None:
        super().__init__(f"{bag}: topic {topic}: {problem}")
        self.bag, self.topic, self.problem = str(bag), topic, problem


@dataclass
class Episode:
    """One decoded episode: aligned observations and the command in force at each tick."""

    bag: str
    images: dict[str, np.ndarray]  # camera -> (T, H, W, 3) uint8
    state: np.ndarray  # (T, state_dim) float32
    actions: np.ndarray  # (T, action_dim) float32
    goal: str
    info: dict[str, Any] = field(default_factory=dict)  # /episode_info JSON (task, seed, ...)
    skipped_ticks: int = 0  # ticks without a consistent observation

    @property
    def length(self) -> int:
        return int(self.actions.shape[0])

    @property
    def name(self) -> str:
        """The bag's name, with ``#k`` for the k-th episode cut from a continuous recording."""
        segment = self.info.get("segment")
        return Path(self.bag).name + ("" if segment is None else f"#{segment}")


def find_bags(paths: list[Path]) -> list[Path]:
    """Bag directories (with a metadata.yaml) under the given paths, sorted; skips failed/."""
    found: set[Path] = set()
    for p in paths:
        p = Path(p)
        if (p / "metadata.yaml").is_file():
            found.add(p)
        elif p.is_dir():
            for meta in p.rglob("metadata.yaml"):
                if "failed" not in meta.parent.relative_to(p).parts:
                    found.add(meta.parent)
        else:
            raise BagError(p, "-", "no such bag directory")
    return sorted(found)


@dataclass
class ConversionStats:
    """What converting a bag did, tick by tick: ``vla-eqm contract check`` prints it."""

    ticks: int = 0
    frames: int = 0
    dropped: Counter[str] = field(default_factory=Counter)  # reason (numbers removed) -> ticks
    skew_s: dict[str, list[float]] = field(default_factory=dict)  # input -> stamp - reference
    windows: int = 0
    empty_windows: int = 0
    reference: str = ""  # the input the skew is measured against (the assembler's first)

    def drop(self, reason: str) -> None:
        self.dropped[re.sub(r"[+-]?\d+(\.\d+)?", "#", re.sub(r"\s*\([^)]*\)", "", reason))] += 1

    def frame(self, obs: Observation, reference: str) -> None:
        self.frames += 1
        for name, age in obs.ages.items():
            if name != reference:  # stamp(n) - stamp(ref) = age(ref) - age(n)
                self.skew_s.setdefault(name, []).append(obs.ages[reference] - age)


def _check_topics(bag: Path, present: dict[str, str], contract: Contract) -> None:
    """Every contract topic must be in the bag with the contract's message type."""
    wanted = contract.input_topics() + [(contract.action.topic, contract.action.ros_type)]
    for topic, msgtype in wanted:
        if topic not in present:
            raise BagError(bag, topic, f"missing from the bag (it has {sorted(present)})")
        if present[topic] != msgtype:
            raise BagError(bag, topic, f"contract mismatch: the bag stores {present[topic]}, "
                                       f"the contract expects {msgtype}")


class _Cutter:
    """Feeds one bag's messages in order and cuts ticks into the windows' episodes."""

    def __init__(self, contract: Contract, windows: list[Window], stats: ConversionStats) -> None:
        self.contract, self.windows, self.stats = contract, windows, stats
        self.assembler = ObservationAssembler(contract, history=8)
        self.reference = stats.reference = self.assembler.input_names[0]
        self.period_ns = int(round(contract.control_period * 1e9))
        self.w = 0  # the window being filled
        self.command: np.ndarray | None = None
        self.command_ns = 0
        self.next_tick: int | None = None
        self.pieces: list[dict[str, Any]] = [self._piece() for _ in windows]

    def _piece(self) -> dict[str, Any]:
        return {"images": {c: [] for c in self.contract.camera_names}, "states": [],
                "actions": [], "skipped": 0, "goal": None}

    def _tick(self, t_ns: int) -> None:
        piece = self.pieces[self.w]
        self.stats.ticks += 1
        if t_ns - self.command_ns >= self.period_ns:  # no command in force (the final frame)
            piece["skipped"] += 1
            self.stats.drop("no command in force")
            return
        result = self.assembler.assemble(t_ns * 1e-9)
        if result.observation is None:
            piece["skipped"] += 1
            self.stats.drop(result.reason)
            return
        obs = result.observation
        self.stats.frame(obs, self.reference)
        for name, frames in piece["images"].items():
            frames.append(obs.images[name])
        piece["states"].append(obs.state)
        piece["actions"].append(self.command)
        if piece["goal"] is None:
            piece["goal"] = self.assembler.goal

    def advance(self, t_ns: int) -> None:
        """Run every tick strictly before ``t_ns``; close the windows that ended before it."""
        while self.w < len(self.windows):
            end = self.windows[self.w].end_ns
            while self.next_tick is not None and self.next_tick < t_ns and self.next_tick <= end:
                self._tick(self.next_tick)
                self.next_tick += self.period_ns
            if t_ns <= end:
                return
            self.w += 1  # this window is over: the next one starts at its first command
            self.next_tick = None

    def finish(self, last_ns: int) -> None:
        self.advance(last_ns + 1)

    def command_at(self, command: np.ndarray, t_ns: int) -> None:
        self.command, self.command_ns = command, t_ns
        if (self.next_tick is None and self.w < len(self.windows)
                and self.windows[self.w].holds(t_ns)):
            self.next_tick = t_ns


def bag_custom_data(reader: Any) -> dict[str, str]:
    """The ``custom_data`` of an open bag's metadata.yaml (rosbag2 version 6 and later)."""
    metadata = getattr(getattr(reader, "storage", None), "metadata", None)
    return dict(getattr(metadata, "custom", None) or {})


def read_episodes(bag: Path | str, contract: Contract,
                  stats: ConversionStats | None = None) -> list[Episode]:
    """Decode one bag into its episodes (one, unless the contract cuts it); raises ``BagError``.

    ``stats`` collects what every tick did, for ``vla-eqm contract check``.
    """
    from rosbags.rosbag2 import Reader

    from vla_eqm_sim.bag_types import typestore_for

    bag = Path(bag)
    stats = stats if stats is not None else ConversionStats()
    inputs = {t for t, _ in contract.input_topics()}
    action_topic = contract.action.topic
    info: dict[str, Any] = {}
    topic = "-"
    try:
        reader = Reader(bag)
        reader.open()
    except Exception as exc:  # rosbags raises several types for unreadable bags
        problem = f"corrupt or unreadable bag ({type(exc).__name__}: {exc})"
        raise BagError(bag, "-", problem) from exc
    try:
        present = {c.topic: c.msgtype for c in reader.connections}
        _check_topics(bag, present, contract)
        store = typestore_for(reader.connections)

        def read(name: str):
            conns = [c for c in reader.connections if c.topic == name]
            for conn, t_ns, raw in reader.messages(connections=conns):
                yield t_ns, store.deserialize_cdr(raw, conn.msgtype)

        windows = find_windows(contract, present, read, WHOLE_BAG.end_ns)
        last_ns = 0
        cutter = _Cutter(contract, windows, stats)
        wanted = [c for c in reader.connections
                  if c.topic in inputs or c.topic in (action_topic, EPISODE_INFO_TOPIC)]
        for conn, t_ns, raw in reader.messages(connections=wanted):
            topic, last_ns = conn.topic, t_ns
            cutter.advance(t_ns)  # ticks strictly before this message see everything up to now
            msg = store.deserialize_cdr(raw, conn.msgtype)
            if topic == EPISODE_INFO_TOPIC:
                info = json.loads(msg.data)
            elif topic == action_topic:
                cutter.command_at(decode_command(msg, contract), t_ns)
            else:
                cutter.assembler.feed(topic, msg, t_ns * 1e-9)
        cutter.finish(last_ns)
        custom = bag_custom_data(reader)
    except BagError:
        raise
    except EpisodeSplitError as exc:
        raise BagError(bag, exc.topic, exc.problem) from exc
    except DecodeError as exc:
        raise BagError(bag, topic, f"cannot decode: {exc.reason}") from exc
    except Exception as exc:
        raise BagError(bag, topic, f"corrupt or unreadable ({type(exc).__name__}: {exc})") from exc
    finally:
        reader.close()
    return _episodes(bag, contract, windows, cutter.pieces, info, custom, stats)


def _episodes(bag: Path, contract: Contract, windows: list[Window], pieces: list[dict[str, Any]],
              info: dict[str, Any], custom: dict[str, str] | None,
              stats: ConversionStats) -> list[Episode]:
    kept = [(w, p) for w, p in zip(windows, pieces, strict=True) if p["actions"]]
    stats.windows += len(windows)
    stats.empty_windows += len(windows) - len(kept)
    if not kept:
        skipped = sum(p["skipped"] for p in pieces)
        where = ("no control tick" if len(windows) <= 1
                 else f"no tick of the {len(windows)} episodes")
        raise BagError(bag, contract.action.topic,
                       f"{where} produced an observation ({skipped} ticks skipped)")
    try:
        goals = instructions_for(contract, bag, custom, [w for w, _ in kept],
                                 [p["goal"] for _, p in kept])
    except EpisodeSplitError as exc:
        raise BagError(bag, exc.topic, exc.problem) from exc
    out = []
    for k, ((window, piece), goal) in enumerate(zip(kept, goals, strict=True)):
        ep_info = dict(info)
        if window is not WHOLE_BAG:
            ep_info.update(segment=k, start_s=window.start_ns * 1e-9,
                           end_s=window.end_ns * 1e-9)
        out.append(Episode(
            bag=str(bag),
            images={k: np.stack(v) for k, v in piece["images"].items()},
            state=np.stack(piece["states"]).astype(np.float32),
            actions=np.stack(piece["actions"]).astype(np.float32),
            goal=goal, info=ep_info, skipped_ticks=piece["skipped"]))
    return out


def read_episode(bag: Path | str, contract: Contract) -> Episode:
    """The one episode of a bag (our recorder's layout); a bag that holds several is an error."""
    episodes = read_episodes(bag, contract)
    if len(episodes) != 1:
        raise BagError(bag, "-", f"holds {len(episodes)} episodes; use read_episodes")
    return episodes[0]
