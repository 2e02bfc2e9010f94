"""PNG plots of an eval-bag report, drawn from ``report.json`` alone (so they can be redrawn).

error vs tau, iterations vs tau, cold vs warm iteration histograms, residual traces of a few
decodes, boundary jumps over time, and error vs iterations (the paper's stationarity-executability
question, offline: does the lowest residual execute best?). Every figure carries a caption with the
episode count, the tasks and how the noise was seeded.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

MODE_COLORS = {"none": "tab:blue", "copy": "tab:orange", "shifted": "tab:green",
               "frozen": "tab:purple", "fm": "tab:red"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _caption(report: dict[str, Any]) -> str:
    ok = report["bags"]["ok"]
    demo_seeds = sorted({e.get("seed") for e in report["episodes"] if e.get("seed") is not None})
    return (f"{Path(report['checkpoint']).name} | {ok} episode(s): {', '.join(report['tasks'])} | "
            f"demo seeds {demo_seeds} | noise seed = crc32(bag name|decoder), same for all "
            f"settings")


def _short(name: str) -> str:
    """``task__varVV__seedS`` -> ``task varVV`` (legends stay short and distinct)."""
    parts = name.split("__")
    return f"{parts[0][:22]} {parts[1]}" if len(parts) >= 2 else name[:30]


def _runs(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """setting name -> cycles of every episode that replayed fully (in episode order)."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in report["episodes"]:
        for name, r in e.get("settings", {}).items():
            if r["status"] == "ok":
                out[name].extend(r["cycles"])
    return out


def _x_of(setting: dict[str, Any]) -> float:
    return setting["tau"] if setting["decoder"] == "eqm" else setting["fm_steps"]


def _group(setting: dict[str, Any]) -> str:
    return setting["warm_start"] if setting["decoder"] == "eqm" else "fm"


