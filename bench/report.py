"""The benchmark-suite report: metrics, analyses, plots and Markdown, from the summary JSON alone.

``bench/run_all.py`` runs the benches and collects their raw JSON into one summary dict; everything
here is a pure function of that dict (no sims, no ROS, no torch), so the report can be regenerated
from ``bench/results/<date>.json`` and tested on synthetic data
(``vla_eqm_train/test/test_run_all_report.py``).

Summary layout (what ``run_all.py`` writes; all fields optional unless a renderer needs them)::

    {"date", "created", "command", "git_commit", "machine": {...}, "config": {...},
     "estimate_s", "wall_s",
     "sections": {name: {"status": "ok" | "partial" | "failed" | "skipped" | "not run",
                         "reason", "wall_s", "load_start", "load_end", "command",
                         "runs": [{"key", "label", "series", "params", "command", "cached",
                                   "wall_s", "status", "error", "metrics"}],
                         "analysis": {...}}}}

A closed-loop run's ``metrics`` come from ``eval_metrics`` (eval-sim) or are the demo's JSON
(execution); decoder and latency runs carry their bench's JSON object as ``metrics``.
The verdicts (the tau-scan question, matched budgets) are computed from the numbers every time:
nothing in the text is written before the data is seen.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

SECTION_TITLES = {
    "latency": "Policy-node latency (live node, loopback DDS)",
    "decoder": "Decoder: solver latency and warm-start depth",
    "budget": "EqM vs FM at matched compute (closed loop)",
    "tau": "τ scan (closed loop)",
    "warm": "Warm-start ablation (closed loop)",
    "execution": "Sync vs async execution (policy node, closed loop)",
}
SERIES_STYLE = {"EqM": ("tab:blue", "o"), "FM": ("tab:red", "s")}
WARM_COLORS = {"none": "tab:blue", "copy": "tab:orange", "shifted": "tab:green"}
LATENCY_FIELDS = ("e2e_ms_p50", "e2e_ms_p99", "rate_hz", "iters_p50", "dropped_cycles",
                  "fifo_exact", "node_e2e_ms_p99", "node_transport_ms_p99",
                  "node_dispatch_ms_p99", "node_cycle_ms_p99", "node_solve_ms_p50",
                  "node_solve_ms_p99", "robot_publish_lag_ms_p99")
EXECUTION_FIELDS = ("success_rate", "episodes", "iters_p50", "decode_ms_p50",
                    "boundary_jump_p50", "boundary_jump_max", "holds", "dropped_cycles")


# ----------------------------------------------------------------------------- numbers


def finite(value: Any) -> Any:
    """JSON has no NaN/inf: they become null (and the Markdown prints '–')."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def fmt(value: Any, digits: int = 2) -> str:
    """A table cell: '–' for missing or non-finite values, ints stay ints."""
    if value is None or isinstance(value, bool):
        return "–" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}" if math.isfinite(value) else "–"
    return str(value)


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else float("nan")


