"""bench/eqm_claims.py's statistics on synthetic episode logs (no sims): AUROC and its interval,
the within-task failure AUROC, and the τ-scan verdict with its exact tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from test_run_all_report import _load

claims = _load("eqm_claims")


def test_auroc_is_the_mann_whitney_probability_with_ties_counted_half():
    assert claims.auroc([3.0, 4.0], [1.0, 2.0]) == 1.0
    assert claims.auroc([1.0], [2.0]) == 0.0
    assert claims.auroc([1.0, 1.0], [1.0]) == 0.5
    rng = np.random.default_rng(0)
    pos, neg = list(rng.normal(1, 1, 40)), list(rng.normal(0, 1, 30))
    brute = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert abs(claims.auroc(pos, neg) - brute) < 1e-12
    ci = claims.auroc_ci(pos, neg)
    assert ci["ci95"][0] < ci["auroc"] < ci["ci95"][1] and ci["n_positive"] == 40
    assert claims.auroc([], neg) is None and claims.auroc_ci([], neg)["ci95"] is None


def _rec(task: str, variation: int, success: bool, residual: float, seed: int = 1000) -> dict:
    return {"task": task, "variation": variation, "seed": seed, "success": success,
            "iterations": [5, 5], "decode_ms": [1.0, 1.0], "residuals": [residual, residual],
            "k_max_hits": 0, "error": ""}


def test_within_task_auroc_does_not_credit_a_signal_that_only_tells_tasks_apart():
    # task "hard" fails always at high residual, "easy" succeeds always at low residual, and
    # inside the mixed task the residual says nothing: pooled AUROC is high, within-task 0.5
    recs = ([_rec("hard", v, False, 0.3) for v in range(5)]
            + [_rec("easy", v, True, 0.05) for v in range(5)]
            + [_rec("mixed", v, v % 2 == 0, 0.1) for v in range(6)])
    fail = [claims.episode_signals(r)["mean_residual"] for r in recs if not r["success"]]
    ok = [claims.episode_signals(r)["mean_residual"] for r in recs if r["success"]]
    assert claims.auroc(fail, ok) > 0.8
    within = claims._within_task_auroc(recs, "mean_residual")
    assert (within["auroc"], within["tasks"], within["pairs"]) == (0.5, 1, 9)
    assert within["ci95"][0] <= 0.5 <= within["ci95"][1]


def _write_log(path: Path, recs: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([json.dumps({"identity": {}}), *map(json.dumps, recs)]) + "\n")


def test_the_tau_scan_verdict_finds_an_interior_peak_and_a_flat_task(tmp_path, monkeypatch):
    monkeypatch.setattr(claims, "OUT", tmp_path)
    tasks = ("peaked-v3", "flat-v3")
    runs = [claims.Run(f"tau_{t:g}", "ckpt", tasks, 10) for t in claims.TAUS]
    monkeypatch.setattr(claims, "study_runs", lambda study: runs)
    peak = [1, 3, 9, 10, 9, 2, 1]  # successes out of 10 per tau: interior optimum at 0.1
    for tau, run, k in zip(claims.TAUS, runs, peak, strict=True):
        recs = [_rec("peaked-v3", v, v < k, tau) for v in range(10)]
        recs += [_rec("flat-v3", v, v < 5, tau) for v in range(10)]
        _write_log(claims.log_path("tau", run), recs)
    out = claims.analyze_tau()
    assert out["complete"]
    peaked, flat = out["tasks"]["peaked-v3"], out["tasks"]["flat-v3"]
    assert peaked["best_taus"] == [0.1] and peaked["interior_optimum"]
    assert peaked["non_monotone_p05"] and peaked["p_flat_chi2"] < 1e-3
    assert flat["shape"] == "flat" and flat["p_flat_chi2"] == 1.0
    assert not flat["non_monotone_p05"]
    claims.plot_tau(out, tmp_path / "tau.png")
    assert (tmp_path / "tau.png").stat().st_size > 10_000
    # pooled over both tasks, paired with the reference τ on the same episodes
    pooled = out["pooled"]["taus"]
    assert out["pooled"]["reference_tau"] == 0.1 and pooled["0.1"]["success_rate"] == 0.75
    assert pooled["0.01"]["vs_reference"]["success_diff"] == -0.45  # (1 - 10) / 20 episodes
    lo, hi = pooled["0.01"]["vs_reference"]["success_diff_ci95"]
    assert lo <= -0.45 <= hi < 0
    claims.plot_tau_pooled(out, tmp_path / "pooled.png")
    assert (tmp_path / "pooled.png").stat().st_size > 10_000
    # a missing point makes the study incomplete and keeps the task out of the verdict
    _write_log(claims.log_path("tau", runs[3]), [_rec("flat-v3", v, v < 5, 0.1)
                                                  for v in range(10)])
    partial = claims.analyze_tau()
    assert not partial["complete"] and "peaked-v3" not in partial["tasks"]


def test_the_warm_start_comparison_is_paired_with_the_cold_start(tmp_path, monkeypatch):
    monkeypatch.setattr(claims, "OUT", tmp_path)
    runs = [claims.Run(f"ws_{m}", "ckpt", ("a-v3",), 4) for m in claims.WARM_STARTS]
    monkeypatch.setattr(claims, "study_runs", lambda study: runs)
    for run in runs:
        warm = run.name != "ws_none"
        recs = [_rec("a-v3", v, v < (3 if warm else 2), 0.1) for v in range(4)]
        for r in recs:
            r["iterations"] = [4, 4] if warm else [10, 10]
        _write_log(claims.log_path("warm_start", run), recs)
    out = claims.analyze_warm_start()
    assert out["complete"] and set(out["modes"]) == set(claims.WARM_STARTS)
    frozen = out["modes"]["frozen"]
    assert frozen["iters_mean"] == 4.0 and frozen["vs_none"]["iters_diff"] == -6.0
    assert frozen["vs_none"]["success_diff"] == 0.25 and "vs_none" not in out["modes"]["none"]
    lo, hi = frozen["vs_none"]["success_diff_ci95"]
    assert lo <= 0.25 <= hi


def test_the_deadline_study_pairs_each_budget_with_the_fm_steps_that_fit(tmp_path, monkeypatch):
    monkeypatch.setattr(claims, "OUT", tmp_path)
    monkeypatch.setattr(claims, "MT50_LOGS", tmp_path / "mt50")
    runs = claims.study_runs("deadline")
    runs = [claims.Run(r.name, "ckpt", ("a-v3",), 4, r.args) for r in runs]
    monkeypatch.setattr(claims, "study_runs", lambda study: runs)
    solve = {"eqm_1ms": 1.4, "eqm_3ms": 3.1, "fm_1steps": 0.6, "fm_2steps": 1.2,
             "fm_4steps": 2.5}
    wins = {"eqm_1ms": 3, "eqm_3ms": 4, "fm_1steps": 1, "fm_2steps": 1, "fm_4steps": 2}
    for run in runs:
        recs = [{**_rec("a-v3", v, v < wins[run.name], 0.1), "steps": 150,
                 "solve_ms": [solve[run.name]] * 2, "deadline_hits": 1} for v in range(4)]
        _write_log(claims.log_path("deadline", run), recs)
    # the unbounded references: a success at step 300 does not count inside the 200-step limit
    ref = [{**_rec("a-v3", v, True, 0.1), "steps": 300 if v else 50} for v in range(4)]
    for name in ("eqm", "fm"):
        _write_log(tmp_path / "mt50" / f"{name}.jsonl", ref)
    out = claims.analyze_deadline()
    assert out["complete"]
    assert out["matched"]["eqm_1ms"]["fm_run"] == "fm_2steps"  # 1.2 ms fits in 1.4, 2.5 not
    assert out["matched"]["eqm_3ms"]["fm_run"] == "fm_4steps"
    assert out["matched"]["eqm_1ms"]["success_diff_eqm_minus_fm"] == 0.5
    assert out["runs"]["eqm_1ms"]["deadline_fraction"] == 0.5
    assert out["references"]["eqm_unbounded"]["success_rate"] == 0.25
    claims.plot_deadline(out, tmp_path / "deadline.png")
    assert (tmp_path / "deadline.png").stat().st_size > 10_000


def test_the_held_out_tau_study_chooses_on_the_scan_and_compares_paired(tmp_path, monkeypatch):
    monkeypatch.setattr(claims, "OUT", tmp_path)
    tasks = ("reach-v3", "push-v3")
    scan = [claims.Run(f"tau_{t:g}", "ckpt", tasks, 4) for t in claims.TAUS]
    real = claims.study_runs

    def runs(study):
        return scan if study == "tau" else real(study)

    monkeypatch.setattr(claims, "study_runs", runs)
    monkeypatch.setattr(claims, "RESULTS", tmp_path / "eqm_claims.json")
    # before the scan exists, asking for the held-out study says why and runs nothing
    assert claims.main(["--study", "tau_heldout", "--time-limit-min", "0"]) == 0
    assert not (tmp_path / "episodes" / "tau_heldout").exists()
    assert "tau_heldout" not in json.loads((tmp_path / "eqm_claims.json").read_text())
    with_best = {"reach-v3": 0.01, "push-v3": 0.5}
    for tau, run in zip(claims.TAUS, scan, strict=True):
        recs = [_rec(t, v, tau == best or (t == "push-v3" and tau == 1.0 and v < 3) or v == 0,
                     tau) for t, best in with_best.items() for v in range(4)]
        _write_log(claims.log_path("tau", run), recs)
    choice = claims.tau_choice()
    assert choice["per_task"] == with_best
    assert choice["global"] == 0.5  # ties (5 wins at 0.01 and at 0.5) go to the larger τ
    held = claims.study_runs("tau_heldout")
    per_task = next(r for r in held if r.name == "per_task")
    assert per_task.variation_start == claims.HELDOUT_START
    assert f"0.01={claims.instruction_for('reach-v3')}" in per_task.args
    assert per_task.args[per_task.args.index("--tau") + 1] == "0.5"
    for run, won in zip(held, (1, 3), strict=True):
        recs = [_rec(t, claims.HELDOUT_START + v, v < won, 0.1)
                for t in tasks for v in range(claims.HELDOUT_EPISODES)]
        _write_log(claims.log_path("tau_heldout", run), recs)
    out = claims.analyze_tau_heldout()
    assert out["complete"] and out["success_diff_per_task_minus_global"] == 0.4
    lo, hi = out["success_diff_ci95"]
    assert lo <= 0.4 <= hi


def test_the_gap_probe_finds_where_residual_and_error_are_lowest():
    residual = list(np.geomspace(1.0, 0.01, 50)) + list(np.geomspace(0.01, 0.02, 150))
    error = list(np.geomspace(1.0, 0.1, 30)) + list(np.geomspace(0.1, 0.3, 170))
    gap = claims.gap_of_probe(residual, error)
    assert (gap["k_min_residual"], gap["k_min_error"]) == (50, 30)
    assert abs(gap["relative_excess"] - (error[49] - 0.1) / 0.1) < 1e-9
    assert gap["k_at_tau_stop"]["1"] == 1 and gap["k_at_tau_stop"]["0.01"] == 50
    assert gap["error_at_tau_stop"]["0.01"] == error[49]


def test_passes_grow_to_the_full_run_so_a_cut_short_study_stays_balanced():
    assert claims.pass_sizes(10) == [3, 6, 10]
    assert claims.pass_sizes(5) == [1, 3, 5]
    assert claims.pass_sizes(1) == [1]
    assert claims.first_pass(10) == 3
    for n in range(1, 30):
        sizes = claims.pass_sizes(n)
        assert sizes[-1] == n and sizes == sorted(set(sizes)) and sizes[0] >= 1
