"""Before/after on the same episodes: what a policy change gained, and how sure we are.

Two runs of eval-sim on the same start states (``episode_key``) differ mostly in the variations'
own difficulty at 20 episodes; pairing the episodes removes it. One place for the interval and
the test, so that every benchmark that says "paired 95 %" means the same computation.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vla_eqm_train.commands.eval_sim import episode_key


def bootstrap_ci(values: np.ndarray, rng: np.random.Generator, resamples: int) -> list[float]:
    """95 % percentile bootstrap interval of a mean over episodes ([] for no episodes)."""
    if len(values) == 0:
        return []
    draws = values[rng.integers(0, len(values), (resamples, len(values)))].mean(1)
    return [round(float(v), 4) for v in np.percentile(draws, [2.5, 97.5])]


def sign_test_p(up: int, down: int) -> float:
    """Two-sided exact sign test on the episodes that changed (ties, the unchanged, drop out)."""
    n, k = up + down, min(up, down)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0


def paired_success(before: list[dict[str, Any]], after: list[dict[str, Any]],
                   resamples: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """Success before and after on the episodes both runs have: the gain, its paired bootstrap
    95 % interval, the episodes that flipped each way and the sign test on them."""
    b = {episode_key(e): int(e["success"]) for e in before}
    a = {episode_key(e): int(e["success"]) for e in after}
    shared = sorted(set(b) & set(a))
    diff = np.array([a[k] - b[k] for k in shared])
    up, down = int((diff > 0).sum()), int((diff < 0).sum())
    return {"episodes": len(shared), "before": sum(b[k] for k in shared),
            "after": sum(a[k] for k in shared), "gain": round(float(diff.mean()), 4),
            "ci95": bootstrap_ci(diff, np.random.default_rng(seed), resamples),
            "flipped_up": up, "flipped_down": down,
            "sign_test_p": round(sign_test_p(up, down), 4)}