def eval_metrics(report: dict[str, Any]) -> dict[str, Any]:
    """Success and decode cost of one eval-sim report, per task and pooled over tasks.

    eval-sim reports medians per task; the budget plot needs the *mean* iterations per decode
    (what compute a setting costs on average), so it is recomputed from the per-episode records
    when they are there, falling back to the per-task medians otherwise.
    """
    episodes = report.get("episodes") or []
    per_task: dict[str, dict[str, Any]] = {}
    all_iters: list[float] = []
    all_ms: list[float] = []
    for task, t in (report.get("tasks") or {}).items():
        recs = [e for e in episodes if e.get("task") == task]
        iters = [float(i) for e in recs for i in e.get("iterations", [])]
        ms = [float(m) for e in recs for m in e.get("decode_ms", [])]
        all_iters += iters
        all_ms += ms
        per_task[task] = {
            "success_rate": t.get("success_rate"),
            "successes": t.get("successes"),
            "episodes": t.get("episodes"),
            "iters_mean": float(np.mean(iters)) if iters else t.get("iters_p50"),
            "iters_p50": t.get("iters_p50"),
            "decode_ms_p50": float(np.median(ms)) if ms else t.get("decode_ms_p50"),
            "steps_p50": t.get("steps_p50"),
            "errors": len(t.get("errors") or []),
        }
    rates = [_num(v["success_rate"]) for v in per_task.values()]
    iters_mean = float(np.mean(all_iters)) if all_iters else float(np.nanmean(
        [_num(v["iters_mean"]) for v in per_task.values()] or [float("nan")]))
    ms_p50 = float(np.median(all_ms)) if all_ms else float(np.nanmean(
        [_num(v["decode_ms_p50"]) for v in per_task.values()] or [float("nan")]))
    held = report.get("held_out") or {}
    return finite({
        "success": float(np.mean(rates)) if rates else None,
        "episodes": sum(int(v["episodes"] or 0) for v in per_task.values()),
        "iters_mean": iters_mean,
        "decode_ms_p50": ms_p50,
        "seed": held.get("seed"),
        "variation_start": held.get("variation_start", 0),
        "decoder_settings": report.get("decoder_settings"),
        "wall_s": report.get("wall_s"),
        "per_task": per_task,
    })


# ----------------------------------------------------------------------------- analyses


def curve_shape(ys: list[float]) -> str:
    """'flat', 'non-decreasing', 'non-increasing' or 'non-monotone' (ys ordered by x).

    Exact comparison on purpose: success rates are counts over the same episodes, so any change
    is a real change in outcomes; whether it is beyond sampling noise is judged separately.
    """
    d = np.diff(np.asarray(ys, dtype=float))
    up, down = bool(np.any(d > 1e-12)), bool(np.any(d < -1e-12))
    if up and down:
        return "non-monotone"
    return "non-decreasing" if up else "non-increasing" if down else "flat"


def two_se_of_difference(p: float, n: int) -> float:
    """Two standard errors of a difference of two success rates at p over n episodes each."""
    p = min(max(p, 0.5 / max(n, 1)), 1 - 0.5 / max(n, 1))  # never a zero-width band
    return 2.0 * math.sqrt(2.0 * p * (1.0 - p) / max(n, 1))


