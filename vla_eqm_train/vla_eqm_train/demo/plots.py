"""The demo's plots of solver depth: iterations per cycle and every residual trace."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vla_eqm_train.demo.timeline import Decode

TASK_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
               "tab:pink", "tab:gray", "tab:olive", "tab:cyan")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(fig, out: Path, caption: str, title: str) -> Path:
    plt = _plt()
    fig.suptitle(title, fontsize=12)
    fig.text(0.5, 0.005, caption, ha="center", va="bottom", fontsize=7.5, wrap=True)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _task_colors(tasks: dict[int, str]) -> dict[str, str]:
    names = list(dict.fromkeys(tasks.values()))
    return {t: TASK_COLORS[i % len(TASK_COLORS)] for i, t in enumerate(names)}


def plot_iterations(path: Path, decodes: Sequence[Decode], tasks: dict[int, str],
                    caption: str) -> Path:
    """Solver iterations per control cycle, one line per episode, colored by task; cold solves
    (the first of an episode) are marked."""
    plt = _plt()
    colors = _task_colors(tasks)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    labelled: set[str] = set()
    for ep, task in tasks.items():
        ds = [d for d in decodes if d.episode == ep]
        if not ds:
            continue
        x = np.arange(len(ds))
        ax.plot(x, [d.iterations for d in ds], "-", lw=1.2, alpha=0.8, color=colors[task],
                label=None if task in labelled else task)
        labelled.add(task)
        cold = [i for i, d in enumerate(ds) if not d.warm]
        ax.plot(cold, [ds[i].iterations for i in cold], "o", ms=4, mfc="none",
                color=colors[task])
    ax.plot([], [], "o", ms=4, mfc="none", color="black", label="cold start")
    ax.set_xlabel("decode index within the episode (one per solve)")
    ax.set_ylabel("solver iterations")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="task")
    return _finish(fig, path, caption, "Iterations per control cycle")


def plot_residual_traces(path: Path, decodes: Sequence[Decode], tasks: dict[int, str],
                         caption: str) -> Path:
    """Every solve's residual trace r_k (log scale) with the stop threshold tau."""
    plt = _plt()
    colors = _task_colors(tasks)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    labelled: set[str] = set()
    alpha = float(np.clip(12.0 / max(1, len(decodes)), 0.12, 0.9))
    for d in decodes:
        trace = [r for r in d.trace if r > 0 and np.isfinite(r)]
        if not trace:
            continue
        task = tasks.get(d.episode, "?")
        ax.semilogy(np.arange(len(trace)), trace, lw=0.9, alpha=alpha,
                    color=colors.get(task, "black"),
                    label=None if task in labelled else task)
        labelled.add(task)
    for tau in sorted({d.tau for d in decodes if d.tau > 0}):
        ax.axhline(tau, color="black", ls="--", lw=1, label=f"tau = {tau:g}")
    ax.set_yscale("log")
    ax.set_xlabel("iteration k")
    ax.set_ylabel("residual r_k = ||f|| / sqrt(H d)")
    ax.grid(alpha=0.3, which="both")
    if labelled:
        leg = ax.legend(fontsize=8)
        for line in leg.get_lines():
            line.set_alpha(1.0)
    return _finish(fig, path, caption, "Residual traces of every solve")


def caption(episodes: int, seed: int, decodes: Sequence[Decode], checkpoint: str = "") -> str:
    taus = sorted({d.tau for d in decodes})
    tau = ", ".join(f"{t:g}" for t in taus) or "-"
    head = f"{Path(checkpoint).name} | " if checkpoint else ""
    return (f"{head}{episodes} episode(s), variation seed {seed} | {len(decodes)} solves | "
            f"tau = {tau}")
