"""Meta-World MT50 at the published protocol, EqM and FM side by side; the README table from it.

    python bench/mt50.py                       # evaluate the shipped mt50_eqm and mt50_fm
    python bench/mt50.py --eqm CKPT --fm CKPT --episodes 10 --workers 2
    python bench/mt50.py --table-only          # rewrite the README table from the results file

Each checkpoint runs ``vla-eqm eval-sim --suite mt50 --episodes 10`` (held-out variation seed 1000,
the 500-step limit of LeRobot's Meta-World env, episodes end at the first success). The raw
reports are kept under ``--raw`` and reused when their settings match; every finished episode is
also appended to ``bench/results/mt50_episodes/<decoder>.jsonl`` (``eval-sim --log``), so an
interrupted run resumes where it stopped, even in a fresh clone. Writes
``bench/results/mt50.json`` with, per decoder, ``per_task``, ``group_success``, ``group_mean``,
``episode_mean``, ``episodes_per_task``, ``step_limit``, ``variation_seed`` and ``checkpoint``
(plus the 100-step figures and wall times), then the README's MT50 table between its ``mt50``
markers, beside the published rows. Prints the results as one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = ROOT / "vla_eqm_ros" / "vla_eqm_ros" / "checkpoints"
RESULTS = ROOT / "bench" / "results" / "mt50.json"
# every finished episode, committed as it grows: an evaluation interrupted at a session's end
# resumes in the next one, on any clone (eval-sim --log matches the weights by hash)
EPISODE_LOGS = ROOT / "bench" / "results" / "mt50_episodes"
README = ROOT / "README.md"
BEGIN, END = "<!-- mt50:begin -->", "<!-- mt50:end -->"
KEYS = ("per_task", "group_success", "group_mean", "episode_mean", "episodes_per_task",
        "step_limit", "variation_seed", "checkpoint")


def evaluate(name: str, checkpoint: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One decoder's eval-sim report (reused from ``--raw`` when its settings match)."""
    from vla_eqm_ros.checkpoint import load_config
    from vla_eqm_train.commands.eval_sim import decoder_settings

    raw = args.raw / f"{name}.json"
    if raw.is_file():
        report = json.loads(raw.read_text())
        if (report.get("episodes_per_task") == args.episodes
                and report.get("checkpoint") == str(checkpoint)
                and report.get("decoder_settings") == decoder_settings(load_config(checkpoint))
                and report.get("episodes_run") == report.get("episodes_planned")):
            return report
    raw.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "vla_eqm_train.cli", "eval-sim", "--checkpoint",
               str(checkpoint), "--suite", "mt50", "--episodes", str(args.episodes),
               "--workers", str(args.workers), "--json", str(raw),
               "--log", str(args.episode_logs / f"{name}.jsonl")]
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    subprocess.run(command, env=env, check=True, cwd=ROOT)
    return json.loads(raw.read_text())


