"""``vla-eqm eval-sim``: closed-loop success of a checkpoint against the sim bridge, in lockstep.

Episodes run on held-out variations: Meta-World variation sets are drawn per seed
(``metaworld.MT1(task, seed=S)``), the shipped demos come from seed 0, and evaluation uses seed
1000 by default, so no evaluated start state was ever demonstrated. Episodes are spread over
``--workers`` processes (``eval_worker``), each with its own sim bridge, policy client and private
``ROS_DOMAIN_ID``; DDS stays on loopback. The JSON report holds ``mean_success`` (mean over tasks)
and, per task, ``success_rate``, ``episodes``, ``iters_p50`` and ``decode_ms_p50``, plus the
decoder settings used (after command-line overrides). ``--expert`` scores Meta-World's scripted
expert on the same episodes instead: the reference row of the success table.

Every report also carries the MT50 scoring (``evaluation.benchmark``): ``per_task``,
``group_success`` {easy, medium, hard, very_hard}, ``group_mean`` (the published table's metric)
and ``episode_mean``, plus the same at RLinf's 100-step limit (``within_100_steps``).
``--markdown FILE`` writes our row beside the published ones. With ``--suite`` the step limit
defaults to Meta-World's ``max_path_length`` of 500, the limit LeRobot's Meta-World env (and so
SmolVLA's MT50 protocol) runs episodes to.

Without ``--checkpoint`` and ``--tasks`` it evaluates the shipped default checkpoint on the tasks
it was trained on.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from vla_eqm_sim.suites import add_task_arguments, expand
from vla_eqm_sim.workers import add_worker_arguments
from vla_eqm_train.evaluation.benchmark import markdown_table, suite_metrics

DEFAULT_HELD_OUT_SEED = 1000
SUITE_STEP_LIMIT = 500  # metaworld max_path_length; LeRobot's MetaworldEnv runs episodes to it
SHORT_STEP_LIMIT = 100  # RLinf's Meta-World evaluation config (max_episode_steps)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint directory (default: the shipped default_eqm)")
    add_task_arguments(parser, "the checkpoint's training tasks")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per task")
    parser.add_argument("--seed", type=int, default=DEFAULT_HELD_OUT_SEED,
                        help="variation-set seed (held out: demos use seed 0)")
    parser.add_argument("--variation-start", type=int, default=0, help="first variation index")
    add_worker_arguments(parser, 2, "one episode at a time each")
    parser.add_argument("--max-steps", type=int, default=None,
                        help=f"episode step limit (default: {SUITE_STEP_LIMIT} with --suite, the "
                             "MT50 protocol; 200 otherwise: the demos finish in <= 80 steps)")
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    parser.add_argument("--log", type=Path, default=None,
                        help="append each finished episode here (JSON lines); a rerun with the "
                             "same settings runs only the episodes not in it (resume, also on "
                             "another machine: settings match by checkpoint hash)")
    parser.add_argument("--markdown", type=Path, default=None,
                        help="write the MT50 table (published rows and ours) here")
    parser.add_argument("--name", default=None,
                        help="our row's name in the markdown table (default: the checkpoint)")
    parser.add_argument("--expert", action="store_true",
                        help="score the scripted expert on the same episodes (needs --tasks; "
                             "the bridge publishes what --contract names)")
    parser.add_argument("--contract", type=Path, default=None,
                        help="--expert only: contract for the bridge's cameras (default: the "
                             "Meta-World contract of vla_eqm_train)")
    parser.add_argument("--policy-seed", type=int, default=0, help="seed of the decoder noise")
    g = parser.add_argument_group("decoder overrides")
    g.add_argument("--tau", type=float, help="EqM residual threshold")
    g.add_argument("--tau-by-goal", nargs="+", metavar="TAU=GOAL",
                   help="a threshold per language goal (the node's tau_by_goal)")
    g.add_argument("--k-max", type=int, help="EqM iteration cap")
    g.add_argument("--step-size", type=float, help="EqM step size eta")
    g.add_argument("--momentum", type=float, help="EqM Nesterov momentum mu")
    g.add_argument("--deadline-ms", type=float, help="EqM wall-clock deadline per decode")
    g.add_argument("--warm-start", choices=["none", "copy", "shifted", "frozen"],
                   help="warm-start mode")
    g.add_argument("--warm-start-fraction", type=float, help="share of H reused")
    g.add_argument("--warm-start-tail", choices=["noise", "hold"], help="warm-start tail")
    g.add_argument("--warm-start-frozen-rows", type=int,
                   help="frozen warm start: rows held fixed during the solve")
    g.add_argument("--fm-steps", type=int, help="FM Euler steps")
    g.add_argument("--execute-steps", type=int, help="actions executed per decode")
    p = parser.add_argument_group("out-of-distribution probes (the sim bridge's parameters)")
    p.add_argument("--image-noise", type=float, default=0.0, metavar="STD",
                   help="Gaussian pixel noise on every camera frame, 0-255 units (image_noise_std)")
    p.add_argument("--wrong-goal", action="store_true",
                   help="publish another task's instruction as the goal (wrong_goal)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


_OVERRIDES = ("tau", "tau_by_goal", "k_max", "step_size", "momentum", "deadline_ms", "warm_start",
              "warm_start_fraction", "warm_start_tail", "warm_start_frozen_rows", "fm_steps",
              "execute_steps")


def overrides_of(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in _OVERRIDES if getattr(args, k, None) is not None}


def probes_of(args: argparse.Namespace) -> dict[str, Any]:
    """The sim bridge's OOD-probe parameters the flags set (none by default)."""
    probes: dict[str, Any] = {}
    if getattr(args, "image_noise", 0.0):
        if not 0.0 < args.image_noise <= 255.0:
            raise ValueError(f"--image-noise {args.image_noise} is outside (0, 255]")
        probes["image_noise_std"] = float(args.image_noise)
    if getattr(args, "wrong_goal", False):
        probes["wrong_goal"] = True
    return probes


