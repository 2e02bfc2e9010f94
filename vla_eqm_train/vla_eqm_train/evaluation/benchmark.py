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
    group_success = {}
    for g in GROUPS:
        rates = [v for t, v in per_task.items() if _group(t) == g]
        if rates:
            group_success[g] = float(np.mean(rates))
    mine = [r for r in records if r["task"] in per_task]
    return {
        "per_task": per_task,
        "group_success": group_success,
        "group_mean": float(np.mean(list(group_success.values()))) if group_success else None,
        "groups_complete": set(group_success) == set(GROUPS),
        "episode_mean": float(np.mean([ok(r) for r in mine])) if mine else None,
    }


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
