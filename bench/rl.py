"""RL fine-tuning, before and after: ``vla-eqm rl`` per method, then eval-sim on the node's path.

    python bench/rl.py                                   # residual and steer on pick-place-v3
    python bench/rl.py --methods residual --minutes 90 --tasks pick-place-v3
    python bench/rl.py --checkpoint vla_eqm_ros/vla_eqm_ros/checkpoints/mt50_eqm \
        --tasks shelf-place-v3 --methods residual --minutes 70 --max-steps 500   # MT50 protocol

For each method, ``vla-eqm rl`` fine-tunes ``--checkpoint`` on ``--tasks`` for ``--minutes`` of
wall time with ``--workers`` rollout processes and a ``--max-steps`` episode limit (resumable: a
rerun continues each run). Then
``vla-eqm eval-sim`` (lockstep bridge, ROS topics, held-out variation seed 1000) scores the parent
and every fine-tuned checkpoint on the trained tasks (``--episodes``) and on ``--control-tasks``
(the tasks it was not trained on: "no loss elsewhere"). Raw reports live under ``--work`` and are
reused when present. Writes ``bench/results/rl.json`` (per method, kept across invocations on
the same parent: before/after success per task, solver iterations, environment steps, wall time,
CPU-hours, the learning curve, the command that ran it) and copies each curve to
``bench/results/rl/<method>_curve.png``. Another parent (``--checkpoint mt50_eqm``) gets its own
``rl_<name>.json``, ``~/vla_data/rl_bench_<name>`` and ``<method>_<name>_curve.png``; so does a
study given ``--name`` (``--name b64 --episodes-per-iteration 64``). ``--confirm-episodes N``
scores parent and methods on N further held-out variations of the trained tasks, and ``paired``
in each method's results holds the gain over all of them, paired by episode, with a bootstrap
interval and a sign test. Prints the results as one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from vla_eqm_train.evaluation.paired import paired_success

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "vla_eqm_ros" / "vla_eqm_ros" / "checkpoints" / "default_eqm"
RESULTS = ROOT / "bench" / "results" / "rl.json"
CONTROL = ["button-press-topdown-v3", "drawer-open-v3", "drawer-close-v3", "handle-press-v3"]


def _cli(*args: str) -> None:
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    subprocess.run([sys.executable, "-m", "vla_eqm_train.cli", *args], env=env, check=True,
                   cwd=ROOT)


def eval_sim(checkpoint: Path, tasks: list[str], episodes: int, raw: Path, workers: int,
             max_steps: int = 200, variation_start: int = 0) -> dict[str, Any]:
    """eval-sim's report, reused from ``raw`` when it scored this checkpoint, as it is now (a
    resumed run rewrites its checkpoint), on the same episodes and step limit."""
    if raw.is_file():
        report = json.loads(raw.read_text())
        weights = checkpoint / "model.safetensors"
        if (report.get("episodes_per_task") == episodes and sorted(report["tasks"]) == sorted(tasks)
                and report.get("episodes_run") == report.get("episodes_planned")
                and report.get("step_limit", 200) == max_steps
                and report.get("held_out", {}).get("variation_start", 0) == variation_start
                and Path(report.get("checkpoint", "")).resolve() == checkpoint.resolve()
                and (not weights.is_file() or raw.stat().st_mtime >= weights.stat().st_mtime)):
            return report
    raw.parent.mkdir(parents=True, exist_ok=True)
    _cli("eval-sim", "--checkpoint", str(checkpoint), "--tasks", *tasks, "--episodes",
         str(episodes), "--workers", str(workers), "--max-steps", str(max_steps),
         "--variation-start", str(variation_start), "--json", str(raw), "--no-progress")
    return json.loads(raw.read_text())


def parent_paths(parent: Path, work: Path | None, out: Path | None,
                 name: str | None = None) -> tuple[Path, Path, str]:
    """(work, out, suffix) for ``parent``: ``default_eqm`` keeps the plain names, any other parent
    gets ``_<name>`` on each, so that another parent's runs and cached evaluations are never
    reused for this one, nor its results overwritten by this one's. A study ``name`` (another
    task, another batch size on the same parent) takes the suffix's place for the same reason.
    Explicit paths win."""
    suffix = (f"_{name}" if name else
              "" if parent.resolve() == DEFAULT.resolve() else f"_{parent.name}")
    return (work or Path.home() / "vla_data" / f"rl_bench{suffix}",
            out or RESULTS.with_name(f"rl{suffix}.json"), suffix)


def _success(report: dict[str, Any]) -> dict[str, Any]:
    return {t: {"success": r["success_rate"], "episodes": r["episodes"],
                "iters_p50": r["iters_p50"]} for t, r in report["tasks"].items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=DEFAULT)
    p.add_argument("--tasks", nargs="+", default=["pick-place-v3"])
    p.add_argument("--control-tasks", nargs="*", default=CONTROL)
    p.add_argument("--methods", nargs="+", default=["residual", "steer"],
                   choices=["residual", "steer"])
    p.add_argument("--minutes", type=float, default=90.0, help="wall time per method")
    p.add_argument("--iterations", type=int, default=1000,
                   help="iteration cap per method (the time limit usually ends a run first)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--episodes-per-iteration", type=int, default=16, help="rollouts per task")
    p.add_argument("--rl-eval-episodes", type=int, default=20,
                   help="held-out episodes per task of the run's own curve")
    p.add_argument("--episodes", type=int, default=20, help="eval-sim episodes per trained task")
    p.add_argument("--control-episodes", type=int, default=10)
    p.add_argument("--max-steps", type=int, default=200,
                   help="episode step limit of rollouts and evaluations (MT50's protocol: 500)")
    p.add_argument("--work", type=Path, default=None,
                   help="runs and raw reports (default ~/vla_data/rl_bench, or rl_bench_<name> "
                        "for a checkpoint other than default_eqm)")
    p.add_argument("--out", type=Path, default=None,
                   help="results JSON (default bench/results/rl.json, or rl_<name>.json for a "
                        "checkpoint other than default_eqm)")
    p.add_argument("--confirm-episodes", type=int, default=0,
                   help="also score parent and methods on this many further held-out variations "
                        "per trained task (after the first --episodes), paired over all of them")
    p.add_argument("--name", default=None,
                   help="a study name: results, work tree and curves get _NAME instead of the "
                        "parent's suffix, so that a study on the same parent (another task, "
                        "another batch) keeps the others' results")
    args = p.parse_args(argv)

    parent = args.checkpoint.resolve()
    parent_name = str(parent.relative_to(ROOT)) if parent.is_relative_to(ROOT) else str(parent)
    args.work, args.out, suffix = parent_paths(parent, args.work, args.out, args.name)
    command = "python bench/rl.py " + " ".join(argv if argv is not None else sys.argv[1:])

    def score(checkpoint: Path, name: str
              ) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        """Success on the trained tasks and on the control tasks, and the trained tasks' episodes
        (the first ``--episodes`` and ``--confirm-episodes`` more, for pairing), cached as
        ``eval/<name>*``."""
        raw = args.work / "eval"
        report = eval_sim(checkpoint, args.tasks, args.episodes, raw / f"{name}.json",
                          args.workers, args.max_steps)
        trained, episodes = _success(report), list(report["episodes"])
        if args.confirm_episodes:
            episodes += eval_sim(checkpoint, args.tasks, args.confirm_episodes,
                                 raw / f"{name}_confirm.json", args.workers, args.max_steps,
                                 variation_start=args.episodes)["episodes"]
        control = (_success(eval_sim(checkpoint, args.control_tasks, args.control_episodes,
                                     raw / f"{name}_control.json", args.workers, args.max_steps))
                   if args.control_tasks else {})
        return trained, control, episodes

    before, control_before, before_episodes = score(parent, "parent")
    # Methods run by earlier invocations on the same parent stay in the results (one method per
    # run fits a session); another parent's would sit under this parent's name, so they go.
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    methods: dict[str, Any] = (previous.get("methods", {})
                               if previous.get("parent") == parent_name else {})
    for method in args.methods:
        ck, run = args.work / method / "checkpoint", args.work / method / "run"
        resume = ["--resume"] if (run / "rl_state.pt").is_file() else []
        _cli("rl", "--checkpoint", str(parent), "--tasks", *args.tasks, "--out", str(ck),
             "--run-dir", str(run), "--method", method, "--workers", str(args.workers),
             "--iterations", str(args.iterations), "--time-limit-min", str(args.minutes),
             "--episodes-per-iteration", str(args.episodes_per_iteration),
             "--eval-episodes", str(args.rl_eval_episodes), "--max-steps", str(args.max_steps),
             "--no-progress", *resume)
        rl = json.loads((run / "rl_report.json").read_text())
        after, control, after_episodes = score(ck, method)
        curve = ROOT / "bench" / "results" / "rl" / f"{method}{suffix}_curve.png"
        curve.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run / "learning_curve.png", curve)
        methods[method] = {
            "tasks": {t: {"before": before[t]["success"], "after": after[t]["success"],
                          "episodes": after[t]["episodes"],
                          "iters_p50_before": before[t]["iters_p50"],
                          "iters_p50_after": after[t]["iters_p50"]} for t in args.tasks},
            "control": {t: {"before": control_before[t]["success"],
                            "after": control[t]["success"], "episodes": control[t]["episodes"]}
                        for t in args.control_tasks},
            "env_steps": rl["env_steps"], "iterations": rl["iterations"],
            "wall_min": round(rl["wall_s"] / 60, 1), "cpu_hours": rl["cpu_hours"],
            "stopped": rl["stopped"], "curve_png": str(curve.relative_to(ROOT)),
            "rl_curve": rl["curve"], "rl_config": rl["config"],
            "paired": paired_success(before_episodes, after_episodes),
            "command": command}
    results = {"date": dt.date.today().isoformat(), "parent": parent_name,
               "evaluation": "vla-eqm eval-sim (lockstep bridge over ROS topics), variation seed "
                             f"1000 (held out; rollouts use seed 2000+), {args.max_steps}-step "
                             "limit",
               "machine": "2-core CPU, no GPU", "methods": methods}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "methods"}
                     | {"methods": {m: {k: v for k, v in r.items() if k != "rl_curve"}
                                    for m, r in methods.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
