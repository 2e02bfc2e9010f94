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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla_eqm_ros.contract import Contract
from vla_eqm_ros.decode import DecodeError, ObservationAssembler, decode_command

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


def _typestore():
    from vla_eqm_sim.bag_types import make_typestore

    return make_typestore()


def _check_topics(bag: Path, present: dict[str, str], contract: Contract) -> None:
    """Every contract topic must be in the bag with the contract's message type."""
    wanted = contract.input_topics() + [(contract.action.topic, contract.action.ros_type)]
    for topic, msgtype in wanted:
        if topic not in present:
            raise BagError(bag, topic, f"missing from the bag (it has {sorted(present)})")
        if present[topic] != msgtype:
            raise BagError(bag, topic, f"contract mismatch: the bag stores {present[topic]}, "
                                       f"the contract expects {msgtype}")


def read_episode(bag: Path | str, contract: Contract) -> Episode:
    """Decode one bag into an ``Episode``; raises ``BagError`` on any problem."""
    from rosbags.rosbag2 import Reader

    bag = Path(bag)
    store = _typestore()
    assembler = ObservationAssembler(contract, history=8)
    inputs = {t for t, _ in contract.input_topics()}
    action_topic = contract.action.topic
    period_ns = int(round(contract.control_period * 1e9))
    images: dict[str, list[np.ndarray]] = {c: [] for c in contract.camera_names}
    states: list[np.ndarray] = []
    actions: list[np.ndarray] = []
    info: dict[str, Any] = {}
    command: np.ndarray | None = None
    command_ns = 0
    next_tick: int | None = None
    last_ns = 0
    skipped = 0
    topic = "-"

    def tick(t_ns: int) -> None:
        nonlocal skipped
        if t_ns - command_ns >= period_ns:  # no command in force (e.g. the final observation)
            skipped += 1
            return
        result = assembler.assemble(t_ns * 1e-9)
        if result.observation is None:
            skipped += 1
            return
        obs = result.observation
        for name in images:
            images[name].append(obs.images[name])
        states.append(obs.state)
        actions.append(command)  # type: ignore[arg-type]

    try:
        reader = Reader(bag)
        reader.open()
    except Exception as exc:  # rosbags raises several types for unreadable bags
        problem = f"corrupt or unreadable bag ({type(exc).__name__}: {exc})"
        raise BagError(bag, "-", problem) from exc
    try:
        present = {c.topic: c.msgtype for c in reader.connections}
        _check_topics(bag, present, contract)
        wanted = [c for c in reader.connections
                  if c.topic in inputs or c.topic in (action_topic, EPISODE_INFO_TOPIC)]
        for conn, t_ns, raw in reader.messages(connections=wanted):
            topic, last_ns = conn.topic, t_ns
            # Ticks strictly before this message's time see every message up to now.
            while next_tick is not None and next_tick < t_ns:
                tick(next_tick)
                next_tick += period_ns
            msg = store.deserialize_cdr(raw, conn.msgtype)
            if topic == EPISODE_INFO_TOPIC:
                info = json.loads(msg.data)
            elif topic == action_topic:
                command, command_ns = decode_command(msg, contract), t_ns
                if next_tick is None:
                    next_tick = t_ns
            else:
                assembler.feed(topic, msg, t_ns * 1e-9)
        while next_tick is not None and next_tick <= last_ns:
            tick(next_tick)
            next_tick += period_ns
    except BagError:
        raise
    except DecodeError as exc:
        raise BagError(bag, topic, f"cannot decode: {exc.reason}") from exc
    except Exception as exc:
        raise BagError(bag, topic, f"corrupt or unreadable ({type(exc).__name__}: {exc})") from exc
    finally:
        reader.close()
    if not actions:
        raise BagError(bag, action_topic, "no control tick produced an observation "
                                          f"({skipped} ticks skipped)")
    return Episode(
        bag=str(bag),
        images={k: np.stack(v) for k, v in images.items()},
        state=np.stack(states).astype(np.float32),
        actions=np.stack(actions).astype(np.float32),
        goal=assembler.goal or contract.goal.default,
        info=info,
        skipped_ticks=skipped,
    )
