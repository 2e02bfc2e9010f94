"""Compare a live replay's outputs with the recording: errors, decoder cost and end-to-end latency.

Three views, each with its own alignment, all in the bag's time base:

- commands, time-aligned: a live command received at bag time t is compared with the recorded
  command in force at t (the newest one stamped at or before t and younger than one control
  period, the rule ``bags.read_episodes`` labels with). Latency is part of this error, as on a
  robot.
- chunks, observation-aligned: ``~/action_chunk`` carries the stamp of the observation it was
  decoded from, so row i is compared with the recorded command at stamp + i periods, exactly like
  offline replay (first action and whole chunk, masked at the episode end), paired with the
  ``~/decoder_status`` of the same stamp for iterations, residual, stop reason and decode time.
- end-to-end latency of each decode: receipt of the command published in that cycle (the last
  command received before the cycle's decoder status) minus the wall time at which the player
  published the last message of the observation (header stamp) it was decoded from.
"""

from __future__ import annotations

import bisect
from pathlib import Path
from typing import Any

import numpy as np

from vla_eqm_ros.contract import Contract
from vla_eqm_ros.decode import decode_command
from vla_eqm_train.evaluation.bag.metrics import (
    aggregate_cycles,
    boundary_jump,
    chunk_error,
    first_action_error,
    mean,
    percentile,
)

STATUS_TYPE = "vla_eqm_msgs/msg/DecoderStatus"
CHUNK_TYPE = "vla_eqm_msgs/msg/ActionChunk"


def _stamp_ns(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 10**9 + int(msg.header.stamp.nanosec)


def recorded_commands(bag: Path, contract: Contract) -> tuple[np.ndarray, np.ndarray]:
    """(bag times ns (N,), actions (N, d)) of the recorded command topic, in time order."""
    from rosbags.rosbag2 import Reader

    from vla_eqm_sim.bag_types import make_typestore

    store = make_typestore()
    times, actions = [], []
    with Reader(bag) as reader:
        conns = [c for c in reader.connections if c.topic == contract.action.topic]
        for conn, t_ns, raw in reader.messages(connections=conns):
            times.append(t_ns)
            actions.append(decode_command(store.deserialize_cdr(raw, conn.msgtype), contract))
    order = np.argsort(times, kind="stable")
    return (np.asarray(times, np.int64)[order],
            np.asarray(actions, np.float32).reshape(len(times), contract.action_dim)[order])


def _nearest(times: np.ndarray, t: int, tolerance: int) -> int | None:
    i = int(np.searchsorted(times, t))
    best = min((j for j in (i - 1, i) if 0 <= j < len(times)),
               key=lambda j: abs(int(times[j]) - t), default=None)
    return best if best is not None and abs(int(times[best]) - t) <= tolerance else None


def _command_errors(commands: list[tuple[float, np.ndarray]], times: np.ndarray,
                    rec: np.ndarray, period_ns: int, bag_time_at: Any) -> dict[str, Any]:
    """Time-aligned errors of the live commands (none compared: null errors, not a crash)."""
    errors = []
    for wall, action in commands:
        t = bag_time_at(wall)
        i = int(np.searchsorted(times, t, side="right")) - 1
        if i < 0 or t - int(times[i]) >= period_ns:
            continue  # no recorded command in force then (before the start or after the end)
        errors.append(first_action_error(action[None, :], rec[i]))
    abs_err = np.array([e["abs"] for e in errors], np.float64).reshape(len(errors),
                                                                       rec.shape[1])
    return {"count": len(commands), "compared": len(errors),
            "l1": mean(e["l1"] for e in errors), "l2": mean(e["l2"] for e in errors),
            "l1_per_dim": abs_err.mean(axis=0).tolist() if errors else None,
            "l2_per_dim": np.sqrt((abs_err ** 2).mean(axis=0)).tolist() if errors else None}


def compare_live(bag: Path, contract: Contract, received: list[tuple[str, str, float, bytes]],
                 played: Any, bag_time_at: Any) -> dict[str, Any]:
    """Metrics of one live episode; ``received``: (topic, type, wall receipt, CDR) in order."""
    from vla_eqm_sim.bag_types import make_typestore

    store = make_typestore()
    times, rec = recorded_commands(bag, contract)
    period_ns = int(round(contract.control_period * 1e9))
    commands: list[tuple[float, np.ndarray]] = []
    statuses: list[tuple[float, int, Any]] = []
    chunks: list[tuple[int, np.ndarray]] = []
    for topic, msgtype, wall, data in received:
        msg = store.deserialize_cdr(data, msgtype)
        if topic == contract.action.topic:
            commands.append((wall, decode_command(msg, contract)))
        elif msgtype == STATUS_TYPE:
            statuses.append((wall, _stamp_ns(msg), msg))
        elif msgtype == CHUNK_TYPE:
            chunk = np.asarray(msg.data, np.float64).reshape(int(msg.horizon), int(msg.action_dim))
            chunks.append((_stamp_ns(msg), chunk))
    by_stamp = {stamp: msg for _, stamp, msg in statuses}
    cycles = []
    prev: np.ndarray | None = None
    prev_tick: int | None = None
    for stamp, chunk in sorted(chunks, key=lambda c: c[0]):
        i = _nearest(times, stamp, period_ns // 2)
        if i is None:
            continue  # decoded from an observation after the last recorded command
        st = by_stamp.get(stamp)
        cycles.append({
            "tick": i, "stamp_ns": stamp, "first": first_action_error(chunk, rec[i]),
            "chunk": chunk_error(chunk, rec, i), "jump": boundary_jump(prev, prev_tick, chunk, i),
            "iterations": None if st is None else int(st.iterations),
            "residual": None if st is None else float(st.residual),
            "stop_reason": "" if st is None else str(st.stop_reason),
            "warm_start_used": False if st is None else bool(st.warm_start_used),
            "decode_ms": None if st is None else float(st.prefix_ms + st.solve_ms)})
        prev, prev_tick = chunk, i
    command_walls = [w for w, _ in commands]
    latency = []
    for wall, stamp, _ in statuses:
        k = bisect.bisect_right(command_walls, wall) - 1
        published = played.stamp_wall.get(stamp)
        if k >= 0 and published is not None and command_walls[k] >= published:
            latency.append((command_walls[k] - published) * 1e3)
    return {
        "recorded_commands": len(times),
        "commands": _command_errors(commands, times, rec, period_ns, bag_time_at),
        "chunks": aggregate_cycles(cycles),
        "cycles": cycles,
        "decoder_status": len(statuses),
        "latency_ms": {"n": len(latency), "mean": mean(latency),
                       "p50": percentile(latency, 50), "p95": percentile(latency, 95),
                       "max": max(latency, default=None), "values": latency},
    }
