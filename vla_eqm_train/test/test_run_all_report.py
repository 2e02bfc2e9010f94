"""bench/run_all.py's report: analyses, plots and Markdown from synthetic section results (no sims).

The tau-scan question ("does the paper's task-dependent, non-monotone optimum appear?") must be
answered from the numbers: the same code says yes on data with interior, task-dependent peaks and
no on monotone data. The planner must give the default EqM setting one cache key across sections.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> Any:
    if str(BENCH) not in sys.path:  # run_all imports its sibling module as plain `report`
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


report = _load("report")
run_all = _load("run_all")

TASKS = ["pick-place-v3", "handle-press-v3"]
N = 10


def _eval_report(success: dict[str, int], iters: dict[str, list[int]], ms: float,
                 settings: dict[str, Any]) -> dict[str, Any]:
    """A synthetic eval-sim report: ``success[task]`` of N episodes, given decode iterations."""
    episodes, tasks = [], {}
    for task in TASKS:
        for i in range(N):
            episodes.append({"task": task, "variation": i, "seed": 1000,
                             "success": i < success[task], "steps": 50,
                             "iterations": iters[task], "decode_ms": [ms] * len(iters[task]),
                             "error": ""})
        tasks[task] = {"success_rate": success[task] / N, "episodes": N,
                       "successes": success[task], "iters_p50": float(sorted(iters[task])[
                           len(iters[task]) // 2]), "decode_ms_p50": ms, "errors": []}
    rates = [t["success_rate"] for t in tasks.values()]
    return {"mean_success": sum(rates) / len(rates), "tasks": tasks, "episodes": episodes,
            "held_out": {"seed": 1000, "variation_start": 0}, "decoder_settings": settings,
            "wall_s": 100.0}


def _params(**kw: Any) -> dict[str, Any]:
    return {"tool": "eval-sim", "tasks": TASKS, "episodes": N, "max_steps": 200, "seed": 1000,
            "policy_seed": 0, "variation_start": 0, "workers": 2, **kw}


def _run(key: str, label: str, series: str, params: dict[str, Any], rep: dict[str, Any]
         ) -> dict[str, Any]:
    return {"key": key, "label": label, "short": label, "series": series, "params": params,
            "command": f"vla-eqm eval-sim --json raw/{key}.json", "cached": False,
            "wall_s": 100.0, "status": "ok", "error": "", "metrics": report.eval_metrics(rep)}


EQM = {"decoder": "eqm", "k_max": 50, "warm_start": "shifted", "warm_start_fraction": 0.5,
       "warm_start_tail": "hold", "execute_steps": 4}


def _tau_section(curves: dict[str, list[int]]) -> dict[str, Any]:
    """tau scan over 0.02..0.4 with success counts per task (pick-place, handle-press)."""
    runs = []
    for i, tau in enumerate((0.02, 0.05, 0.1, 0.2, 0.4)):
        iters = {"pick-place-v3": [int(10 / tau ** 0.5)] * 4,
                 "handle-press-v3": [int(14 / tau ** 0.5)] * 4}
        rep = _eval_report({t: curves[t][i] for t in TASKS}, iters, 20.0 / tau ** 0.3,
                           {**EQM, "tau": tau})
        runs.append(_run(f"tau__t{tau:g}", f"EqM τ={tau:g}", "EqM", _params(tau=tau, k_max=50,
                                                                             warm_start="shifted"),
                         rep))
    return {"status": "ok", "wall_s": 500.0, "runs": runs,
            "command": "python bench/run_all.py --only tau"}


def _summary(tau_curves: dict[str, list[int]]) -> dict[str, Any]:
    budget = []
    for tau, k, s in ((0.2, 50, 6), (0.1, 50, 8), (0.1, 4, 4)):
        rep = _eval_report({"pick-place-v3": s - 3, "handle-press-v3": s},
                           {t: [min(k, int(2 / tau))] * 5 for t in TASKS}, 2.0 * min(k, 2 / tau),
                           {**EQM, "tau": tau, "k_max": k})
        budget.append(_run(f"budget__eqm{tau}{k}", f"EqM τ={tau:g} K={k} shifted", "EqM",
                           _params(tau=tau, k_max=k, warm_start="shifted"), rep))
    for steps, s in ((2, 5), (5, 9), (10, 10)):
        rep = _eval_report({"pick-place-v3": s - 2, "handle-press-v3": s},
                           {t: [steps] * 5 for t in TASKS}, 8.0 * steps, {"decoder": "fm"})
        budget.append(_run(f"budget__fm{steps}", f"FM {steps} steps", "FM",
                           _params(fm_steps=steps), rep))
    warm = []
    for mode, it in (("none", 9), ("copy", 8), ("shifted", 7)):
        rep = _eval_report({"pick-place-v3": 4, "handle-press-v3": 10},
                           {t: [it] * 5 for t in TASKS}, 20.0, {**EQM, "warm_start": mode})
        warm.append(_run(f"warm__{mode}", mode, "EqM", _params(tau=0.1, k_max=50,
                                                               warm_start=mode), rep))
    execution = [{"key": f"execution__{m}", "label": m, "short": m, "series": m, "cached": True,
                  "params": {"tool": "demo", "execution": m, **_params()}, "status": "ok",
                  "command": f"vla-eqm demo --execution {m}", "error": "",
                  "metrics": {"success_rate": sr, "episodes": 20, "iters_p50": 7.0,
                              "decode_ms_p50": 21.0, "boundary_jump_p50": bj,
                              "boundary_jump_max": bj * 4, "holds": 0, "dropped_cycles": dc}}
                 for m, sr, bj, dc in (("sync", 0.7, 0.05, 0), ("async", 0.65, 0.11, 3))]
    return {
        "date": "2026-01-02", "created": "2026-01-02T10:00:00", "git_commit": "abc123",
        "command": "python bench/run_all.py", "estimate_s": 2400, "wall_s": 2500.0,
        "machine": {"cores": 2, "platform": "Linux", "python": "3.11", "torch": "2.13.0",
                    "load_start": 0.5, "load_end": 1.9, "note": "shared"},
        "config": {"episodes": N, "tasks": TASKS, "seed": 1000, "policy_seed": 0,
                   "max_steps": 200, "workers": 2, "raw_dir": "bench/results/2026-01-02/raw"},
        "sections": {
            "latency": {"status": "ok", "wall_s": 160.0, "command": "python bench/run_all.py "
                        "--only latency", "runs": [{
                            "key": "latency__s120", "label": "node_latency", "status": "ok",
                            "command": "python bench/node_latency.py --seconds 120",
                            "params": {"tool": "node_latency"}, "metrics": {
                                "e2e_ms_p50": 152.4, "e2e_ms_p99": 3626.0, "rate_hz": 6.83,
                                "iters_p50": 5.0, "dropped_cycles": 761}}]},
            "decoder": {"status": "failed", "wall_s": 3.0, "command": "python bench/run_all.py "
                        "--only decoder", "runs": [{
                            "key": "decoder__cycles40", "label": "decoder", "status": "failed",
                            "command": "python bench/decoder.py --cycles 40", "params": {},
                            "error": "exit 1 (log: x.log)", "metrics": None}]},
            "budget": {"status": "ok", "wall_s": 900.0, "runs": budget,
                       "command": "python bench/run_all.py --only budget"},
            "tau": _tau_section(tau_curves),
            "warm": {"status": "ok", "wall_s": 300.0, "runs": warm,
                     "command": "python bench/run_all.py --only warm"},
            "execution": {"status": "ok", "wall_s": 500.0, "runs": execution,
                          "command": "python bench/run_all.py --only execution"},
        },
    }


# interior peaks at different taus per task (the paper's pattern) vs monotone curves
PAPER_LIKE = {"pick-place-v3": [2, 3, 8, 4, 2], "handle-press-v3": [3, 9, 4, 3, 3]}
MONOTONE = {"pick-place-v3": [2, 3, 4, 5, 6], "handle-press-v3": [10, 10, 10, 10, 10]}


def test_curve_shapes_are_read_from_the_numbers():
    assert report.curve_shape([0.2, 0.3, 0.8, 0.4]) == "non-monotone"
    assert report.curve_shape([0.2, 0.2, 0.5]) == "non-decreasing"
    assert report.curve_shape([0.9, 0.5, 0.5]) == "non-increasing"
    assert report.curve_shape([1.0, 1.0, 1.0]) == "flat"


def test_an_interior_task_dependent_optimum_is_detected():
    a = report.analyze(_summary(PAPER_LIKE))["sections"]["tau"]["analysis"]
    pp, hp = a["tasks"]["pick-place-v3"], a["tasks"]["handle-press-v3"]
    assert pp["best_taus"] == [0.1] and hp["best_taus"] == [0.05]
    assert pp["interior_optimum"] and hp["interior_optimum"]
    assert pp["shape"] == "non-monotone"
    assert pp["peak_margin_episodes"] == pytest.approx(6.0)  # 8/10 vs the better end, 2/10
    assert pp["beyond_noise"] and hp["beyond_noise"]
    assert a["task_dependent"] is True
    assert a["verdict"] in ("yes", "yes, within noise")
    assert a["answer"].startswith("**Yes")
    # the iterations grow as tau tightens: the curve over increasing tau falls
    assert pp["iters_shape"] == "non-increasing"


def test_monotone_or_flat_curves_answer_no():
    a = report.analyze(_summary(MONOTONE))["sections"]["tau"]["analysis"]
    assert a["tasks"]["pick-place-v3"]["shape"] == "non-decreasing"
    assert a["tasks"]["pick-place-v3"]["best_taus"] == [0.4]
    assert a["tasks"]["handle-press-v3"]["shape"] == "flat"
    assert not a["interior_tasks"] and a["task_dependent"] is False
    assert a["verdict"] == "no" and a["answer"].startswith("**No.**")


def test_an_interior_peak_with_overlapping_best_taus_is_only_partly_the_paper():
    curves = {"pick-place-v3": [2, 3, 8, 4, 2], "handle-press-v3": [10, 10, 10, 10, 10]}
    a = report.analyze(_summary(curves))["sections"]["tau"]["analysis"]
    assert a["interior_tasks"] == ["pick-place-v3"] and a["verdict"] == "partly"
    assert "overlap" in a["answer"] and "handle-press-v3: 0.02, 0.05, 0.1, 0.2, 0.4" in a["answer"]


def test_a_one_episode_peak_is_flagged_as_within_noise():
    curves = {"pick-place-v3": [2, 3, 3, 2, 2], "handle-press-v3": [3, 3, 4, 9, 3]}
    a = report.analyze(_summary(curves))["sections"]["tau"]["analysis"]
    assert a["tasks"]["pick-place-v3"]["interior_optimum"]
    assert not a["tasks"]["pick-place-v3"]["beyond_noise"]
    assert a["verdict"] == "yes, within noise" and "not conclusively" in a["answer"]


def test_eval_metrics_pool_mean_iterations_over_decodes():
    rep = _eval_report({"pick-place-v3": 5, "handle-press-v3": 10},
                       {"pick-place-v3": [4, 4], "handle-press-v3": [10, 10, 10, 10]}, 20.0,
                       dict(EQM, tau=0.1))
    m = report.eval_metrics(rep)
    assert m["success"] == pytest.approx(0.75)
    assert m["per_task"]["pick-place-v3"]["iters_mean"] == pytest.approx(4.0)
    assert m["iters_mean"] == pytest.approx((4 * 2 + 10 * 4) / 6)  # pooled over all decodes
    assert m["episodes"] == 2 * N and m["seed"] == 1000


def test_matched_budget_picks_the_best_eqm_setting_that_costs_no_more():
    s = report.analyze(_summary(PAPER_LIKE))["sections"]["budget"]["analysis"]["matched"]
    by_fm = {r["fm"]: r for r in s}
    # FM 2 steps: EqM settings with <= 2 mean iterations: none
    assert by_fm["FM 2 steps"]["eqm_at_iters"] is None
    # FM 10 steps: all EqM settings qualify (4, 10, 20 iters -> only 4 and 10); best success wins
    assert by_fm["FM 10 steps"]["eqm_at_iters"] == "EqM τ=0.2 K=50 shifted"
    assert by_fm["FM 10 steps"]["eqm_at_iters_success"] == pytest.approx((3 + 6) / 20)


def test_markdown_and_plots_carry_numbers_commands_episodes_and_seeds(tmp_path):
    summary = report.analyze(_summary(PAPER_LIKE))
    plots = report.write_plots(summary, tmp_path / "2026-01-02")
    assert set(plots) == {"budget", "tau", "warm", "execution"}  # decoder failed: no figure
    for png in plots.values():
        data = (tmp_path / "2026-01-02" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    md = report.render_markdown(summary, plots, "2026-01-02")
    assert "# Benchmark suite — 2026-01-02" in md and "abc123" in md
    assert "2 CPU cores" in md and "0.50 at the start" in md
    # every figure states its episodes and seeds
    assert md.count("10 episode(s) per task per setting") >= 4
    assert "held-out variation seed 1000, variations 0–9" in md
    for png in plots.values():
        assert f"](2026-01-02/{png})" in md
    # the tau question is answered from the data, with the per-task argmax
    assert "Does the paper's task-dependent, non-monotone optimum appear?" in md
    assert "best τ = 0.1 (0.80)" in md and "best τ = 0.05 (0.90)" in md
    # commands to reproduce each table/figure, and the section re-run line
    assert "vla-eqm eval-sim --json raw/tau__t0.02.json" in md
    assert "python bench/node_latency.py --seconds 120" in md
    assert "Whole section: `python bench/run_all.py --only warm`" in md
    # latency figures from the black-box JSON; the failed section says why
    assert "| e2e_ms_p50 | 152.40 |" in md and "| dropped_cycles | 761 |" in md
    assert "**failed**" in md and "exit 1 (log: x.log)" in md
    # execution table with the demo's fields
    assert "| sync | 0.70 | 20 | 7.00 | 21.00 | 0.05 | 0.20 | 0 | 0 |" in md
    # markdown changes with the data: the monotone data set answers No
    md_no = report.render_markdown(report.analyze(_summary(MONOTONE)), {}, "2026-01-02")
    assert "**No.**" in md_no and "**Yes" not in md_no


def test_the_default_eqm_setting_has_one_cache_key_across_sections(tmp_path):
    args = run_all.parse_args(["--out", str(tmp_path), "--domain-base", "160"])
    sections = run_all.plan(args, tmp_path / "raw")
    default = {r.key for s in ("budget", "tau", "warm") for r in sections[s]
               if r.params.get("tau") == 0.1 and r.params.get("k_max") == 50
               and r.params.get("warm_start") == "shifted"}
    assert len(default) == 1 and next(iter(default)).startswith("budget__eqm-tau0.1-k50-shifted")
    unique = {r.key for runs in sections.values() for r in runs}
    # 8 budget + 2 new taus + 2 new warm modes + 2 execution + latency (sync, async) + decoder
    assert len(unique) == 17
    assert [r.params["fm_steps"] for r in sections["budget"] if r.series == "FM"] == [2, 5, 10]
    # different episodes -> a different key: a cached run is never reused for other settings
    other = run_all.plan(run_all.parse_args(["--out", str(tmp_path), "--episodes", "3"]),
                         tmp_path / "raw")
    assert not unique & {r.key for runs in other.values() for r in runs
                         if r.params.get("tool") == "eval-sim"}
    assert list(sections) == list(run_all.SECTIONS)  # latency and decoder first