def tau_analysis(points: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per task: where success peaks over tau, the curve's shape, and the verdict across tasks.

    ``points``: task -> [{"tau", "success_rate", "episodes", "iters_mean", "decode_ms_p50"}].
    The paper's claim has two parts, tested separately: the optimum is *interior* (the success
    curve over tau is non-monotone with a peak strictly above both ends of the scanned range) and
    *task-dependent* (the best taus of different tasks do not overlap).
    """
    tasks: dict[str, dict[str, Any]] = {}
    for task, pts in points.items():
        pts = sorted((p for p in pts if p.get("success_rate") is not None),
                     key=lambda p: p["tau"])
        if not pts:
            continue
        taus = [float(p["tau"]) for p in pts]
        succ = [float(p["success_rate"]) for p in pts]
        n = int(min(int(p.get("episodes") or 0) for p in pts))
        best = max(succ)
        best_taus = [t for t, s in zip(taus, succ, strict=True) if s == best]
        ends = max(succ[0], succ[-1])
        interior = len(pts) >= 3 and best > ends
        margin = best - ends
        band = two_se_of_difference((best + ends) / 2, n)
        iters = [_num(p.get("iters_mean")) for p in pts]
        tasks[task] = {
            "taus": taus, "success": succ, "episodes": n,
            "iters_mean": iters, "decode_ms_p50": [_num(p.get("decode_ms_p50")) for p in pts],
            "best_taus": best_taus, "best_success": best, "shape": curve_shape(succ),
            "interior_optimum": interior, "peak_margin": margin,
            "peak_margin_episodes": round(margin * n, 3), "two_se": band,
            "beyond_noise": bool(interior and margin > band),
            # iterations should fall as tau loosens; a rise means the solver hit k_max differently
            "iters_shape": curve_shape([v for v in iters if math.isfinite(v)]),
        }
    names = list(tasks)
    disjoint = len(names) >= 2 and all(
        not set(tasks[a]["best_taus"]) & set(tasks[b]["best_taus"])
        for i, a in enumerate(names) for b in names[i + 1:])
    interior = [t for t in names if tasks[t]["interior_optimum"]]
    robust = [t for t in interior if tasks[t]["beyond_noise"]]
    if not names:
        verdict = "no data"
    elif interior and disjoint:
        verdict = "yes" if len(robust) == len(interior) else "yes, within noise"
    elif interior or disjoint:
        verdict = "partly"
    else:
        verdict = "no"
    return {"tasks": tasks, "task_dependent": disjoint, "interior_tasks": interior,
            "beyond_noise_tasks": robust, "verdict": verdict,
            "answer": _tau_answer(tasks, disjoint, interior, robust, verdict)}


def _taus(ts: list[float]) -> str:
    return ", ".join(f"{t:g}" for t in ts)


def _tau_answer(tasks: dict[str, dict[str, Any]], disjoint: bool, interior: list[str],
                robust: list[str], verdict: str) -> str:
    """The paragraph the Markdown prints under the question; every clause comes from the data."""
    if not tasks:
        return "No τ-scan data: the question cannot be answered from this run."
    lines = []
    for task, a in tasks.items():
        curve = ", ".join(f"{s:.2f}" for s in a["success"])
        detail = (f"an interior peak {a['peak_margin_episodes']:g} episode(s) above the better "
                  f"end point ({'beyond' if a['beyond_noise'] else 'within'} two standard errors "
                  f"at {a['episodes']} episodes)" if a["interior_optimum"]
                  else "no interior peak")
        lines.append(f"- **{task}**: success {curve} at τ = {_taus(a['taus'])}; best τ = "
                     f"{_taus(a['best_taus'])} ({a['best_success']:.2f}); the curve is "
                     f"{a['shape']}, {detail}.")
    if verdict == "partly" and interior:
        ties = "; ".join(f"{t}: {_taus(a['best_taus'])}" for t, a in tasks.items())
        why = (f", but the tasks' best τ sets overlap ({ties}), so task dependence is not "
               f"shown." if len(tasks) >= 2 else "; task dependence cannot be judged from one "
               "task.")
        partly = "The optimum is interior on " + ", ".join(interior) + why
    else:
        partly = ("The best τ differs between tasks, but every success curve is monotone or "
                  "flat over the scanned range (no interior optimum).")
    head = {
        "yes": "**Yes.** Success peaks inside the scanned τ range and the best τ differs "
               "between tasks, beyond sampling noise.",
        "yes, within noise": "**Yes in these numbers, but not conclusively.** Success peaks "
                             "inside the scanned range and the best τ differs between tasks, "
                             "but some peak margins are within sampling noise.",
        "partly": "**Partly.** " + partly,
        "no": "**No.** " + (
            "Every success curve is monotone or flat over the scanned range and the tasks share "
            "a best τ." if len(tasks) >= 2 else
            "Only one task was scanned and its success curve has no interior optimum."),
    }[verdict]
    return head + "\n\n" + "\n".join(lines)


def budget_analysis(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """For each FM setting, the best EqM setting that costs no more, in iterations and in ms.

    Matched budget means: the EqM setting's mean iterations per decode (or its median decode
    time) is at most the FM setting's. Reported both ways because an EqM iteration and an FM
    Euler step are one action-expert pass each, but the wall clock also sees the prefix and
    the machine's load.
    """
    ok = [r for r in runs if r.get("status") == "ok" and r.get("metrics")]
    eqm = [r for r in ok if r.get("series") == "EqM"]
    fm = [r for r in ok if r.get("series") == "FM"]
    rows = []
    for f in sorted(fm, key=lambda r: _num(r["metrics"].get("iters_mean"))):
        fmm = f["metrics"]
        row: dict[str, Any] = {"fm": f["label"], "fm_success": fmm.get("success"),
                               "fm_iters_mean": fmm.get("iters_mean"),
                               "fm_decode_ms_p50": fmm.get("decode_ms_p50")}
        for axis, field in (("iters", "iters_mean"), ("ms", "decode_ms_p50")):
            cand = [e for e in eqm if _num(e["metrics"].get(field)) <= _num(fmm.get(field))]
            best = max(cand, key=lambda e: (_num(e["metrics"].get("success")),
                                            -_num(e["metrics"].get(field))), default=None)
            row[f"eqm_at_{axis}"] = best["label"] if best else None
            row[f"eqm_at_{axis}_success"] = best["metrics"].get("success") if best else None
        rows.append(row)
    return {"matched": rows}


def analyze(summary: dict[str, Any]) -> dict[str, Any]:
    """Fill in each closed-loop section's ``analysis`` from its runs (idempotent)."""
    sections = summary.get("sections", {})
    if "tau" in sections:
        points: dict[str, list[dict[str, Any]]] = {}
        for r in sections["tau"].get("runs", []):
            if r.get("status") != "ok" or not r.get("metrics"):
                continue
            for task, t in r["metrics"].get("per_task", {}).items():
                points.setdefault(task, []).append({"tau": r["params"]["tau"], **t})
        sections["tau"]["analysis"] = tau_analysis(points)
    if "budget" in sections:
        sections["budget"]["analysis"] = budget_analysis(sections["budget"].get("runs", []))
    return summary


