"""What EqM buys at deployment, measured on MT50 through the node's executor (issue #14).

    python bench/eqm_claims.py --study confidence      # run what is missing, then analyze
    python bench/eqm_claims.py --study tau --time-limit-min 60
    python bench/eqm_claims.py --analyze-only          # rewrite the results from the logs

Every closed-loop episode runs through ``vla-eqm eval-sim`` (lockstep sim bridge, ROS topics, the
node's receding-horizon executor) and is appended to
``bench/results/eqm_claims/episodes/<study>/<run>.jsonl`` (``eval-sim --log``): commit them, and a
rerun in any clone runs only the missing episodes. ``--time-limit-min`` stops a study cleanly
(finished episodes are kept). The analysis reads the logs, never a cached summary, so a partial
study is analyzed as far as it went and says so (``complete``).

Studies (shared protocol: ``mt50_eqm`` and ``mt50_fm``, held-out variation seed 1000 unless a run
says otherwise, ``STEP_LIMIT`` steps per episode: 89 % of the MT50 evaluation's successes came by
step 200, and a failure costs the whole limit):

- ``confidence``: is EqM's final residual, or hitting K_max, a sign of failure or of
  out-of-distribution input? Runs: seen variations (seed 0, the demonstrations' start states),
  unseen ones (seed 1000), Gaussian pixel noise (``--image-noise 25``) and a wrong goal
  (``--wrong-goal``), 3 episodes on each of the 50 tasks. Failure prediction also uses the 500
  episodes of the MT50 evaluation (``bench/results/mt50_episodes/eqm.jsonl``).
- ``tau``: τ from 0.01 to 1 (7 values) at K_max 200, 10 episodes on each task the MT50 evaluation
  left unsaturated (neither 0/10 nor 10/10).
- ``warm_start``: none, copy, shifted (noise tail), shifted with hold, the frozen-prefix solve
  (with the hold tail, then with a noise tail), 5 episodes on each task the first MT50 evaluation
  (shifted+hold) left unsaturated, each compared with the cold start on the same episodes.
  ``warm_start_five``: the same question for ``default_eqm`` on its five tasks.
- ``tau_heldout``: the per-task τ (``--tau-by-goal``) against the best global τ, both chosen on
  the finished τ scan, on held-out variations 10-14.
- ``deadline``: EqM with ``--deadline-ms`` 1 and 3 against FM with 1, 2 and 4 Euler steps, paired
  by the solve time the episodes measured; 2 episodes on each MT50 task.
- ``gap``: one held-out expert episode per task, recorded, then ``eval-bag``'s iterate probe: the
  residual and the error of every iterate of cold τ = 0 solves (offline).

Every run goes in passes: 30 %, then 60 %, then all of its episodes (``pass_sizes``).

Writes ``bench/results/eqm_claims.json`` (schema in ``docs/eqm_claims.md``) and the plots under
``bench/results/eqm_claims/``. Prints the results as one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from vla_eqm_train.evaluation.paired import bootstrap_ci

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = ROOT / "vla_eqm_ros" / "vla_eqm_ros" / "checkpoints"
OUT = ROOT / "bench" / "results" / "eqm_claims"
RESULTS = ROOT / "bench" / "results" / "eqm_claims.json"
MT50_LOGS = ROOT / "bench" / "results" / "mt50_episodes"
MT50_HOLD_LOG = MT50_LOGS / "eqm_shifted_hold.jsonl"  # mt50_eqm before the warm-start study
MT50_TAU_LOG = MT50_LOGS / "eqm_tau0.1.jsonl"  # mt50_eqm after it, before the τ scan
STEP_LIMIT = 200
TAUS = (0.01, 0.03, 0.06, 0.1, 0.2, 0.5, 1.0)
TAU_K_MAX = 200
TAU_REFERENCE = 0.1  # mt50_eqm's τ when the scan began (it ships 0.5 since, on the scan)
BOOTSTRAP = 2000
EARLY = 10  # decodes: the first 40 steps at execute_steps 4 (the median success is at 70)


@dataclass(frozen=True)
class Run:
    """One eval-sim invocation of a study; ``args`` are eval-sim flags beyond the shared ones."""

    name: str
    checkpoint: str
    tasks: tuple[str, ...]
    episodes: int
    args: tuple[str, ...] = ()
    seed: int = 1000
    variation_start: int = 0

    @property
    def planned(self) -> int:
        return len(self.tasks) * self.episodes


class NotReady(RuntimeError):
    """A study's inputs (the MT50 evaluation it selects tasks on) are not there yet."""


def instruction_for(task: str) -> str:
    from vla_eqm_sim.instructions import instruction_for as instruction

    return instruction(task)


def _mt50_tasks() -> list[str]:
    from vla_eqm_sim.suites import expand

    return expand([], ["mt50"])


def _per_task_success(log: Path) -> dict[str, float]:
    recs = read_log(log)
    tasks = sorted({r["task"] for r in recs})
    return {t: float(np.mean([r["success"] for r in recs if r["task"] == t])) for t in tasks}


def unsaturated_tasks(log: Path = MT50_LOGS / "eqm.jsonl") -> list[str]:
    """Tasks an MT50 evaluation left neither always nor never solved (where τ can matter)."""
    success = _per_task_success(log)
    if len(success) < len(_mt50_tasks()):
        raise NotReady(f"{log} covers {len(success)} of the MT50 tasks; finish "
                       "`python bench/mt50.py` first (the studies choose their tasks on it)")
    return [t for t, s in success.items() if 0.0 < s < 1.0]


