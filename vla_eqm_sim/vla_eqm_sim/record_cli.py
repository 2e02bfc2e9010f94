"""``vla-eqm record``: scripted-expert demonstrations as rosbag2 (MCAP) bags.

For each task and seed, the expert records until it holds ``--episodes`` successful
demonstrations, or until ``--max-attempts`` attempts (default three times ``--episodes``).
Attempt i plays variation ``start + i`` of the seed's set (past 50, the next seed's set) and is
written to ``OUT/<task>__varVV__seedS`` with a JSON sidecar. Failed attempts are kept and labelled
``"label": "failure"``; with ``--success-only`` they go to ``OUT/failed/`` instead. ``dataset
build`` drops failures either way.

Resumable: a rerun into the same ``OUT`` counts the finished attempts and records only what is
missing (``--overwrite`` records everything anew). ``--workers N`` records N tasks at a time in N
processes, each on its own ROS domain. ``--image-transport compressed`` stores the cameras as JPEG
``CompressedImage`` on ``.../image_raw/compressed``, as a robot's camera driver publishes them.
``OUT/record_summary.json`` gives per task the attempts, successes, expert success rate, frames
and bytes, the tasks that fell short, and the JPEG pixel error. Prints one JSON summary on stdout;
the progress bar (successes, with an ETA) goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from vla_eqm_sim.instructions import INSTRUCTIONS
from vla_eqm_sim.suites import add_task_arguments, expand
from vla_eqm_sim.workers import add_worker_arguments


def _split_list(values: list[str]) -> list[str]:
    """Accept both ``--tasks a,b`` and ``--tasks a b``."""
    return [v for item in values for v in item.split(",") if v]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_task_arguments(parser)
    parser.add_argument("--episodes", type=int, default=10,
                        help="successful demonstrations wanted per task and seed")
    parser.add_argument("--max-attempts", type=int, default=None,
                        help="cap on expert attempts per task and seed (default 3 x --episodes)")
    add_worker_arguments(parser, 1, "one task at a time each")
    parser.add_argument("--seeds", "--seed", nargs="+", default=["0"], dest="seeds",
                        help="variation-set seeds: metaworld.MT1(task, seed=S) (default 0)")
    parser.add_argument("--variation-start", type=int, default=0,
                        help="first variation index; attempt i uses variation (start + i) %% 50 "
                             "of seed S + (start + i) // 50")
    parser.add_argument("--out", type=Path, required=True, help="output directory for the bags")
    parser.add_argument("--cameras", nargs="+", default=None,
                        help="cameras to record (comma or space separated); default: what the "
                             "shipped checkpoint's contract needs (corner, gripperPOV)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="square image side, pixels; default: the shipped checkpoint's (96)")
    parser.add_argument("--image-transport", choices=["raw", "compressed"], default=None,
                        help="raw sensor_msgs/Image, or JPEG CompressedImage on "
                             ".../image_raw/compressed; default: what the checkpoint reads (raw)")
    parser.add_argument("--jpeg-quality", type=int, default=90,
                        help="JPEG quality of the compressed transport (1-100)")
    parser.add_argument("--max-steps", type=int, default=500, help="episode step limit (<= 500)")
    parser.add_argument("--control", choices=["cartesian", "joint"], default="cartesian",
                        help="action space: cartesian mocap deltas, or joint (7 joint position "
                             "targets + gripper; the expert runs through differential IK)")
    parser.add_argument("--success-only", action="store_true",
                        help="put failed episodes under OUT/failed/ (still labelled)")
    parser.add_argument("--overwrite", action="store_true",
                        help="record every attempt anew (default: resume, recording only what "
                             "is missing)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _check_args(args: argparse.Namespace, tasks: list[str], seeds: list[int]) -> str | None:
    unknown = [t for t in tasks if t not in INSTRUCTIONS]
    if unknown:
        return f"unknown task(s) {unknown}; known: {sorted(INSTRUCTIONS)}"
    if args.episodes < 1:
        return f"--episodes must be >= 1, got {args.episodes}"
    if args.max_attempts < args.episodes:
        return f"--max-attempts ({args.max_attempts}) must be >= --episodes ({args.episodes})"
    if args.workers < 1:
        return f"--workers must be >= 1, got {args.workers}"
    if not 1 <= args.jpeg_quality <= 100:
        return f"--jpeg-quality must be in [1, 100], got {args.jpeg_quality}"
    if not 1 <= args.max_steps <= 500:
        return f"--max-steps must be in [1, 500], got {args.max_steps}"
    if not 16 <= args.image_size <= 480:
        return f"--image-size must be in [16, 480], got {args.image_size}"
    if any(s < 0 for s in seeds):
        return f"seeds must be >= 0, got {seeds}"
    span = (args.variation_start + args.max_attempts - 1) // 50  # seeds an attempt rolls into
    ordered = sorted(set(seeds))
    if any(b - a <= span for a, b in zip(ordered, ordered[1:], strict=False)):
        return (f"seeds {ordered} overlap: {args.max_attempts} attempts from variation "
                f"{args.variation_start} roll into the next {span} seed(s)' variation sets; "
                "space the seeds further apart")
    return None


def run(args: argparse.Namespace) -> int:
    # DDS on loopback (refused otherwise) and rendering offscreen when the caller set nothing.
    from vla_eqm_ros.nodes.runtime import require_loopback

    require_loopback()
    os.environ.setdefault("MUJOCO_GL", "osmesa")
    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    try:
        tasks = expand(args.tasks, args.suite)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not tasks:
        print("error: name the tasks: --tasks T [T ...] or --suite mt50|mt10|easy|...",
              file=sys.stderr)
        return 2
    if None in (args.cameras, args.image_size, args.image_transport):
        from vla_eqm_sim.bringup import checkpoint_sim_params  # defaults that compose

        needed = checkpoint_sim_params()
        args.cameras = args.cameras or needed["cameras"]
        args.image_size = args.image_size or needed["image_size"]
        args.image_transport = args.image_transport or needed["image_transport"]
    if args.max_attempts is None:
        args.max_attempts = 3 * args.episodes
    cameras = _split_list(args.cameras)
    try:
        seeds = [int(s) for s in _split_list(args.seeds)]
    except ValueError:
        print(f"error: seeds must be integers, got {args.seeds}", file=sys.stderr)
        return 2
    problem = _check_args(args, tasks, seeds)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    out: Path = args.out
    settings = {"cameras": cameras, "image_size": args.image_size,
                "image_transport": args.image_transport, "control_mode": args.control,
                "max_steps": args.max_steps}
    if args.overwrite:
        _remove_attempts(out, tasks, seeds, args)
    else:
        from vla_eqm_sim.record_summary import mismatched

        problem = mismatched(out, settings)
        if problem:
            print(f"error: {problem}; use --overwrite or another --out", file=sys.stderr)
            return 2
    return _record(args, out, tasks, seeds, settings)


def _remove_attempts(out: Path, tasks: list[str], seeds: list[int],
                     args: argparse.Namespace) -> None:
    from vla_eqm_sim.bag_writer import sidecar_path
    from vla_eqm_sim.record_worker import attempt_plan

    for task in tasks:
        for seed in seeds:
            for plan in attempt_plan(task, seed, args.variation_start, args.max_attempts):
                for old in (out / plan.bag_name, out / "failed" / plan.bag_name):
                    shutil.rmtree(old, ignore_errors=True)
                    sidecar_path(old).unlink(missing_ok=True)


def _record(args: argparse.Namespace, out: Path, tasks: list[str], seeds: list[int],
            settings: dict[str, Any]) -> int:
    from tqdm import tqdm

    from vla_eqm_sim import record_summary
    from vla_eqm_sim.workers import JobPool

    out.mkdir(parents=True, exist_ok=True)
    done_before = {t: 0 for t in tasks}
    for meta in record_summary.sidecars(out):
        if meta.get("task") in done_before and meta.get("seed") is not None and meta.get(
                "success"):
            done_before[meta["task"]] += 1
    jobs = [{"task": t, "seed": s, "target": args.episodes, "max_attempts": args.max_attempts,
             "variation_start": args.variation_start, "out": str(out),
             "success_only": bool(args.success_only)} for t in tasks for s in seeds]
    target = args.episodes * len(jobs)
    have = min(target, sum(min(args.episodes * len(seeds), n) for n in done_before.values()))
    worker_settings = {**settings, "control": args.control, "jpeg_quality": args.jpeg_quality}
    previous = record_summary.load(out)
    runs = list(previous.get("runs", []))
    error_acc = previous.get("pixel_error_acc")
    results: list[dict[str, Any]] = []
    bar = tqdm(total=target, initial=have, desc="record", unit="demo",
               disable=args.no_progress, file=sys.stderr)
    t0, started = time.monotonic(), time.strftime("%Y-%m-%dT%H:%M:%S")

    def summarize() -> dict[str, Any]:
        this = {"started": started, "workers": args.workers,
                "episodes": len(results), "seconds": round(time.monotonic() - t0, 2)}
        full = {**worker_settings, "jpeg_quality": (args.jpeg_quality if
                settings["image_transport"] == "compressed" else None)}
        return record_summary.build(out, tasks, args.episodes * len(seeds), full,
                                    [*runs, this], error_acc)

    def on_event(event: dict[str, Any]) -> None:
        nonlocal error_acc
        if event["event"] == "episode":
            results.append(event)
            bar.update(int(event["success"]))
            bar.set_postfix(attempts=len(results), failed=sum(not r["success"] for r in results),
                            task=event["task"][:20])
        elif event["event"] == "job_done":
            error_acc = record_summary.merge_error(error_acc, event.get("pixel_error"))
            record_summary.write(out, summarize())

    pool = JobPool("vla_eqm_sim.record_worker", min(args.workers, len(jobs)),
                   json.dumps(worker_settings), args.domain_base)
    errors = pool.run(jobs, on_event)
    bar.close()
    summary = summarize()
    path = record_summary.write(out, summary)
    seconds = time.monotonic() - t0
    for err in errors:
        print(f"error: {err}", file=sys.stderr)
    if summary["short"]:
        print(f"warning: {len(summary['short'])} task(s) below {args.episodes * len(seeds)} "
              f"successes after {args.max_attempts} attempts: {summary['short']}",
              file=sys.stderr)
    report = {
        "out": str(out),
        "summary": str(path),
        "episodes": len(results),
        "successes": sum(r["success"] for r in results),
        "failures": [Path(r["bag"]).name for r in results if not r["success"]],
        "incomplete": [Path(r["bag"]).name for r in results if not r["complete"]],
        "seconds": round(seconds, 2),
        "episodes_per_minute": round(60.0 * len(results) / seconds, 2) if seconds else None,
        "steps": sum(r["steps"] for r in results),
        "bags": [r["bag"] for r in results],
        "short": summary["short"],
        "totals": summary["totals"],
        "pixel_error": summary["pixel_error"],
    }
    print(json.dumps(report))
    return 1 if errors else 0