# ----------------------------------------------------------------------------- captions


def caption(section: dict[str, Any]) -> str:
    """Episode count and seeds of a closed-loop section, from its runs' parameters."""
    params = [r["params"] for r in section.get("runs", []) if r.get("params")]
    if not params:
        return ""
    p = params[0]
    n = int(p.get("episodes", 0))
    start = int(p.get("variation_start", 0))
    tasks = p.get("tasks", [])
    return (f"{n} episode(s) per task per setting on {len(tasks)} task(s) "
            f"({', '.join(tasks)}); held-out variation seed {p.get('seed')}, variations "
            f"{start}–{start + n - 1}; policy noise seed {p.get('policy_seed', 0)}; "
            f"max {p.get('max_steps')} steps")


# ----------------------------------------------------------------------------- plots


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path, name: str, title: str, cap: str) -> str:
    fig.suptitle(title, fontsize=11)
    fig.text(0.5, 0.005, cap, ha="center", va="bottom", fontsize=7, wrap=True)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / name, dpi=110)
    _plt().close(fig)
    return name


def _ok_runs(section: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in section.get("runs", []) if r.get("status") == "ok" and r.get("metrics")]


def plot_budget(section: dict[str, Any], out: Path) -> str | None:
    """Success vs mean iterations per decode and vs decode ms (p50): EqM and FM as two series."""
    runs = _ok_runs(section)
    if not runs:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, field, xlabel in ((axes[0], "iters_mean", "mean iterations per decode"),
                              (axes[1], "decode_ms_p50", "decode ms (p50)")):
        for series, (color, marker) in SERIES_STYLE.items():
            pts = sorted(((_num(r["metrics"].get(field)), _num(r["metrics"].get("success")),
                           r.get("short", r["label"])) for r in runs
                          if r.get("series") == series), key=lambda p: p[0])
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, color=color,
                    label=series, linestyle="-" if series == "FM" else ":")
            for x, y, lab in pts:
                ax.annotate(lab, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("success rate (mean over tasks)")
        ax.set_ylim(-0.05, 1.08)
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, out, "budget.png", "EqM vs FM at matched compute", caption(section))