def plan(tasks: list[str], episodes: int, seed: int, variation_start: int = 0
         ) -> list[list[Any]]:
    """[task, variation, seed] per episode; past 50 variations the next seed's set is used."""
    from vla_eqm_sim.record_worker import variation_of

    return [[task, *variation_of(variation_start + i, seed)] for task in tasks
            for i in range(episodes)]


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def aggregate(records: list[dict[str, Any]], tasks: list[str]) -> dict[str, Any]:
    """Per-task success and decoder statistics, and the mean success over tasks."""
    per_task = {}
    for task in tasks:
        rs = [r for r in records if r["task"] == task]
        iters = [i for r in rs for i in r["iterations"]]
        ms = [m for r in rs for m in r["decode_ms"]]
        per_task[task] = {
            "success_rate": float(np.mean([r["success"] for r in rs])) if rs else 0.0,
            "episodes": len(rs),
            "successes": int(sum(r["success"] for r in rs)),
            "iters_p50": _percentile(iters, 50),
            "decode_ms_p50": _percentile(ms, 50),
            "decode_ms_p95": _percentile(ms, 95),
            "steps_p50": _percentile([r["steps"] for r in rs], 50),
            "errors": [r["error"] for r in rs if r.get("error")],
        }
    rates = [v["success_rate"] for v in per_task.values()]
    return {"mean_success": float(np.mean(rates)) if rates else 0.0, "tasks": per_task}


def decoder_settings(config: Any) -> dict[str, Any]:
    """The settings a report must carry to be reproducible: every tunable setting
    (``vla_eqm_ros.settings``, the node's parameter names) and the horizon."""
    from vla_eqm_ros import settings

    values = {k: list(v) if isinstance(v, tuple) else v
              for k, v in settings.values(config).items()}
    return {**values, "horizon": config.model.horizon}