def _series(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """warm-start mode -> settings sorted by x (tau or FM steps)."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in report["settings"]:
        groups[_group(s)].append(s)
    return {g: sorted(v, key=_x_of) for g, v in groups.items()}


def _xlabel(report: dict[str, Any]) -> str:
    return "tau (EqM stop threshold, log scale)" if report["decoder"] == "eqm" else "FM steps"


def _finish(fig, report: dict[str, Any], out: Path, name: str, title: str) -> str:
    fig.suptitle(title, fontsize=12)
    fig.text(0.5, 0.005, _caption(report), ha="center", va="bottom", fontsize=7.5, wrap=True)
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    fig.savefig(out / name, dpi=110)
    _plt().close(fig)
    return name


def plot_error_vs_tau(report: dict[str, Any], out: Path) -> str:
    plt = _plt()
    runs = _runs(report)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, label in ((axes[0], "first", "first-action L2 error"),
                           (axes[1], "chunk", "chunk L2 error (mean row norm)")):
        for mode, settings in _series(report).items():
            xs, mid, lo, hi = [], [], [], []
            for s in settings:
                vals = [c[key]["l2"] for c in runs.get(s["name"], [])]
                if vals:
                    xs.append(_x_of(s))
                    mid.append(np.mean(vals))
                    lo.append(np.percentile(vals, 25))
                    hi.append(np.percentile(vals, 75))
            if xs:
                ax.plot(xs, mid, "o-", color=MODE_COLORS.get(mode), label=f"{mode} (mean)")
                ax.fill_between(xs, lo, hi, color=MODE_COLORS.get(mode), alpha=0.15)
        if report["decoder"] == "eqm":
            ax.set_xscale("log")
        ax.set_xlabel(_xlabel(report))
        ax.set_ylabel(f"{label} [action units]")
        ax.grid(alpha=0.3)
        ax.legend(title="warm start (band: IQR over decodes)", fontsize=8)
    return _finish(fig, report, out, "error_vs_tau.png", "Action error vs tau")


def plot_iterations_vs_tau(report: dict[str, Any], out: Path) -> str:
    plt = _plt()
    runs = _runs(report)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for mode, settings in _series(report).items():
        xs, mean, lo, hi = [], [], [], []
        for s in settings:
            its = [c["iterations"] for c in runs.get(s["name"], [])]
            if its:
                xs.append(_x_of(s))
                mean.append(np.mean(its))
                lo.append(np.percentile(its, 5))
                hi.append(np.percentile(its, 95))
        if xs:
            ax.plot(xs, mean, "o-", color=MODE_COLORS.get(mode), label=f"{mode} (mean)")
            ax.fill_between(xs, lo, hi, color=MODE_COLORS.get(mode), alpha=0.15)
    ax.axhline(report["solver"]["k_max"], color="gray", ls=":", label="K_max")
    if report["decoder"] == "eqm":
        ax.set_xscale("log")
    ax.set_xlabel(_xlabel(report))
    ax.set_ylabel("solver iterations per decode")
    ax.grid(alpha=0.3)
    ax.legend(title="warm start (band: p5-p95)", fontsize=8)
    return _finish(fig, report, out, "iterations_vs_tau.png", "Iterations vs tau")


def plot_cold_warm_histograms(report: dict[str, Any], out: Path) -> str:
    """Per tau: iterations of cold decodes vs warm-started ones, per warm-start mode."""
    plt = _plt()
    runs = _runs(report)
    by_x: dict[float, list[dict[str, Any]]] = defaultdict(list)
    for s in report["settings"]:
        by_x[_x_of(s)].append(s)
    xs = sorted(by_x)
    fig, axes = plt.subplots(1, len(xs), figsize=(3.6 * len(xs) + 1, 3.8), squeeze=False)
    k_max = report["solver"]["k_max"]
    bins = np.arange(0.5, k_max + 1.5, max(1, k_max // 25))
    for ax, x in zip(axes[0], xs, strict=True):
        cold: list[int] = []
        warm: dict[str, list[int]] = defaultdict(list)
        for s in by_x[x]:
            for c in runs.get(s["name"], []):
                if c["warm_start_used"]:
                    warm[_group(s)].append(c["iterations"])
                else:
                    cold.append(c["iterations"])
        ax.hist(cold, bins=bins, color="tab:blue", alpha=0.55,
                label=f"cold (n={len(cold)}, p50={np.median(cold) if cold else 0:g})")
        for mode, its in warm.items():
            ax.hist(its, bins=bins, color=MODE_COLORS.get(mode), alpha=0.55,
                    label=f"warm {mode} (n={len(its)}, p50={np.median(its):g})")
        ax.set_title(f"tau={x:g}" if report["decoder"] == "eqm" else f"steps={x:g}")
        ax.set_xlabel("iterations")
        ax.set_ylabel("decodes")
        ax.legend(fontsize=7)
    return _finish(fig, report, out, "iterations_cold_vs_warm.png",
                   "Iterations of cold vs warm-started decodes")


def _first_ok_runs(report: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    for e in report["episodes"]:
        if e["status"] == "ok":
            return e, {n: r for n, r in e["settings"].items() if r["status"] == "ok"}
    return None, {}


def plot_residual_traces(report: dict[str, Any], out: Path) -> str:
    """Left: cold tau=0 probe solves to K_max; right: the replay's traces (cold and warm)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    taus = sorted({s["tau"] for s in report["settings"] if s.get("tau") is not None})
    ax = axes[0]
    drawn = 0
    for e in report["episodes"]:
        for p in e.get("probe") or []:
            if drawn >= 6:
                break
            ax.semilogy(range(1, len(p["residual"]) + 1), p["residual"],
                        label=f"{_short(e['name'])} t={p['tick']}")
            drawn += 1
    for t in taus:
        ax.axhline(t, color="gray", ls=":", lw=0.8)
    ax.set_title("cold probe solves (tau=0, to K_max); dotted: scanned tau")
    ax.set_xlabel("iteration k")
    ax.set_ylabel("residual r_k = ||f|| / sqrt(H d)")
    if drawn:
        ax.legend(fontsize=7)
    ax = axes[1]
    episode, runs = _first_ok_runs(report)
    if episode is not None and runs and taus:
        tau = taus[0]
        for r in runs.values():
            s = r["setting"]
            if s.get("tau") != tau:
                continue
            cycles = r["cycles"]
            for c in [cycles[0], cycles[min(1, len(cycles) - 1)], cycles[len(cycles) // 2]]:
                ax.semilogy(range(1, len(c["residual_trace"]) + 1), c["residual_trace"],
                            color=MODE_COLORS.get(_group(s)),
                            ls="-" if c["warm_start_used"] else "--",
                            label=f"{s['warm_start']} t={c['tick']}"
                                  f"{' warm' if c['warm_start_used'] else ' cold'}")
        ax.axhline(tau, color="gray", ls=":", lw=0.8)
        ax.set_title(f"replay decodes at tau={tau:g}, {_short(episode['name'])}")
        ax.legend(fontsize=7)
    ax.set_xlabel("iteration k")
    ax.set_ylabel("residual r_k")
    return _finish(fig, report, out, "residual_traces.png", "Residual traces of a few decodes")


def _reference_tau(report: dict[str, Any]) -> float | None:
    taus = sorted({s["tau"] for s in report["settings"] if s.get("tau") is not None})
    if not taus:
        return None
    return report["solver"]["tau"] if report["solver"]["tau"] in taus else taus[len(taus) // 2]


def plot_boundary_jumps(report: dict[str, Any], out: Path) -> str:
    plt = _plt()
    runs = _runs(report)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    episode, ep_runs = _first_ok_runs(report)
    tau = _reference_tau(report)
    period = report["control_period"]
    ax = axes[0]
    if episode is not None:
        for r in ep_runs.values():
            s = r["setting"]
            if s.get("tau") != tau:
                continue
            pts = [(c["tick"] * period, c["jump"]) for c in r["cycles"] if c["jump"] is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), "o-", ms=3, color=MODE_COLORS.get(_group(s)),
                        label=_group(s))
        ax.set_title(f"{_short(episode['name'])}, tau={tau if tau is not None else '-'}")
        ax.legend(title="warm start", fontsize=8)
    ax.set_xlabel("episode time [s]")
    ax.set_ylabel("boundary jump ||new[0] - planned|| [action units]")
    ax.grid(alpha=0.3)
    ax = axes[1]
    for mode, settings in _series(report).items():
        pts = [(_x_of(s), np.mean(js)) for s in settings
               if (js := [c["jump"] for c in runs.get(s["name"], []) if c["jump"] is not None])]
        if pts:
            ax.plot(*zip(*pts, strict=True), "o-", color=MODE_COLORS.get(mode), label=mode)
    if report["decoder"] == "eqm":
        ax.set_xscale("log")
    ax.set_xlabel(_xlabel(report))
    ax.set_ylabel("mean boundary jump [action units]")
    ax.set_title("all episodes")
    ax.grid(alpha=0.3)
    ax.legend(title="warm start", fontsize=8)
    return _finish(fig, report, out, "boundary_jumps.png", "Chunk-boundary jumps")


def plot_error_vs_iterations(report: dict[str, Any], out: Path) -> str:
    """Left: every decode (pooled over settings); right: per-iterate error and residual."""
    plt = _plt()
    runs = _runs(report)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    ax = axes[0]
    rng = np.random.default_rng(0)
    for s in report["settings"]:
        cyc = runs.get(s["name"], [])
        if cyc:
            its = np.array([c["iterations"] for c in cyc], float)
            ax.scatter(its + rng.uniform(-0.25, 0.25, its.size), [c["first"]["l2"] for c in cyc],
                       s=8, alpha=0.45, color=MODE_COLORS.get(_group(s)))
    for mode, color in MODE_COLORS.items():
        if any(_group(s) == mode for s in report["settings"]):
            ax.scatter([], [], color=color, label=mode)
    ax.set_xlabel("iterations used (jittered)")
    ax.set_ylabel("first-action L2 error")
    ax.set_title("every decode, pooled over settings")
    ax.legend(title="warm start", fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[1]
    twin = ax.twinx()
    drawn = 0
    for e in report["episodes"]:
        for p in e.get("probe") or []:
            if drawn >= 4:
                break
            k = np.arange(1, len(p["first_l2"]) + 1)
            line, = ax.plot(k, p["first_l2"], label=f"{_short(e['name'])} t={p['tick']}")
            twin.semilogy(k, p["residual"], ls=":", color=line.get_color())
            ax.axvline(p["argmin_residual"], color=line.get_color(), ls="--", lw=0.7)
            drawn += 1
    ax.set_xlabel("iteration k (cold solve, tau=0); dashed: k of the lowest residual")
    ax.set_ylabel("first-action L2 error of iterate k (solid)")
    twin.set_ylabel("residual r_k (dotted, log)")
    ax.set_title("does the lowest residual execute best?")
    if drawn:
        ax.legend(fontsize=7, loc="upper right")
    return _finish(fig, report, out, "error_vs_iterations.png", "Error vs iterations")


PLOTS = (plot_error_vs_tau, plot_iterations_vs_tau, plot_cold_warm_histograms,
         plot_residual_traces, plot_boundary_jumps, plot_error_vs_iterations)


def write_plots(report: dict[str, Any], out: Path) -> list[str]:
    """Draw every plot into ``out``; returns the file names (relative to ``out``)."""
    if not any(a.get("cycles") for a in report["aggregates"].values()):
        return []
    return [plot(report, Path(out)) for plot in PLOTS]