def plot_tau(section: dict[str, Any], out: Path) -> str | None:
    """Success, iterations and decode ms against tau, one line per task."""
    a = section.get("analysis", {}).get("tasks", {})
    if not a:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for task, t in a.items():
        axes[0].plot(t["taus"], t["success"], marker="o", label=task)
        axes[1].plot(t["taus"], t["iters_mean"], marker="o", label=task)
        axes[2].plot(t["taus"], t["decode_ms_p50"], marker="o", label=task)
        for bt in t["best_taus"]:
            axes[0].plot([bt], [t["best_success"]], marker="*", markersize=14, color="gold",
                         markeredgecolor="k", zorder=5)
    from matplotlib.ticker import NullFormatter

    ticks = sorted({tau for t in a.values() for tau in t["taus"]})
    for ax, ylabel in zip(axes, ("success rate", "mean iterations per decode",
                                 "decode ms (p50)"), strict=True):
        ax.set_xscale("log")
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{tau:g}" for tau in ticks])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("τ (residual threshold)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylim(-0.05, 1.08)
    axes[0].legend(fontsize=8)
    k_max = next((r["params"].get("k_max") for r in section.get("runs", [])
                  if r.get("params")), None)
    return _save(fig, out, "tau_scan.png", f"τ scan (K_max {k_max}; ★ = best τ per task)",
                 caption(section))


def _grouped_bars(ax, groups: list[str], modes: list[str], values: dict[tuple[str, str], float],
                  colors: dict[str, str]) -> None:
    width = 0.8 / max(len(modes), 1)
    x = np.arange(len(groups))
    for i, m in enumerate(modes):
        ys = [values.get((g, m), float("nan")) for g in groups]
        ax.bar(x + (i - (len(modes) - 1) / 2) * width, ys, width, label=m,
               color=colors.get(m))
    ax.set_xticks(x)
    ax.set_xticklabels(groups, fontsize=8)
    ax.grid(alpha=0.3, axis="y")


def plot_warm(section: dict[str, Any], out: Path) -> str | None:
    """Success and mean iterations per warm-start mode, grouped by task."""
    runs = _ok_runs(section)
    if not runs:
        return None
    plt = _plt()
    modes = [r["params"]["warm_start"] for r in runs]
    tasks = list(dict.fromkeys(t for r in runs for t in r["metrics"]["per_task"]))
    succ = {(t, r["params"]["warm_start"]): _num(v["success_rate"])
            for r in runs for t, v in r["metrics"]["per_task"].items()}
    iters = {(t, r["params"]["warm_start"]): _num(v["iters_mean"])
             for r in runs for t, v in r["metrics"]["per_task"].items()}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    _grouped_bars(axes[0], tasks, modes, succ, WARM_COLORS)
    axes[0].set_ylabel("success rate")
    axes[0].set_ylim(0, 1.08)
    _grouped_bars(axes[1], tasks, modes, iters, WARM_COLORS)
    axes[1].set_ylabel("mean iterations per decode")
    axes[0].legend(title="warm start", fontsize=8)
    return _save(fig, out, "warm_start.png", "Warm-start ablation", caption(section))


def plot_execution(section: dict[str, Any], out: Path) -> str | None:
    """Success and chunk-boundary jumps, sync vs async."""
    runs = _ok_runs(section)
    if not runs:
        return None
    plt = _plt()
    names = [r["params"]["execution"] for r in runs]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.0))
    axes[0].bar(names, [_num(r["metrics"].get("success_rate")) for r in runs],
                color=["tab:blue", "tab:orange"][: len(runs)])
    axes[0].set_ylabel("success rate")
    axes[0].set_ylim(0, 1.08)
    x = np.arange(len(runs))
    axes[1].bar(x - 0.2, [_num(r["metrics"].get("boundary_jump_p50")) for r in runs], 0.4,
                label="p50")
    axes[1].bar(x + 0.2, [_num(r["metrics"].get("boundary_jump_max")) for r in runs], 0.4,
                label="max")
    axes[1].set_xticks(x)
    axes[1].set_xticklabels(names)
    axes[1].set_ylabel("boundary jump")
    axes[1].legend()
    for ax in axes:
        ax.grid(alpha=0.3, axis="y")
    return _save(fig, out, "execution.png", "Sync vs async execution", caption(section))