def run_workers(settings: dict[str, Any], episodes: list[list[Any]], workers: int,
                domain_base: int | None, progress: bool,
                on_record: Any = None) -> list[dict[str, Any]]:
    """Hand the episodes, one job each, to ``workers`` processes (``workers.JobPool``);
    returns their records in plan order (``on_record`` sees each as it finishes). A policy
    reseeds at every episode, so a record never depends on which worker ran it."""
    from tqdm import tqdm

    from vla_eqm_sim.workers import JobPool

    bar = tqdm(total=len(episodes), desc="eval-sim", unit="ep", disable=not progress,
               file=sys.stderr)
    records: list[dict[str, Any]] = []

    def on_event(event: dict[str, Any]) -> None:
        if event.get("event") != "episode":
            return
        records.append({k: v for k, v in event.items() if k not in ("event", "worker")})
        if on_record is not None:
            on_record(records[-1])
        bar.update(1)
        bar.set_postfix(success=f"{sum(r['success'] for r in records)}/{len(records)}")

    pool = JobPool("vla_eqm_train.evaluation.sim.worker", workers, json.dumps(settings),
                   domain_base)
    errors = pool.run(({"episodes": [ep]} for ep in episodes), on_event)
    bar.close()
    for err in errors:
        print(f"warning: {err}", file=sys.stderr)
    order = {tuple(ep): i for i, ep in enumerate(episodes)}
    return sorted(records, key=lambda r: order.get(episode_key(r), 0))


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Plan, run and aggregate an evaluation; returns the report."""
    from vla_eqm_ros.checkpoint import load_config
    from vla_eqm_ros.policy import DEFAULT_CHECKPOINT

    checkpoint = Path(args.checkpoint) if args.checkpoint is not None else DEFAULT_CHECKPOINT
    overrides = overrides_of(args)
    if args.expert and args.checkpoint is None:
        from vla_eqm_ros.contract import Contract
        from vla_eqm_train.commands.dataset import DEFAULT_CONTRACT

        tasks = expand(args.tasks, args.suite)
        if not tasks:
            raise ValueError("--expert needs --tasks or --suite (or a --checkpoint to take "
                             "them from)")
        config = None
        contract = Contract.from_yaml(args.contract or DEFAULT_CONTRACT).to_dict()
    else:
        config = load_config(checkpoint)
        if overrides:  # validate here, once, with the same code the workers use
            config = _apply_overrides(config, overrides)
        contract = config.contract
        tasks = (expand(args.tasks, args.suite) if args.tasks or args.suite
                 else list(config.provenance.get("dataset_tasks", [])))
    if not tasks:
        raise ValueError(f"{checkpoint} records no training tasks; pass --tasks")
    if args.episodes < 1 or args.workers < 1:
        raise ValueError("--episodes and --workers must be >= 1")
    max_steps = args.max_steps or (SUITE_STEP_LIMIT if args.suite else 200)
    # Interleaved over tasks, so that the progress bar's rate is a fair estimate from the start.
    by_task = plan(tasks, args.episodes, args.seed, args.variation_start)
    episodes = [by_task[t * args.episodes + i] for i in range(args.episodes)
                for t in range(len(tasks))]
    settings = {"checkpoint": str(checkpoint), "overrides": overrides, "max_steps": max_steps,
                "seed": args.policy_seed, "expert": bool(args.expert), "contract": contract,
                "threads": 1, "bridge": probes_of(args)}
    log = (EpisodeLog(args.log, log_identity(settings, checkpoint, config)) if args.log
           else None)
    done = log.records(episodes) if log else []
    logged = {episode_key(r) for r in done}
    todo = [ep for ep in episodes if tuple(ep) not in logged]
    n = max(1, min(args.workers, len(todo)))
    t0 = time.monotonic()
    fresh = (run_workers(settings, todo, n, args.domain_base, not args.no_progress,
                         log.append if log else None) if todo else [])
    order = {tuple(ep): i for i, ep in enumerate(episodes)}
    records = sorted(done + fresh, key=lambda r: order.get(episode_key(r), 0))
    report = aggregate(records, tasks)
    report.update(suite_metrics(records, tasks))
    report["within_100_steps"] = suite_metrics(records, tasks, SHORT_STEP_LIMIT)
    report.update({
        "policy": "scripted expert" if args.expert else str(checkpoint),
        "decoder_settings": None if args.expert or config is None else decoder_settings(config),
        "held_out": {"seed": args.seed, "variation_start": args.variation_start,
                     "training_demos": "seed 0 (vla-eqm record default)"},
        "probes": settings["bridge"], "max_steps": max_steps, "step_limit": max_steps,
        "variation_seed": args.seed,
        "episodes_per_task": args.episodes, "checkpoint": None if args.expert else str(checkpoint),
        "workers": n, "episodes_run": len(records),
        "episodes_planned": len(episodes), "wall_s": round(time.monotonic() - t0, 1),
        "episodes_resumed": len(done),
        "episode_seconds": round(sum(r.get("wall_s", 0.0) for r in records), 1),
        "client": "vla_eqm_train.evaluation.sim.client.PolicyClient (lockstep, ROS topics)",
        "episodes": records,
    })
    return report


def episode_key(record: dict[str, Any]) -> tuple[Any, ...]:
    """An episode's start state, (task, variation, seed): what logs resume and runs pair by."""
    return (record["task"], record["variation"], record["seed"])


