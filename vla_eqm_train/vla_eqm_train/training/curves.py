"""Loss curves as a PNG: training loss (raw and smoothed) and validation losses against steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    if len(y) < window or window <= 1:
        return y
    kernel = np.ones(window) / window
    return np.convolve(y, kernel, mode="valid")


def plot_curves(history: dict[str, list[list[float]]], path: Path, title: str = "") -> Path:
    """history: name -> [[step, value], ...]; "train_loss" is drawn raw + smoothed, the rest as
    lines with markers. Uses the Agg backend: no display needed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for name, points in history.items():
        if not points:
            continue
        arr = np.asarray(points, dtype=np.float64)
        if name == "train_loss":
            ax.plot(arr[:, 0], arr[:, 1], color="0.8", lw=0.6, label="train loss")
            window = max(1, len(arr) // 50)
            sm = _smooth(arr[:, 1], window)
            ax.plot(arr[window - 1:, 0] if window > 1 else arr[:, 0], sm, color="C0",
                    label=f"train loss (mean of {window})")
        else:
            ax.plot(arr[:, 0], arr[:, 1], marker="o", ms=3, label=name.replace("_", " "))
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