def plot_decoder(section: dict[str, Any], out: Path) -> str | None:
    """Iterations to tau and first-chunk error per warm-start mode (bench/decoder.py)."""
    runs = _ok_runs(section)
    if not runs:
        return None
    m = runs[0]["metrics"]
    modes = [k for k in ("cold", "copy", "shifted", "shifted_hold") if f"iters_{k}_p50" in m]
    if not modes:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    axes[0].bar(modes, [_num(m.get(f"iters_{k}_p50")) for k in modes], color="tab:blue")
    axes[0].set_ylabel("iterations to τ (p50)")
    axes[1].bar(modes, [_num(m.get(f"error_{k}_p50")) for k in modes], color="tab:green")
    axes[1].set_ylabel("chunk error, normalized RMS (p50)")
    for ax in axes:
        ax.grid(alpha=0.3, axis="y")
    cap = (f"{m.get('frames', 'replayed frames')}; {m.get('cycles_per_sequence')} cycles per "
           f"sequence; τ {m.get('tau')}, one step executed per cycle; torch seed 0")
    return _save(fig, out, "decoder.png", "Decoder: warm-start depth and error", cap)


PLOTTERS = {"decoder": plot_decoder, "budget": plot_budget, "tau": plot_tau,
            "warm": plot_warm, "execution": plot_execution}


def write_plots(summary: dict[str, Any], out: Path) -> dict[str, str]:
    """Section name -> PNG file name (inside ``out``), for the sections that have data."""
    done = {}
    for name, plotter in PLOTTERS.items():
        section = summary.get("sections", {}).get(name)
        if section:
            png = plotter(section, out)
            if png:
                done[name] = png
    return done


# ----------------------------------------------------------------------------- markdown


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in row) + " |"
            for row in rows]
    return out


def _commands(section: dict[str, Any], rerun: str) -> list[str]:
    """The exact commands behind a section's numbers, and the run_all line that redoes it."""
    lines = ["", "<details><summary>Commands (reproduce these numbers)</summary>", "", "```bash"]
    for r in section.get("runs", []):
        if r.get("command"):
            lines.append(r["command"])
    lines += ["```", "", f"Whole section: `{rerun}`", "", "</details>", ""]
    return lines


def _status_line(section: dict[str, Any]) -> list[str]:
    status = section.get("status", "not run")
    if status in ("ok",):
        return []
    reason = section.get("reason") or ""
    failed = [r for r in section.get("runs", []) if r.get("status") != "ok"]
    lines = [f"> **{status}**" + (f": {reason}" if reason else "")]
    for r in failed:
        lines.append(f"> - `{r['key']}`: {r.get('error') or r.get('status')}")
    return lines + [""]


