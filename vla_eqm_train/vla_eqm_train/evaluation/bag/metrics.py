"""Action-error, continuity and cost metrics of bag replay, shared by the offline and live modes.

Definitions (all in physical action units, per action dimension where a vector is listed):

- first-action error of a decode at tick t: e = chunk[0] - recorded[t]. ``l1`` is the mean |e| over
  dimensions (a mean absolute error), ``l2`` the Euclidean norm ||e||_2, ``abs`` the vector |e|.
- chunk error: rows i = 0..n-1 of the chunk against recorded[t + i], n = min(H, T - t) (rows past
  the end of the episode are masked, never compared with the next episode). ``l1`` is the mean |e|
  over rows and dimensions, ``l2`` the mean over rows of the row norm ||e_i||_2, ``abs`` / ``sq``
  the per-dimension mean |e| and mean e^2 over the rows.
- boundary jump at a re-plan at tick t: ||new_chunk[0] - previous_chunk[t - t_prev]||_2, the same
  quantity the policy node reports at every hand-over (``vla_eqm_ros/execution.py``); none on the
  first decode of an episode or when the previous chunk no longer covers tick t.

Aggregates pool cycles: scalar errors are means over cycles; per-dimension ``l1`` is the mean |e|,
per-dimension ``l2`` the root mean square (chunk rows weighted by how many were compared).
Kept free of rclpy and torch (numpy only) so both modes and the report use one definition.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def first_action_error(chunk: np.ndarray, recorded: np.ndarray) -> dict[str, Any]:
    """Error of ``chunk[0]`` (H, d) against the recorded action (d,) of the same tick."""
    e = np.asarray(chunk[0], np.float64) - np.asarray(recorded, np.float64)
    return {"l1": float(np.mean(np.abs(e))), "l2": float(np.linalg.norm(e)),
            "abs": np.abs(e).tolist()}


def chunk_error(chunk: np.ndarray, recorded: np.ndarray, tick: int) -> dict[str, Any]:
    """Error of every chunk row against ``recorded`` (T, d) from ``tick`` on, masked at T."""
    n = min(len(chunk), len(recorded) - tick)
    if n <= 0:
        raise ValueError(f"tick {tick} lies past the episode's {len(recorded)} recorded actions")
    e = np.asarray(chunk[:n], np.float64) - np.asarray(recorded[tick:tick + n], np.float64)
    return {"l1": float(np.mean(np.abs(e))), "l2": float(np.mean(np.linalg.norm(e, axis=1))),
            "abs": np.mean(np.abs(e), axis=0).tolist(), "sq": np.mean(e * e, axis=0).tolist(),
            "rows": int(n)}


def boundary_jump(previous: np.ndarray | None, previous_tick: int | None, chunk: np.ndarray,
                  tick: int) -> float | None:
    """||chunk[0] - previous[tick - previous_tick]||_2, or None without a comparable row."""
    if previous is None or previous_tick is None:
        return None
    row = tick - previous_tick
    if not 0 <= row < len(previous):
        return None
    return float(np.linalg.norm(np.asarray(chunk[0], np.float64) - previous[row]))


def percentile(values: Sequence[float], q: float) -> float | None:
    """np.percentile that answers None (JSON null) for no values instead of a warning."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.percentile(vals, q)) if vals else None


def mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def _stats(values: Sequence[float]) -> dict[str, Any]:
    return {"n": len([v for v in values if v is not None]), "mean": mean(values),
            "p50": percentile(values, 50), "p95": percentile(values, 95),
            "max": max([v for v in values if v is not None], default=None)}


def aggregate_cycles(cycles: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pool per-cycle records (offline ``CycleRecord.to_dict()`` or live chunk records)."""
    if not cycles:
        return {"cycles": 0}
    first = [c["first"] for c in cycles]
    chunk = [c["chunk"] for c in cycles]
    rows = np.array([c["rows"] for c in chunk], np.float64)
    chunk_abs = np.array([c["abs"] for c in chunk], np.float64)
    chunk_sq = np.array([c["sq"] for c in chunk], np.float64)
    first_abs = np.array([f["abs"] for f in first], np.float64)
    iters = [c["iterations"] for c in cycles if c.get("iterations") is not None]
    cold = [c["iterations"] for c in cycles if c.get("iterations") is not None
            and not c.get("warm_start_used")]
    warm = [c["iterations"] for c in cycles if c.get("iterations") is not None
            and c.get("warm_start_used")]
    out: dict[str, Any] = {
        "cycles": len(cycles),
        "first_action": {
            "l1": mean(f["l1"] for f in first), "l2": mean(f["l2"] for f in first),
            "l1_per_dim": first_abs.mean(axis=0).tolist(),
            "l2_per_dim": np.sqrt((first_abs ** 2).mean(axis=0)).tolist(),
        },
        "chunk": {
            "l1": mean(c["l1"] for c in chunk), "l2": mean(c["l2"] for c in chunk),
            "l1_per_dim": (rows @ chunk_abs / rows.sum()).tolist(),
            "l2_per_dim": np.sqrt(rows @ chunk_sq / rows.sum()).tolist(),
        },
        "iterations": _stats(iters),
        "iterations_cold_p50": percentile(cold, 50),
        "iterations_warm_p50": percentile(warm, 50),
        "warm_cycles": len(warm),
        "residual_p50": percentile([c.get("residual", math.nan) for c in cycles], 50),
        "stop_reasons": dict(Counter(c.get("stop_reason", "") for c in cycles)),
        "jump": _stats([c["jump"] for c in cycles if c.get("jump") is not None]),
        "decode_ms": _stats([c["decode_ms"] for c in cycles if c.get("decode_ms") is not None]),
    }
    return out