def summarize(name: str, report: dict[str, Any]) -> dict[str, Any]:
    iters = [r["iters_p50"] for r in report["tasks"].values() if r["iters_p50"] is not None]
    return {**{k: report[k] for k in KEYS}, "decoder": name,
            "groups_complete": report["groups_complete"],
            "within_100_steps": {k: report["within_100_steps"][k]
                                 for k in ("group_success", "group_mean", "episode_mean")},
            "episodes_run": report["episodes_run"],
            # worker time over all runs (resumed ones too) / workers: the wall time of one run
            "wall_min": round(report.get("episode_seconds", report["wall_s"])
                              / max(1, report["workers"]) / 60, 1),
            "episode_seconds": report.get("episode_seconds"), "workers": report["workers"],
            "iters_p50_median": sorted(iters)[len(iters) // 2] if iters else None,
            "decoder_settings": report["decoder_settings"]}


def changed_settings(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The decoder settings of ``old`` that differ from ``new`` (both ``decoder_settings``)."""
    return {k: v for k, v in old.items() if new.get(k) != v}


def superseded(previous: dict[str, Any], decoders: dict[str, Any]) -> dict[str, Any]:
    """Earlier results of a decoder whose shipped settings have since changed, kept beside the
    new ones (named by the decoder and the settings it had, ``eqm_tau0.1``) so that the change
    stays visible. Names given before are kept."""
    kept = dict(previous.get("superseded", {}))
    for name, old in previous.get("decoders", {}).items():
        new = decoders.get(name)
        if new is not None and old.get("decoder_settings") != new["decoder_settings"]:
            diff = changed_settings(old.get("decoder_settings") or {}, new["decoder_settings"])
            kept["_".join([name, *(f"{k}{v}" for k, v in diff.items())])] = old
    return kept


def readme_table(results: dict[str, Any]) -> str:
    from vla_eqm_train.evaluation.benchmark import markdown_table

    rows = []
    shown = [(f"**ours: {name.upper()}** (`{Path(r['checkpoint']).name}`)", r)
             for name, r in results["decoders"].items()]
    for r in results.get("superseded", {}).values():
        diff = changed_settings(r["decoder_settings"],
                                results["decoders"][r["decoder"]]["decoder_settings"])
        shown.append((f"ours, superseded: {r['decoder'].upper()} with "
                      + ", ".join(f"{k} {v}" for k, v in diff.items())
                      + f" (`{Path(r['checkpoint']).name}`)", r))
    for policy, r in shown:
        rows.append({"policy": policy,
                     **{k: r[k] for k in ("group_success", "group_mean", "episode_mean")},
                     "source": f"{r['episodes_run']} episodes, {r['step_limit']}-step limit, "
                               f"variation seed {r['variation_seed']}"})
    return (markdown_table(rows) + f"\nGenerated by `python bench/mt50.py` from "
            f"`bench/results/mt50.json` ({results['date']}): `{results['command']}`.\n")


def write_readme(results: dict[str, Any], path: Path = README) -> None:
    text = path.read_text()
    block = f"{BEGIN}\n{readme_table(results)}{END}"
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _m: block, text,
                      flags=re.S)
    else:
        raise SystemExit(f"{path} has no {BEGIN} ... {END} markers to put the table between")
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eqm", type=Path, default=CHECKPOINTS / "mt50_eqm")
    parser.add_argument("--fm", type=Path, default=CHECKPOINTS / "mt50_fm")
    parser.add_argument("--episodes", type=int, default=10,
                        help="episodes per task (published: 10)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--raw", type=Path, default=Path.home() / "vla_data" / "mt50" / "eval")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--episode-logs", type=Path, default=EPISODE_LOGS,
                        help="where each decoder's episodes are logged (resume)")
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--table-only", action="store_true",
                        help="only rewrite the README table from --out")
    args = parser.parse_args(argv)
    if args.table_only:
        write_readme(json.loads(args.out.read_text()), args.readme)
        return 0
    decoders = {name: summarize(name, evaluate(name, ckpt.resolve(), args))
                for name, ckpt in (("eqm", args.eqm), ("fm", args.fm))}
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    from vla_eqm_train.commands.eval_sim import logged_episodes
    from vla_eqm_train.evaluation.benchmark import group_mean_intervals

    intervals = group_mean_intervals(
        {n: list(logged_episodes(args.episode_logs / f"{n}.jsonl").values()) for n in decoders},
        list(decoders["eqm"]["per_task"]))
    results = {"date": dt.date.today().isoformat(),
               "command": f"python bench/mt50.py --episodes {args.episodes} "
                          f"--workers {args.workers}",
               "protocol": {"suite": "mt50", "episodes_per_task": args.episodes,
                            "step_limit": decoders["eqm"]["step_limit"],
                            "variation_seed": decoders["eqm"]["variation_seed"],
                            "end_on_success": True,
                            "headline": "group_mean: the mean of the four group means"},
               "machine": "2-core CPU, no GPU", "decoders": decoders,
               "intervals": intervals,
               "superseded": superseded(previous, decoders)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    write_readme(results, args.readme)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