def study_runs(study: str) -> list[Run]:
    eqm = str(CHECKPOINTS / "mt50_eqm")
    if study == "confidence":
        tasks = tuple(_mt50_tasks())
        return [Run("seen", eqm, tasks, 3, seed=0),
                Run("unseen", eqm, tasks, 3),
                Run("image_noise", eqm, tasks, 3, ("--image-noise", "25")),
                Run("wrong_goal", eqm, tasks, 3, ("--wrong-goal",))]
    if study == "tau":
        # chosen on the evaluation before the scan changed the shipped τ, so that the scan's
        # episodes stay the ones it ran
        tasks = tuple(unsaturated_tasks(MT50_TAU_LOG))
        return [Run(f"tau_{tau:g}", eqm, tasks, 10, ("--tau", f"{tau:g}", "--k-max",
                                                     str(TAU_K_MAX))) for tau in TAUS]
    if study == "warm_start":
        # chosen on the first MT50 evaluation (the warm start this study replaced as the default),
        # so that the study's episodes stay the ones it ran
        tasks = tuple(unsaturated_tasks(MT50_HOLD_LOG))
        return [Run(f"ws_{name}", eqm, tasks, 5, args) for name, args in WARM_STARTS.items()]
    if study == "warm_start_five":
        # the demo checkpoint's five tasks at the README table's protocol (20 held-out episodes
        # per task): does the MT50 finding (the held tail costs success) carry over?
        five = str(CHECKPOINTS / "default_eqm")
        from vla_eqm_ros.checkpoint import load_config

        tasks = tuple(load_config(Path(five)).provenance["dataset_tasks"])
        return [Run(f"ws_{name}", five, tasks, 20, WARM_STARTS[name])
                for name in ("none", "shifted", "shifted_hold")]
    if study == "tau_heldout":
        return heldout_runs(tau_choice())
    if study == "deadline":
        tasks, fm = tuple(_mt50_tasks()), str(CHECKPOINTS / "mt50_fm")
        return ([Run(f"eqm_{d:g}ms", eqm, tasks, 2, ("--deadline-ms", f"{d:g}"))
                 for d in DEADLINES_MS]
                + [Run(f"fm_{n}steps", fm, tasks, 2, ("--fm-steps", str(n))) for n in FM_STEPS])
    raise ValueError(f"unknown study {study!r}; known: {STUDIES}")


STUDIES = ("confidence", "tau", "tau_heldout", "warm_start", "warm_start_five", "deadline",
           "gap")
# the per-task τ against the best global τ, both chosen on the τ scan's episodes (variations
# 0-9), on variations the scan never ran; the per-task τ goes through the node's tau_by_goal
HELDOUT_START, HELDOUT_EPISODES = 10, 5
# anytime decoding: EqM under a solve budget (the τ stop still applies) against FM with a fixed
# Euler step count; one field evaluation costs about 0.6 ms here, so these bracket each other,
# and the analysis pairs them by the solve times the episodes measured
DEADLINES_MS = (1.0, 3.0)
FM_STEPS = (1, 2, 4)
# the paper's copy, shifted with a noise or a held tail (the shipped default: hold), and the
# frozen-prefix solve (the first row, which executes next, held fixed during the solve)
WARM_STARTS: dict[str, tuple[str, ...]] = {
    "none": ("--warm-start", "none"),
    "copy": ("--warm-start", "copy"),
    "shifted": ("--warm-start", "shifted", "--warm-start-tail", "noise"),
    "shifted_hold": ("--warm-start", "shifted", "--warm-start-tail", "hold"),
    "frozen": ("--warm-start", "frozen", "--warm-start-frozen-rows", "1"),
    # the run above inherited the hold tail then shipped; this one isolates the freezing, at
    # the τ every other run of the study had (the shipped τ changed after them)
    "frozen_noise": ("--warm-start", "frozen", "--warm-start-frozen-rows", "1",
                     "--warm-start-tail", "noise", "--tau", "0.1"),
}


# ----------------------------------------------------------------------------------- running
PASS_TENTHS = (3, 6, 10)  # 30 %, 60 %, all; in tenths, so integer division never rounds down