def log_identity(settings: dict[str, Any], checkpoint: Path, config: Any = None
                 ) -> dict[str, Any]:
    """What must match for logged episodes to count: the weights (by hash, so a log resumes in
    another clone), the overrides and the decoder settings they give (``config``, with the
    overrides applied: a changed checkpoint default must not resume a log written under the old
    one), the step limit, the policy seed, expert or not, and the bridge's probes if any."""
    import hashlib

    weights = checkpoint / "model.safetensors"
    digest = (hashlib.sha256(weights.read_bytes()).hexdigest()
              if not settings["expert"] and weights.is_file() else None)
    return {"weights_sha256": digest, "overrides": settings["overrides"],
            "decoder": None if settings["expert"] or config is None else decoder_settings(config),
            "max_steps": settings["max_steps"], "policy_seed": settings["seed"],
            "expert": settings["expert"], **({"bridge": settings["bridge"]}
                                             if settings.get("bridge") else {})}


def logged_episodes(path: Path) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The finished episodes of a ``--log`` file by (task, variation, seed): the header, lines
    cut off by an interruption and failed runs (which are run again) are skipped, and the last
    record wins if an episode was logged twice."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    if not Path(path).is_file():
        return out
    for line in Path(path).read_text().splitlines()[1:]:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line cut off by an interruption
            continue
        if not rec.get("error"):
            out[episode_key(rec)] = rec
    return out


class EpisodeLog:
    """``--log``: one header line (the identity) and one JSON line per finished episode."""

    def __init__(self, path: Path, identity: dict[str, Any]) -> None:
        self.path, self.identity = Path(path), identity
        text = self.path.read_text() if self.path.is_file() else ""
        if text:
            header = json.loads(text.splitlines()[0])
            if header.get("identity") != identity:
                changed = sorted(k for k in identity
                                 if header.get("identity", {}).get(k) != identity[k])
                raise ValueError(f"{self.path} was written with other settings ({changed}); "
                                 "use another --log")
            if not text.endswith("\n"):  # a line cut off by an interruption
                with self.path.open("a") as fh:
                    fh.write("\n")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({"identity": identity}) + "\n")

    def records(self, episodes: list[list[Any]]) -> list[dict[str, Any]]:
        """The logged records of planned episodes (the last one wins if logged twice)."""
        wanted = {tuple(ep) for ep in episodes}
        return [rec for key, rec in logged_episodes(self.path).items() if key in wanted]

    def append(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")


def _apply_overrides(config: Any, overrides: dict[str, Any]) -> Any:
    """The checkpoint's config with the overrides (setting names, ``vla_eqm_ros.settings``: the
    same map the node and ``Policy.update_solver`` use), validated by the core's dataclasses."""
    from vla_eqm_ros import settings

    return settings.apply(config, overrides)


def _print_table(report: dict[str, Any]) -> None:
    print(f"{'task':32s} {'success':>8s} {'episodes':>8s} {'iters_p50':>9s} {'ms_p50':>8s}",
          file=sys.stderr)
    for task, r in report["tasks"].items():
        it = "-" if r["iters_p50"] is None else f"{r['iters_p50']:.0f}"
        ms = "-" if r["decode_ms_p50"] is None else f"{r['decode_ms_p50']:.1f}"
        print(f"{task:32s} {r['success_rate']:8.2f} {r['episodes']:8d} {it:>9s} {ms:>8s}",
              file=sys.stderr)
    print(f"{'mean':32s} {report['mean_success']:8.2f}", file=sys.stderr)
    groups = "  ".join(f"{g} {v:.2f}" for g, v in report["group_success"].items())
    if groups:
        print(f"groups: {groups}  group_mean {report['group_mean']:.3f}  episode_mean "
              f"{report['episode_mean']:.3f}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from vla_eqm_ros.checkpoint import CheckpointError

    try:
        report = evaluate(args)
    except (CheckpointError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    _print_table(report)
    text = json.dumps(report, indent=1)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        name = args.name or ("scripted expert" if args.expert else Path(report["policy"]).name)
        args.markdown.write_text(markdown_table([{
            "policy": name, **{k: report[k] for k in ("group_success", "group_mean",
                                                       "episode_mean")},
            "source": f"ours: {report['episodes_run']} episodes, {report['step_limit']} steps, "
                      f"seed {report['variation_seed']}"}]))
    summary = {k: v for k, v in report.items() if k != "episodes"}
    print(json.dumps(summary))
    return 0 if report["episodes_run"] == report["episodes_planned"] else 1