def _section_rows(summary: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, s in summary.get("sections", {}).items():
        runs = s.get("runs", [])
        cached = sum(1 for r in runs if r.get("cached"))
        walls = [_num(r.get("wall_s")) for r in runs if r.get("status") == "ok"]
        own = sum(w for w in walls if math.isfinite(w)) if walls else None
        status = s.get("status", "not run") + (" (earlier invocation)"
                                                if s.get("carried_over") else "")
        rows.append([name, status, fmt(s.get("wall_s"), 0), fmt(own, 0),
                     f"{len(runs)} ({cached} from cache)",
                     f"{fmt(s.get('load_start'))} → {fmt(s.get('load_end'))}"])
    return rows


def _md_latency(s: dict[str, Any]) -> list[str]:
    runs = _ok_runs(s)
    if not runs:
        return []
    ms = [r["metrics"] for r in runs]
    heads = ["metric", *(f"{m.get('execution', 'sync')}" for m in ms)]
    lines = _table(heads, [[k, *(m.get(k) for m in ms)] for k in LATENCY_FIELDS])
    for m in ms:
        extra = [k for k in ("checkpoint", "trigger", "seconds", "target_rate_hz",
                             "control_rate_hz", "e2e_definition", "machine") if k in m]
        lines += ["", f"{m.get('execution', 'sync')}:", *(f"- {k}: {m[k]}" for k in extra)]
    return lines


def _md_decoder(s: dict[str, Any], png: str | None, img_dir: str) -> list[str]:
    runs = _ok_runs(s)
    if not runs:
        return []
    m = runs[0]["metrics"]
    keys = ["iter_ms_p50", "prefix_ms_p50", "decode_ms_p50", "decode_ms_p99"]
    modes = ("cold", "copy", "shifted", "shifted_hold")
    rows = [[k, m.get(k)] for k in keys]
    rows.append(["iterations to τ (p50): " + " / ".join(modes),
                 " / ".join(fmt(m.get(f"iters_{k}_p50"), 1) for k in modes)])
    rows.append(["chunk error (p50): " + " / ".join(modes),
                 " / ".join(fmt(m.get(f"error_{k}_p50"), 3) for k in modes)])
    lines = _table(["metric", "value"], rows)
    lines += ["", f"- model: {m.get('model_source')}", f"- frames: {m.get('frames')}",
              f"- τ {m.get('tau')}, η {m.get('step_size')}, μ {m.get('momentum')}, "
              f"K_max {m.get('k_max')}, one step executed per cycle"]
    if png:
        lines += ["", f"![decoder]({img_dir}/{png})"]
    return lines


def _closed_rows(runs: list[dict[str, Any]], first: str) -> list[list[Any]]:
    rows = []
    for r in runs:
        m = r.get("metrics") or {}
        per = m.get("per_task", {})
        tasks = " · ".join(f"{t}: {v.get('successes')}/{v.get('episodes')}"
                           for t, v in per.items())
        rows.append([r.get(first, r["label"]), m.get("success"), tasks or r.get("status"),
                     fmt(m.get("iters_mean"), 1), fmt(m.get("decode_ms_p50"), 1)])
    return rows


def _md_budget(s: dict[str, Any], png: str | None, img_dir: str) -> list[str]:
    runs = sorted(_ok_runs(s), key=lambda r: (r["series"], _num(r["metrics"]["iters_mean"])))
    if not runs:
        return []
    lines = []
    if png:
        lines += [f"![budget]({img_dir}/{png})", "", f"*{caption(s)}.*", ""]
    lines += _table(["setting", "success (mean over tasks)", "successes per task",
                     "mean iters / decode", "decode ms p50"], _closed_rows(runs, "label"))
    matched = s.get("analysis", {}).get("matched", [])
    if matched:
        lines += ["", "At matched budget (best EqM setting costing no more than the FM setting):",
                  ""]
        lines += _table(
            ["FM", "FM success", "FM iters", "best EqM with ≤ iters", "its success",
             "FM ms", "best EqM with ≤ ms", "its success"],
            [[r["fm"], r["fm_success"], fmt(r["fm_iters_mean"], 1), r["eqm_at_iters"] or "none",
              r["eqm_at_iters_success"], fmt(r["fm_decode_ms_p50"], 1),
              r["eqm_at_ms"] or "none", r["eqm_at_ms_success"]] for r in matched])
    return lines


def _md_tau(s: dict[str, Any], png: str | None, img_dir: str) -> list[str]:
    a = s.get("analysis", {})
    if not a.get("tasks"):
        return []
    lines = []
    if png:
        lines += [f"![tau scan]({img_dir}/{png})", "", f"*{caption(s)}.*", ""]
    rows = []
    for task, t in a["tasks"].items():
        for tau, succ, it, ms in zip(t["taus"], t["success"], t["iters_mean"],
                                     t["decode_ms_p50"], strict=True):
            best = " ★" if tau in t["best_taus"] else ""
            rows.append([task, f"{tau:g}{best}", succ, fmt(it, 1), fmt(ms, 1)])
    lines += _table(["task", "τ", "success", "mean iters / decode", "decode ms p50"], rows)
    lines += ["", "**Does the paper's task-dependent, non-monotone optimum appear?**", "",
              a["answer"], ""]
    return lines


def _md_warm(s: dict[str, Any], png: str | None, img_dir: str) -> list[str]:
    runs = _ok_runs(s)
    if not runs:
        return []
    lines = []
    if png:
        lines += [f"![warm start]({img_dir}/{png})", "", f"*{caption(s)}.*", ""]
    rows = []
    for r in runs:
        for task, v in r["metrics"]["per_task"].items():
            rows.append([r["params"]["warm_start"], task, v.get("success_rate"),
                         f"{v.get('successes')}/{v.get('episodes')}", fmt(v.get("iters_mean"), 1),
                         fmt(v.get("iters_p50"), 1)])
    lines += _table(["warm start", "task", "success", "successes", "mean iters / decode",
                     "iters p50"], rows)
    ds = runs[0]["metrics"].get("decoder_settings") or {}
    if ds:
        lines += ["", f"τ {ds.get('tau')}, K_max {ds.get('k_max')}, reused fraction "
                      f"{ds.get('warm_start_fraction')}, tail '{ds.get('warm_start_tail')}' "
                      f"(the checkpoint's), {ds.get('execute_steps')} steps executed per decode."]
    return lines


def _md_execution(s: dict[str, Any], png: str | None, img_dir: str) -> list[str]:
    runs = _ok_runs(s)
    if not runs:
        return []
    lines = []
    if png:
        lines += [f"![execution]({img_dir}/{png})", "", f"*{caption(s)}.*", ""]
    lines += _table(["execution", *EXECUTION_FIELDS],
                    [[r["params"]["execution"], *(r["metrics"].get(k) for k in EXECUTION_FIELDS)]
                     for r in runs])
    lines += [f"\n> note: `{r['key']}` {r['warning']}" for r in runs if r.get("warning")]
    missing = sorted({k for r in runs for k in EXECUTION_FIELDS if k not in r["metrics"]})
    if missing:
        lines += ["", f"The demo's JSON lacked: {', '.join(missing)} (shown as –)."]
    return lines


def render_markdown(summary: dict[str, Any], plots: dict[str, str], img_dir: str) -> str:
    """The whole summary page; ``img_dir`` is the plots' folder relative to the Markdown file."""
    machine = summary.get("machine", {})
    cfg = summary.get("config", {})
    lines = [
        f"# Benchmark suite — {summary.get('date')}",
        "",
        f"Produced by `{summary.get('command')}` (started {summary.get('created')}, "
        f"{fmt(summary.get('wall_s'), 0)} s wall, estimate was {fmt(summary.get('estimate_s'), 0)}"
        f" s) at commit `{summary.get('git_commit')}`.",
        "",
        f"Machine: {machine.get('cores')} CPU cores, {machine.get('platform')}, Python "
        f"{machine.get('python')}, torch {machine.get('torch')}; load average "
        f"{fmt(machine.get('load_start'))} at the start, {fmt(machine.get('load_end'))} at the "
        f"end ({machine.get('note', '')}).",
        "",
        f"Closed-loop sections: {cfg.get('episodes')} episode(s) per task per setting on "
        f"{', '.join(cfg.get('tasks', []))}; held-out variation seed {cfg.get('seed')} "
        f"(the training demos used seed 0), policy noise seed {cfg.get('policy_seed', 0)}, "
        f"max {cfg.get('max_steps')} steps, eval-sim with {cfg.get('workers')} workers. "
        f"Raw JSON per setting: `{cfg.get('raw_dir')}`.",
        "",
        "## Sections",
        "",
        *_table(["section", "status", "wall s (this invocation)",
                 "s the runs took (incl. cached, shared runs in each section)", "runs",
                 "load avg"],
                _section_rows(summary)),
        "",
    ]
    renderers = {
        "latency": lambda s: _md_latency(s),
        "decoder": lambda s: _md_decoder(s, plots.get("decoder"), img_dir),
        "budget": lambda s: _md_budget(s, plots.get("budget"), img_dir),
        "tau": lambda s: _md_tau(s, plots.get("tau"), img_dir),
        "warm": lambda s: _md_warm(s, plots.get("warm"), img_dir),
        "execution": lambda s: _md_execution(s, plots.get("execution"), img_dir),
    }
    for name, section in summary.get("sections", {}).items():
        lines += [f"## {SECTION_TITLES.get(name, name)}", ""]
        lines += _status_line(section)
        lines += renderers.get(name, lambda s: [])(section)
        lines += _commands(section, section.get("command", ""))
    return "\n".join(lines).rstrip() + "\n"
