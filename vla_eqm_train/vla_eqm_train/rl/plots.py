"""The RL learning curve: success against environment steps, per task, train and held-out."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_curve(curve: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Held-out success (markers, the head's mean) and rollout success (thin line, exploring)
    per task against environment steps; written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    tasks = sorted({t for row in curve for t in row.get("eval", {}) | row.get("train", {})})
    for i, task in enumerate(tasks):
        color = f"C{i % 10}"
        ev = [(r["env_steps"], r["eval"][task]["success"]) for r in curve
              if task in r.get("eval", {})]
        tr = [(r["env_steps"], r["train"][task]["success"]) for r in curve
              if task in r.get("train", {})]
        if ev:
            ax.plot(*zip(*ev, strict=True), "o-", color=color, label=f"{task} (held-out, mean)")
        if tr:
            ax.plot(*zip(*tr, strict=True), "-", color=color, alpha=0.35, lw=1,
                    label=f"{task} (rollouts, exploring)")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