def pass_sizes(episodes: int) -> list[int]:
    """Episodes per task a run has after each pass: a study cut short by a time limit still has
    every setting at the same count, one pass behind at most, not some settings at full count and
    others unmeasured."""
    return sorted({max(1, episodes * tenths // 10) for tenths in PASS_TENTHS})


def first_pass(episodes: int) -> int:
    """Episodes per task a run gets in the first pass: a curve is judged once it has these."""
    return pass_sizes(episodes)[0]


def log_path(study: str, run: Run) -> Path:
    return OUT / "episodes" / study / f"{run.name}.jsonl"


def episode_key(rec: dict[str, Any]) -> tuple[Any, ...]:
    from vla_eqm_train.commands.eval_sim import episode_key as key

    return key(rec)


def read_keyed(path: Path) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Finished episodes of an eval-sim log by start state (``episode_key``), read the way
    eval-sim resumes from it: what runs on the same episodes are paired by."""
    from vla_eqm_train.commands.eval_sim import logged_episodes

    return logged_episodes(path)


def read_log(path: Path) -> list[dict[str, Any]]:
    """Finished episodes of an eval-sim log, read the way eval-sim resumes from it."""
    return list(read_keyed(path).values())


def execute(study: str, run: Run, workers: int, deadline: float) -> bool:
    """Run the missing episodes of one run; False when the time limit cut it short."""
    if len(read_log(log_path(study, run))) >= run.planned:
        return True
    remaining = deadline - time.monotonic()
    if remaining <= 30:
        return False
    command = [sys.executable, "-m", "vla_eqm_train.cli", "eval-sim", "--checkpoint",
               run.checkpoint, "--tasks", *run.tasks, "--episodes", str(run.episodes),
               "--seed", str(run.seed), "--variation-start", str(run.variation_start),
               "--max-steps", str(STEP_LIMIT), "--workers", str(workers),
               "--log", str(log_path(study, run)), *run.args]
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    print(f"[eqm_claims] {study}/{run.name}: {run.planned} episodes planned", file=sys.stderr)
    # its own process group, so that a time limit also stops eval-sim's worker processes
    proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        proc.wait(timeout=remaining)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        return False
    return len(read_log(log_path(study, run))) >= run.planned


# ---------------------------------------------------------------------------------- statistics
def auroc(positive: list[float], negative: list[float]) -> float | None:
    """P(score of a positive > score of a negative), ties counted half (Mann-Whitney U)."""
    if not positive or not negative:
        return None
    from scipy.stats import rankdata

    scores = np.concatenate([positive, negative])
    ranks = rankdata(scores)
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auroc_ci(positive: list[float], negative: list[float], seed: int = 0
             ) -> dict[str, Any]:
    """AUROC with a 95 % percentile bootstrap interval (positives and negatives resampled
    separately, so both class sizes stay fixed)."""
    value = auroc(positive, negative)
    if value is None:
        return {"auroc": None, "ci95": None, "n_positive": len(positive),
                "n_negative": len(negative)}
    rng = np.random.default_rng(seed)
    pos, neg = np.asarray(positive), np.asarray(negative)
    draws = [auroc(list(rng.choice(pos, len(pos))), list(rng.choice(neg, len(neg))))
             for _ in range(BOOTSTRAP)]
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return {"auroc": round(value, 4), "ci95": [round(float(lo), 4), round(float(hi), 4)],
            "n_positive": len(positive), "n_negative": len(negative)}


def episode_signals(rec: dict[str, Any]) -> dict[str, float]:
    """Per-episode confidence signals, each larger when the decoder is less sure."""
    res = [r for r in rec.get("residuals", []) if r is not None]
    n = max(1, len(rec.get("iterations", [])))
    return {"mean_residual": float(np.mean(res)) if res else math.nan,
            "first_residual": float(res[0]) if res else math.nan,  # known before any motion
            # the first EARLY decodes (4 steps each): the same window for every episode, so an
            # episode's length (failures run to the limit) cannot leak into the score
            "early_residual": float(np.mean(res[:EARLY])) if res else math.nan,
            "k_max_fraction": rec.get("k_max_hits", 0) / n,
            "mean_iterations": float(np.mean(rec["iterations"])) if rec.get("iterations")
            else math.nan}


SIGNALS = ("mean_residual", "early_residual", "first_residual", "k_max_fraction",
           "mean_iterations")


# ------------------------------------------------------------------------------------ analysis
def analyze_confidence() -> dict[str, Any]:
    runs = {r.name: read_log(log_path("confidence", r)) for r in study_runs("confidence")}
    planned = {r.name: r.planned for r in study_runs("confidence")}
    sig = {name: [episode_signals(r) for r in recs] for name, recs in runs.items()}
    ood = {}
    for probe in ("unseen", "image_noise", "wrong_goal"):
        ood[probe] = {s: auroc_ci([e[s] for e in sig[probe]], [e[s] for e in sig["seen"]])
                      for s in SIGNALS}
        ood[probe]["success_rate"] = _rate(runs[probe])
    return {
        "question": "do the final residual or K_max hits flag failure or out-of-distribution "
                    "input?",
        "runs": {n: {"episodes": len(runs[n]), "planned": planned[n],
                     "success_rate": _rate(runs[n])} for n in runs},
        "complete": all(len(runs[n]) >= planned[n] for n in runs),
        "ood_vs_seen": ood,
        # the first MT50 evaluation ran the settings of the runs above (hold tail, τ 0.1); the
        # shipped settings since are scored too
        "failure_mt50": _failure_auroc(MT50_HOLD_LOG),
        "failure_mt50_shipped": _failure_auroc(MT50_LOGS / "eqm.jsonl"),
    }


def _failure_auroc(log: Path) -> dict[str, Any]:
    """Failure against success AUROC of every signal over one MT50 evaluation's episodes."""
    mt50 = read_log(log)
    failure: dict[str, Any] = {"pooled": {}, "within_task": {}}
    mt50_signals = [(r["success"], episode_signals(r)) for r in mt50]
    for s in SIGNALS:
        fail = [sig[s] for won, sig in mt50_signals if not won]
        ok = [sig[s] for won, sig in mt50_signals if won]
        failure["pooled"][s] = auroc_ci(fail, ok)
        failure["within_task"][s] = _within_task_auroc(mt50, s)
    return {**failure, "episodes": len(mt50),
            "source": f"{log.relative_to(ROOT)} (500-step limit)"}


def _rate(recs: list[dict[str, Any]]) -> float | None:
    return round(float(np.mean([r["success"] for r in recs])), 4) if recs else None


def _within_task_auroc(recs: list[dict[str, Any]], signal: str, seed: int = 0
                       ) -> dict[str, Any]:
    """Failure AUROC inside each task that has both outcomes, averaged with each task weighted
    by its number of (failure, success) pairs, so that task difficulty alone cannot score; the
    95 % interval resamples episodes within each task."""
    by_task = {}
    for task in sorted({r["task"] for r in recs}):
        rs = [(not r["success"], episode_signals(r)[signal]) for r in recs if r["task"] == task]
        if 0 < sum(f for f, _ in rs) < len(rs):
            by_task[task] = rs

    def pooled(groups: list[list[tuple[bool, float]]]) -> float | None:
        values, weights = [], []
        for rs in groups:
            fail = [v for f, v in rs if f]
            ok = [v for f, v in rs if not f]
            if fail and ok:
                values.append(auroc(fail, ok))
                weights.append(len(fail) * len(ok))
        return float(np.average(values, weights=weights)) if values else None

    value = pooled(list(by_task.values()))
    if value is None:
        return {"auroc": None, "ci95": None, "tasks": 0}
    rng = np.random.default_rng(seed)
    draws = [pooled([[rs[i] for i in rng.integers(0, len(rs), len(rs))]
                     for rs in by_task.values()]) for _ in range(BOOTSTRAP // 4)]
    lo, hi = np.percentile([d for d in draws if d is not None], [2.5, 97.5])
    pairs = sum(sum(f for f, _ in rs) * sum(not f for f, _ in rs) for rs in by_task.values())
    return {"auroc": round(value, 4), "ci95": [round(float(lo), 4), round(float(hi), 4)],
            "tasks": len(by_task), "pairs": int(pairs)}


def analyze_tau() -> dict[str, Any]:
    """The τ scan through ``report.tau_analysis`` (the verdict code of the five-task scan: curve
    shape, interior peak, task dependence, a two-standard-error band), plus exact tests per task:
    a chi-square test of homogeneity over the τ values (is the curve flat?) and one-sided Fisher
    tests of the best τ against each end of the range (is the peak interior?)."""
    from report import tau_analysis
    from scipy.stats import chi2_contingency, fisher_exact

    runs = study_runs("tau")
    logs = {tau: read_log(log_path("tau", run)) for tau, run in zip(TAUS, runs, strict=True)}
    points: dict[str, list[dict[str, Any]]] = {}
    tests: dict[str, dict[str, Any]] = {}
    complete = True
    for task in runs[0].tasks:
        counts = []
        for tau in TAUS:
            rs = [r for r in logs[tau] if r["task"] == task]
            counts.append((sum(r["success"] for r in rs), len(rs)))
            if rs:
                points.setdefault(task, []).append({
                    "tau": tau, "success_rate": counts[-1][0] / len(rs), "episodes": len(rs),
                    "iters_mean": float(np.mean([i for r in rs for i in r["iterations"]])),
                    "decode_ms_p50": float(np.median([m for r in rs for m in r["decode_ms"]]))})
        if any(n < runs[0].episodes for _, n in counts):
            complete = False
        if any(n < first_pass(runs[0].episodes) for _, n in counts):
            points.pop(task, None)  # a curve is judged once every τ has its first pass
            continue
        table = np.array([[k, n - k] for k, n in counts])
        solved = table[:, 0].sum()
        p_flat = (1.0 if solved in (0, table.sum()) else float(chi2_contingency(table)[1]))
        best = int(np.argmax(table[:, 0]))
        p_ends = [float(fisher_exact([table[best], table[end]], alternative="greater")[1])
                  for end in (0, len(TAUS) - 1)]
        tests[task] = {"p_flat_chi2": p_flat, "p_peak_vs_ends_fisher": p_ends,
                       "non_monotone_p05": bool(0 < best < len(TAUS) - 1 and max(p_ends) < 0.05)}
    analysis = tau_analysis(points)
    for task, t in tests.items():
        analysis["tasks"][task].update(t)
    return {"question": "is τ a task-dependent policy variable with a non-monotone optimum?",
            "taus": list(TAUS), "k_max": TAU_K_MAX, "scanned_tasks": list(runs[0].tasks),
            "complete": complete, "pooled": _tau_pooled(logs), **analysis}


def _tau_pooled(logs: dict[float, list[dict[str, Any]]]) -> dict[str, Any]:
    """Success and iterations per τ over all scanned tasks, each against ``TAU_REFERENCE`` (the
    τ shipped when the scan began) on the same episodes, with a paired bootstrap interval."""
    rng = np.random.default_rng(0)
    ref = {episode_key(e): e for e in logs.get(TAU_REFERENCE, [])}
    out = {}
    for tau, recs in logs.items():
        by_key = {episode_key(e): e for e in recs}
        shared = sorted(set(by_key) & set(ref))
        diff = np.array([by_key[k]["success"] - ref[k]["success"] for k in shared], float)
        its = [i for e in recs for i in e["iterations"]]
        out[f"{tau:g}"] = {
            "episodes": len(recs), "success_rate": _rate(recs),
            "iters_mean": round(float(np.mean(its)), 2) if its else None,
            "solve_ms_p50": round(float(np.median(ms)), 3)
            if (ms := [m for e in recs for m in e.get("solve_ms", [])]) else None,
            "vs_reference": {"episodes": len(shared),
                             "success_diff": round(float(diff.mean()), 4) if len(diff) else None,
                             "success_diff_ci95": bootstrap_ci(diff, rng, BOOTSTRAP)}}
    return {"reference_tau": TAU_REFERENCE, "taus": out}


def tau_choice() -> dict[str, Any]:
    """The τ a user would pick from the finished scan: per task the τ of most successes, and
    the one τ of the most successes over all scanned tasks; ties go to the larger τ (fewer
    iterations)."""
    runs = study_runs("tau")
    logs = {tau: read_log(log_path("tau", run)) for tau, run in zip(TAUS, runs, strict=True)}
    if any(len(recs) < run.planned for recs, run in zip(logs.values(), runs, strict=True)):
        raise NotReady("the τ scan is not finished: `python bench/eqm_claims.py --study tau`")
    wins = {t: {tau: sum(r["success"] for r in logs[tau] if r["task"] == t) for tau in TAUS}
            for t in runs[0].tasks}

    def best(counts: dict[float, int]) -> float:
        return max(TAUS, key=lambda tau: (counts[tau], tau))

    total = {tau: sum(w[tau] for w in wins.values()) for tau in TAUS}
    return {"per_task": {t: best(w) for t, w in wins.items()}, "global": best(total)}


def heldout_runs(choice: dict[str, Any]) -> list[Run]:
    """The two held-out runs of a ``tau_choice``: the global τ, and the per-task τ set through
    ``--tau-by-goal`` (the node's ``tau_by_goal``) on top of it."""
    eqm = str(CHECKPOINTS / "mt50_eqm")
    tasks = tuple(choice["per_task"])
    common = ("--k-max", str(TAU_K_MAX), "--tau", f"{choice['global']:g}")
    by_goal = [f"{tau:g}={instruction_for(t)}" for t, tau in choice["per_task"].items()]
    return [Run("global", eqm, tasks, HELDOUT_EPISODES, common, variation_start=HELDOUT_START),
            Run("per_task", eqm, tasks, HELDOUT_EPISODES, (*common, "--tau-by-goal", *by_goal),
                variation_start=HELDOUT_START)]


def analyze_tau_heldout() -> dict[str, Any]:
    """Per-task τ (``tau_by_goal``) against the best global τ on the same held-out episodes,
    with a paired bootstrap interval of the success difference."""
    choice = tau_choice()  # reads the scan's logs once
    runs = {r.name: r for r in heldout_runs(choice)}
    logs = {n: read_keyed(log_path("tau_heldout", r)) for n, r in runs.items()}
    shared = sorted(set(logs["global"]) & set(logs["per_task"]))
    diff = np.array([logs["per_task"][k]["success"] - logs["global"][k]["success"]
                     for k in shared], float)
    rng = np.random.default_rng(0)
    return {"question": "does a per-task τ beat the best global τ on held-out episodes?",
            "chosen_on": "the τ scan (variations 0-9)", "global_tau": choice["global"],
            "per_task_tau": choice["per_task"],
            "held_out": {"variation_start": HELDOUT_START, "episodes_per_task": HELDOUT_EPISODES},
            "runs": {n: {"episodes": len(logs[n]), "planned": r.planned,
                         "success_rate": _rate(list(logs[n].values()))}
                     for n, r in runs.items()},
            "paired_episodes": len(shared),
            "success_diff_per_task_minus_global": round(float(diff.mean()), 4)
            if len(diff) else None,
            "success_diff_ci95": bootstrap_ci(diff, rng, BOOTSTRAP),
            "complete": all(len(logs[n]) >= r.planned for n, r in runs.items())}


def analyze_warm_start(study: str = "warm_start") -> dict[str, Any]:
    """Per mode: success, iterations per decode and K_max hits, each against the cold start
    (``none``) on the same episodes, with a paired bootstrap interval of the difference."""
    runs = study_runs(study)
    logs = {r.name[3:]: read_keyed(log_path(study, r)) for r in runs}
    cold = logs.get("none", {})
    rng = np.random.default_rng(0)
    modes = {}
    for mode, recs in logs.items():
        shared = sorted(set(recs) & set(cold))
        its = [i for e in recs.values() for i in e["iterations"]]
        out = {"episodes": len(recs), "planned": runs[0].planned,
               "success_rate": _rate(list(recs.values())),
               "iters_mean": round(float(np.mean(its)), 3) if its else None,
               "iters_p50": float(np.median(its)) if its else None,
               "k_max_fraction": round(sum(e["k_max_hits"] for e in recs.values())
                                       / max(1, len(its)), 4)}
        if shared and mode != "none":
            ds = np.array([recs[k]["success"] - cold[k]["success"] for k in shared], float)
            di = np.array([np.mean(recs[k]["iterations"]) - np.mean(cold[k]["iterations"])
                           for k in shared])
            boot = rng.integers(0, len(shared), (BOOTSTRAP, len(shared)))
            out["vs_none"] = {
                "episodes": len(shared),
                "success_diff": round(float(ds.mean()), 4),
                "success_diff_ci95": [round(float(v), 4) for v in
                                      np.percentile(ds[boot].mean(1), [2.5, 97.5])],
                "iters_diff": round(float(di.mean()), 3),
                "iters_diff_ci95": [round(float(v), 3) for v in
                                    np.percentile(di[boot].mean(1), [2.5, 97.5])]}
        modes[mode] = out
    return {"question": "which warm start pays: fewer iterations without lost success?",
            "tasks": list(runs[0].tasks), "modes": modes,
            "complete": all(m["episodes"] >= m["planned"] for m in modes.values())}


def _within_limit(rec: dict[str, Any]) -> bool:
    """Success inside ``STEP_LIMIT`` (episodes end at success, so a 500-step log tells)."""
    return bool(rec["success"]) and rec["steps"] <= STEP_LIMIT


def analyze_deadline() -> dict[str, Any]:
    """Success against the solve time each run measured, EqM with ``deadline_ms`` and FM with
    few Euler steps, on 2 episodes of every MT50 task. Each EqM budget is paired with the FM run
    of the most steps whose median solve time fits inside EqM's (the issue's "as many Euler steps
    as fit in the same time"), on the same episodes, with a paired bootstrap interval. The
    unbounded decoders (the MT50 logs, success within the same step limit) are the references."""
    rng = np.random.default_rng(0)
    runs = study_runs("deadline")
    logs = {r.name: read_keyed(log_path("deadline", r)) for r in runs}
    planned = {(t, v, s) for t, v, s in _plan(runs[0])}

    def summary(recs: dict[Any, dict[str, Any]]) -> dict[str, Any]:
        solve = [m for e in recs.values() for m in e.get("solve_ms", [])]
        its = [i for e in recs.values() for i in e["iterations"]]
        won = [_within_limit(e) for e in recs.values()]
        return {"episodes": len(recs), "success_rate": round(float(np.mean(won)), 4)
                if won else None,
                "success_ci95": bootstrap_ci(np.asarray(won, float), rng, BOOTSTRAP)
                if won else None,
                "solve_ms_p50": round(float(np.median(solve)), 3) if solve else None,
                "solve_ms_p90": round(float(np.percentile(solve, 90)), 3) if solve else None,
                "decode_ms_p50": round(float(np.median([m for e in recs.values()
                                                        for m in e["decode_ms"]])), 3)
                if recs else None,
                "iters_mean": round(float(np.mean(its)), 3) if its else None,
                "deadline_fraction": round(sum(e.get("deadline_hits", 0) for e in recs.values())
                                           / max(1, len(its)), 4)}

    out = {r.name: {**summary(logs[r.name]), "planned": r.planned, "args": list(r.args)}
           for r in runs}
    refs = {}
    for name, log in (("eqm_unbounded", "eqm"), ("fm_10steps", "fm")):
        recs = {k: e for k, e in read_keyed(MT50_LOGS / f"{log}.jsonl").items()
                if k in planned}
        refs[name] = {**summary(recs), "source": f"bench/results/mt50_episodes/{log}.jsonl"}
    pairs = {}
    fm_runs = [f"fm_{n}steps" for n in FM_STEPS]
    for d in DEADLINES_MS:
        name = f"eqm_{d:g}ms"
        eqm_ms = out[name]["solve_ms_p50"]
        fits = [f for f in fm_runs if eqm_ms is not None and out[f]["solve_ms_p50"] is not None
                and out[f]["solve_ms_p50"] <= eqm_ms]
        if not fits:
            continue
        fm = fits[-1]
        shared = sorted(set(logs[name]) & set(logs[fm]))
        diff = np.array([_within_limit(logs[name][k]) - _within_limit(logs[fm][k])
                         for k in shared], float)
        pairs[name] = {"fm_run": fm, "episodes": len(shared),
                       "eqm_solve_ms_p50": eqm_ms, "fm_solve_ms_p50": out[fm]["solve_ms_p50"],
                       "success_diff_eqm_minus_fm": round(float(diff.mean()), 4)
                       if len(diff) else None,
                       "success_diff_ci95": bootstrap_ci(diff, rng, BOOTSTRAP)
                       if len(diff) else None}
    return {"question": "under a wall-clock budget, does anytime EqM beat FM with the Euler "
                        "steps that fit in the same time?",
            "deadlines_ms": list(DEADLINES_MS), "fm_steps": list(FM_STEPS),
            "runs": out, "references": refs, "matched": pairs,
            "complete": all(o["episodes"] >= o["planned"] for o in out.values())}


def _plan(run: Run) -> list[list[Any]]:
    from vla_eqm_train.commands.eval_sim import plan

    return plan(list(run.tasks), run.episodes, run.seed, run.variation_start)


def plot_deadline(result: dict[str, Any], out: Path) -> None:
    """Success against median solve time, one line per decoder, the unbounded decoders dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for prefix, color, label in (("eqm_", "C0", "EqM, deadline_ms"),
                                 ("fm_", "C1", "FM, Euler steps")):
        pts = sorted((r["solve_ms_p50"], r["success_rate"], r["success_ci95"], n)
                     for n, r in result["runs"].items()
                     if n.startswith(prefix) and r["solve_ms_p50"] is not None)
        if not pts:
            continue
        x, y = [p[0] for p in pts], [p[1] for p in pts]
        err = np.array([[p[1] - p[2][0], p[2][1] - p[1]] for p in pts]).T
        ax.errorbar(x, y, yerr=err, marker="o", color=color, label=label, capsize=3)
        for px, py, _, name in pts:
            ax.annotate(name.split("_", 1)[1], (px, py), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    for (name, ref), color in zip(result["references"].items(), ("C0", "C1"), strict=True):
        if ref["success_rate"] is not None:
            ax.axhline(ref["success_rate"], color=color, ls="--", lw=0.8,
                       label=f"{name} (MT50 log)")
    ax.set_xlabel("median solve time per decode (ms, this 2-core CPU)")
    ax.set_ylabel(f"success within {STEP_LIMIT} steps")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.set_title("Anytime decoding on MT50 (2 episodes per task, 95 % bootstrap)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------- the stationarity-executability gap
GAP_DATA = Path.home() / "vla_data" / "eqm_claims" / "gap"
GAP_PROBES = OUT / "gap_probes.json"  # the compact, committed extract of the eval-bag report
GAP_K_MAX = 200
GAP_PROBE_CYCLES = 3


def run_gap(workers: int, deadline: float) -> bool:
    """Record one held-out expert episode per MT50 task (variation seed 1000, JPEG cameras as
    the training data), then ``vla-eqm eval-bag --probe-cycles 3 --k-max 200`` with
    ``mt50_eqm``: every probe is a cold τ = 0 solve whose every iterate gets its residual and
    its error against the expert's recorded actions. Each step is skipped when its output is
    there; the per-iterate arrays are extracted to ``GAP_PROBES``."""
    if GAP_PROBES.is_file():
        return True
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    bags, report = GAP_DATA / "bags", GAP_DATA / "eval_bag"
    steps = []
    if not (GAP_DATA / "bags.done").is_file():
        steps.append(("record", ["record", "--suite", "mt50", "--episodes", "1", "--seeds",
                                 "1000", "--workers", str(workers), "--image-transport",
                                 "compressed", "--out", str(bags)], GAP_DATA / "bags.done"))
    if not (report / "report.json").is_file():
        steps.append(("eval-bag", ["eval-bag", "--checkpoint", str(CHECKPOINTS / "mt50_eqm"),
                                   "--bags", str(bags), "--out", str(report), "--probe-cycles",
                                   str(GAP_PROBE_CYCLES), "--k-max", str(GAP_K_MAX),
                                   "--no-progress"], None))
    for name, args, done in steps:
        remaining = deadline - time.monotonic()
        if remaining <= 30:
            return False
        print(f"[eqm_claims] gap: {name}", file=sys.stderr)
        try:
            subprocess.run([sys.executable, "-m", "vla_eqm_train.cli", *args], env=env,
                           cwd=ROOT, check=True, timeout=remaining, stdout=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return False
        if done is not None:
            done.write_text("ok\n")
    data = json.loads((report / "report.json").read_text())
    probes = [{"task": e.get("task"), "variation": e.get("variation"), "tick": pr["tick"],
               **{k: [float(f"{v:.5g}") for v in pr[k]] for k in ("residual", "chunk_l2",
                                                                   "first_l2")}}
              for e in data["episodes"] for pr in e.get("probe", [])]
    GAP_PROBES.parent.mkdir(parents=True, exist_ok=True)
    GAP_PROBES.write_text(json.dumps({"source": "vla-eqm eval-bag on one held-out expert "
                                      "episode per MT50 task (seed 1000)", "k_max": GAP_K_MAX,
                                      "checkpoint": "mt50_eqm", "probes": probes}) + "\n")
    return True


def gap_of_probe(residual: list[float], error: list[float]) -> dict[str, Any]:
    """One cold solve: where the residual and the error are lowest, how much error the
    lowest-residual iterate gives away, and the error at each τ's stop (the first iterate with
    r_k <= τ, the last one if none)."""
    r, e = np.asarray(residual, float), np.asarray(error, float)
    k_res, k_err = int(np.argmin(r)), int(np.argmin(e))
    from scipy.stats import spearmanr

    stops = {f"{tau:g}": int(np.argmax(r <= tau)) if (r <= tau).any() else len(r) - 1
             for tau in TAUS}
    return {"k_min_residual": k_res + 1, "k_min_error": k_err + 1,
            "excess_error": float(e[k_res] - e[k_err]),
            "relative_excess": float((e[k_res] - e[k_err]) / max(e[k_err], 1e-9)),
            "spearman_residual_error": float(spearmanr(r, e).statistic) if len(r) > 2
            else math.nan,
            "error_at_tau_stop": {t: float(e[k]) for t, k in stops.items()},
            "k_at_tau_stop": {t: k + 1 for t, k in stops.items()}}


def analyze_gap() -> dict[str, Any] | None:
    """Across MT50's tasks: does the iterate with the lowest residual have the lowest error?"""
    if not GAP_PROBES.is_file():
        return None
    data = json.loads(GAP_PROBES.read_text())
    rows = [{"task": p["task"], **gap_of_probe(p["residual"], p["chunk_l2"])}
            for p in data["probes"]]
    rng = np.random.default_rng(0)
    excess = np.array([r["relative_excess"] for r in rows])
    same = np.array([abs(r["k_min_residual"] - r["k_min_error"]) <= 1 for r in rows], float)
    per_tau = {t: float(np.mean([r["error_at_tau_stop"][t] for r in rows])) for t in
               rows[0]["error_at_tau_stop"]} if rows else {}
    per_task = {}
    for task in sorted({r["task"] for r in rows}):
        rs = [r for r in rows if r["task"] == task]
        errs = {t: float(np.mean([r["error_at_tau_stop"][t] for r in rs])) for t in per_tau}
        per_task[task] = {"probes": len(rs),
                          "relative_excess_mean": float(np.mean([r["relative_excess"]
                                                                 for r in rs])),
                          "best_tau_offline": min(errs, key=errs.get), "error_at_tau": errs}
    return {"question": "does the lowest-residual iterate execute best (offline, per iterate "
                        "error against the expert)?",
            "probes": len(rows), "tasks": len(per_task), "k_max": data["k_max"],
            "error": "chunk L2 against the expert's recorded actions (eval-bag chunk_error)",
            "same_iterate_fraction": round(float(same.mean()), 4) if rows else None,
            "same_iterate_ci95": bootstrap_ci(same, rng, BOOTSTRAP),
            "k_min_error_quartiles": [float(v) for v in np.percentile(
                [r["k_min_error"] for r in rows], [25, 50, 75])] if rows else None,
            "k_min_residual_quartiles": [float(v) for v in np.percentile(
                [r["k_min_residual"] for r in rows], [25, 50, 75])] if rows else None,
            "relative_excess_median": round(float(np.median(excess)), 4) if rows else None,
            "relative_excess_mean": round(float(excess.mean()), 4) if rows else None,
            "relative_excess_mean_ci95": bootstrap_ci(excess, rng, BOOTSTRAP),
            "spearman_residual_error_median": round(float(np.nanmedian(
                [r["spearman_residual_error"] for r in rows])), 4) if rows else None,
            "error_at_tau_stop_mean": per_tau,
            "best_tau_offline_counts": {t: sum(v["best_tau_offline"] == t
                                               for v in per_task.values()) for t in per_tau},
            "per_task": per_task}


def plot_gap(result: dict[str, Any], out: Path) -> None:
    """Median over probes of the residual and of the error (each divided by its own minimum
    along the solve) against the iteration: where the two minima sit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probes = json.loads(GAP_PROBES.read_text())["probes"]
    r = np.array([p["residual"] for p in probes], float)
    e = np.array([p["chunk_l2"] for p in probes], float)
    k = np.arange(1, r.shape[1] + 1)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9, 3.4))
    for arr, label, color in ((r, "residual r_k", "C0"), (e, "chunk error vs expert", "C1")):
        rel = arr / arr.min(axis=1, keepdims=True)
        ax.plot(k, np.median(rel, 0), color=color, label=label)
        ax.fill_between(k, *np.percentile(rel, [25, 75], 0), color=color, alpha=0.2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("iteration k (cold start, τ = 0)")
    ax.set_ylabel("value / its minimum over k")
    ax.legend(fontsize=7)
    ax.set_title(f"{len(probes)} probes, median and quartiles", fontsize=8)
    taus = list(result["error_at_tau_stop_mean"])
    bx.plot([float(t) for t in taus], [result["error_at_tau_stop_mean"][t] for t in taus],
            marker="o")
    bx.set_xscale("log")
    bx.set_xlabel("τ (the solve stops at the first r_k <= τ)")
    bx.set_ylabel("mean chunk error at the stop")
    bx.set_title("Offline: error of the iterate each τ returns", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def plot_confidence(result: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    groups = [("failure (MT50, within task)", result["failure_mt50"]["within_task"]),
              *[(f"{p} vs seen", result["ood_vs_seen"][p])
                for p in ("unseen", "image_noise", "wrong_goal")]]
    width = 0.8 / len(SIGNALS)
    for j, s in enumerate(SIGNALS):
        vals = [g[s]["auroc"] or 0.5 for _, g in groups]
        errs = [[v - g[s]["ci95"][0], g[s]["ci95"][1] - v] if g[s].get("ci95") else [0, 0]
                for v, (_, g) in zip(vals, groups, strict=True)]
        ax.bar(np.arange(len(groups)) + j * width, vals, width, yerr=np.array(errs).T,
               label=s, capsize=2)
    ax.axhline(0.5, color="k", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(groups)) + 0.4 - width / 2, [g for g, _ in groups], fontsize=8)
    ax.set_ylabel("AUROC")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.set_title("EqM confidence signals (95 % bootstrap intervals)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def plot_tau(result: dict[str, Any], out: Path) -> None:
    """Small multiples: one success curve over τ per task (the issue's per-task curves), with
    the mean iterations per decode on a second axis; ★ marks the best τ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = result.get("tasks", {})
    if not tasks:
        return
    cols = 5
    rows = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.3 * rows), squeeze=False)
    for ax, (task, t) in zip(axes.flat, tasks.items(), strict=False):
        ax.plot(t["taus"], t["success"], marker="o", color="C0")
        ax.plot(t["best_taus"], [t["best_success"]] * len(t["best_taus"]), "*", ms=11,
                color="gold", mec="k")
        twin = ax.twinx()
        twin.plot(t["taus"], t["iters_mean"], color="C1", lw=0.8, ls=":")
        twin.tick_params(labelsize=6, colors="C1")
        ax.set_xscale("log")
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(f"{task} ({t['shape']})", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    fig.suptitle(f"EqM success (blue) and iterations per decode (orange) over τ, K_max "
                 f"{result.get('k_max')}, {STEP_LIMIT}-step episodes", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_tau_pooled(result: dict[str, Any], out: Path) -> None:
    """Success over τ on all scanned tasks together, with the paired interval against the
    reference τ, and the iterations per decode it costs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pooled = result["pooled"]
    taus = [float(t) for t in pooled["taus"]]
    rows = list(pooled["taus"].values())
    ref = next(r for t, r in pooled["taus"].items() if float(t) == pooled["reference_tau"])
    y = [r["success_rate"] for r in rows]
    lo = [ref["success_rate"] + r["vs_reference"]["success_diff_ci95"][0] for r in rows]
    hi = [ref["success_rate"] + r["vs_reference"]["success_diff_ci95"][1] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(taus, y, marker="o", color="C0", label="success (all scanned tasks)")
    ax.fill_between(taus, lo, hi, color="C0", alpha=0.2,
                    label=f"95 % paired interval vs τ = {pooled['reference_tau']:g}")
    ax.axvline(pooled["reference_tau"], color="gray", ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_ylim(0, 1)
    ax.set_xlabel("τ")
    ax.set_ylabel(f"success within {STEP_LIMIT} steps")
    twin = ax.twinx()
    twin.plot(taus, [r["iters_mean"] for r in rows], color="C1", ls="--", marker=".",
              label="iterations per decode")
    twin.set_ylabel("iterations per decode", color="C1")
    ax.legend(fontsize=7, loc="upper left")
    twin.legend(fontsize=7, loc="upper right")
    ax.set_title(f"EqM over τ, {len(result['scanned_tasks'])} MT50 tasks, "
                 f"{rows[0]['episodes']} episodes per τ", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


ANALYSES = {"confidence": analyze_confidence, "tau": analyze_tau,
            "tau_heldout": analyze_tau_heldout,
            "warm_start": analyze_warm_start, "deadline": analyze_deadline,
            "warm_start_five": lambda: analyze_warm_start("warm_start_five")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", nargs="+", choices=STUDIES, default=list(STUDIES))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--time-limit-min", type=float, default=600.0,
                        help="stop starting runs after this long; finished episodes are kept")
    parser.add_argument("--analyze-only", action="store_true", help="run nothing; analyze logs")
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.time_limit_min * 60
    if not args.analyze_only:
        for study in args.study:
            if study == "gap":
                run_gap(args.workers, deadline)
                continue
            try:
                runs = study_runs(study)
            except NotReady as err:  # e.g. tau_heldout before the τ scan is finished
                print(f"[eqm_claims] {study} not run: {err}", file=sys.stderr)
                continue
            # pass by pass, each run at its own sizes (a stable sort keeps the runs' order)
            staged = [(stage, replace(r, episodes=n)) for r in runs
                      for stage, n in enumerate(pass_sizes(r.episodes))]
            for _, run in sorted(staged, key=lambda item: item[0]):
                if not execute(study, run, args.workers, deadline):
                    break
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results.update({"date": dt.date.today().isoformat(), "step_limit": STEP_LIMIT,
                    "machine": "2-core CPU, no GPU", "schema": "docs/eqm_claims.md"})
    gap = analyze_gap()
    if gap is not None:
        results["gap"] = gap
        plot_gap(gap, OUT / "gap.png")
    for study in STUDIES:
        if study == "gap":
            continue
        try:
            if any(read_log(log_path(study, r)) for r in study_runs(study)):
                results[study] = ANALYSES[study]()
        except NotReady as err:  # the other studies are still analyzed
            print(f"[eqm_claims] {study} not analyzed: {err}", file=sys.stderr)
    OUT.mkdir(parents=True, exist_ok=True)
    if "confidence" in results:
        plot_confidence(results["confidence"], OUT / "confidence_auroc.png")
    if "tau" in results:
        plot_tau(results["tau"], OUT / "tau_scan.png")
        plot_tau_pooled(results["tau"], OUT / "tau_pooled.png")
    if "deadline" in results:
        plot_deadline(results["deadline"], OUT / "deadline.png")
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
