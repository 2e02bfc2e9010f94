"""MT50 scoring as the published table reports it, and the markdown that puts our rows beside it.

The headline (``group_mean``) is the mean of the four difficulty-group means (pi-rl.txt, Table 4,
after SmolVLA), so a hard task weighs more than an easy one; ``episode_mean`` is the plain mean
over all episodes, reported beside it. Episodes end at the first success (the bridge's
``end_on_success``, as LeRobot's Meta-World env terminates), so the step count of a successful
episode is the step it succeeded at, and success within a shorter limit (RLinf's evaluation
config uses 100 steps) comes from the same episodes at no extra cost.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vla_eqm_sim.suites import GROUPS, group_of, published_results


def suite_metrics(records: list[dict[str, Any]], tasks: list[str],
                  within_steps: int | None = None) -> dict[str, Any]:
    """``per_task`` success, ``group_success`` per difficulty group (groups with no task
    evaluated are left out), ``group_mean`` over the groups evaluated, ``episode_mean``.
    ``within_steps``: count a success only if it came by that step."""

    def ok(r: dict[str, Any]) -> bool:
        return bool(r["success"]) and (within_steps is None or int(r["steps"]) <= within_steps)

    per_task = {}
    for task in tasks:
        rs = [r for r in records if r["task"] == task]
        per_task[task] = float(np.mean([ok(r) for r in rs])) if rs else 0.0
    group_success = _group_success(per_task)
    mine = [r for r in records if r["task"] in per_task]
    return {
        "per_task": per_task,
        "group_success": group_success,
        "group_mean": float(np.mean(list(group_success.values()))) if group_success else None,
        "groups_complete": set(group_success) == set(GROUPS),
        "episode_mean": float(np.mean([ok(r) for r in mine])) if mine else None,
    }


def _group_success(per_task: dict[str, float]) -> dict[str, float]:
    """Mean success per difficulty group, over the groups with a task in ``per_task``."""
    out = {}
    for g in GROUPS:
        rates = [v for t, v in per_task.items() if _group(t) == g]
        if rates:
            out[g] = float(np.mean(rates))
    return out


def group_mean_intervals(runs: dict[str, list[dict[str, Any]]], tasks: list[str],
                         resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """95 % bootstrap intervals of each run's ``group_mean`` and of every paired difference.

    Episodes are resampled within each task, and with the same draws for every run: the runs
    played the same start states (task, variation, seed), so a difference's interval is paired
    and narrower than two separate intervals suggest. Only start states every run has count.
    The intervals cover episode noise, not training seeds."""
    rng = np.random.default_rng(seed)
    names = list(runs)
    success: dict[str, dict[str, np.ndarray]] = {n: {} for n in names}
    for task in tasks:
        by_run = {n: {(r["variation"], r["seed"]): bool(r["success"]) for r in runs[n]
                      if r["task"] == task} for n in names}
        shared = sorted(set.intersection(*(set(v) for v in by_run.values())))
        if shared:
            for n in names:
                success[n][task] = np.array([by_run[n][k] for k in shared], float)
    used = [t for t in tasks if t in success[names[0]]]

    def group_mean(rates: dict[str, float]) -> float:
        return float(np.mean(list(_group_success(rates).values())))

    draws: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(resamples):
        idx = {t: rng.integers(0, len(success[names[0]][t]), len(success[names[0]][t]))
               for t in used}
        for n in names:
            draws[n].append(group_mean({t: float(success[n][t][idx[t]].mean()) for t in used}))

    def ci(values: list[float] | np.ndarray) -> list[float]:
        return [round(float(v), 4) for v in np.percentile(values, [2.5, 97.5])]

    return {"resamples": resamples, "tasks": len(used),
            "episodes_per_run": int(sum(len(success[names[0]][t]) for t in used)),
            "group_mean_ci95": {n: ci(draws[n]) for n in names},
            "paired_difference_ci95": {f"{b}-{a}": ci(np.subtract(draws[b], draws[a]))
                                       for i, a in enumerate(names) for b in names[i + 1:]}}


def _group(task: str) -> str | None:
    try:
        return group_of(task)
    except ValueError:
        return None


def markdown_table(ours: list[dict[str, Any]]) -> str:
    """The published MT50 rows and ours (``{"policy": name, "group_success": {...},
    "group_mean": x, "episode_mean": y, "episodes": n}``; fractions), in percent."""
    published = published_results()
    head = ("| policy | easy | medium | hard | very hard | avg (group mean) | episode mean |"
            " source |\n|---|---|---|---|---|---|---|---|")
    lines = [head]
    for row in published["rows"]:
        cells = [f"{row[g]:.1f}" for g in GROUPS]
        lines.append(f"| {row['policy']} | " + " | ".join(cells) + f" | {row['avg']:.1f} | – |"
                     " published |")
    for row in ours:
        gs = row["group_success"]
        cells = [f"{100 * gs[g]:.1f}" if g in gs else "–" for g in GROUPS]
        mean = "–" if row["group_mean"] is None else f"**{100 * row['group_mean']:.1f}**"
        ep = "–" if row["episode_mean"] is None else f"{100 * row['episode_mean']:.1f}"
        lines.append(f"| {row['policy']} | " + " | ".join(cells) + f" | {mean} | {ep} | "
                     f"{row.get('source', 'ours')} |")
    lines.append("")
    lines.append(f"Published rows: {published['source']}.")
    return "\n".join(lines) + "\n"
