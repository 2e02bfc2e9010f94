"""``vla-eqm record``: scripted-expert demonstrations as rosbag2 (MCAP) bags.

For each task and seed, N episodes (variations ``variation_start .. +N-1`` of the seed's set)
are driven by the expert node through the sim bridge's topics and written to
``OUT/<task>__varVV__seedS`` with a JSON sidecar. Failed expert episodes are kept and labelled
``"label": "failure"``; with ``--success-only`` they go to ``OUT/failed/`` instead, still
labelled and still listed in the summary. Prints one JSON summary on stdout; the progress
bar goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from vla_eqm_sim.instructions import INSTRUCTIONS
from vla_eqm_sim.suites import add_task_arguments, expand


def _split_list(values: list[str]) -> list[str]:
    """Accept both ``--tasks a,b`` and ``--tasks a b``."""
    return [v for item in values for v in item.split(",") if v]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_task_arguments(parser)
    parser.add_argument("--episodes", type=int, default=10, help="episodes per task and seed")
    parser.add_argument("--seeds", "--seed", nargs="+", default=["0"], dest="seeds",
                        help="variation-set seeds: metaworld.MT1(task, seed=S) (default 0)")
    parser.add_argument("--variation-start", type=int, default=0,
                        help="first variation index; episode i uses (start + i) %% 50")
    parser.add_argument("--out", type=Path, required=True, help="output directory for the bags")
    parser.add_argument("--cameras", nargs="+", default=None,
                        help="cameras to record (comma or space separated); default: what the "
                             "shipped checkpoint's contract needs (corner, gripperPOV)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="square image side, pixels; default: the shipped checkpoint's (96)")
    parser.add_argument("--max-steps", type=int, default=500, help="episode step limit (<= 500)")
    parser.add_argument("--control", choices=["cartesian", "joint"], default="cartesian",
                        help="action space: cartesian mocap deltas, or joint (7 joint position "
                             "targets + gripper; the expert runs through differential IK)")
    parser.add_argument("--success-only", action="store_true",
                        help="put failed episodes under OUT/failed/ (still labelled)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing bags")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def plan_episodes(tasks: list[str], seeds: list[int], episodes: int, variation_start: int = 0):
    """The recording plan: every (task, seed, variation), in order."""
    from vla_eqm_sim.expert_session import EpisodePlan

    return [
        EpisodePlan(task, (variation_start + i) % 50, seed)
        for task in tasks
        for seed in seeds
        for i in range(episodes)
    ]


def _check_args(args: argparse.Namespace, tasks: list[str], seeds: list[int]) -> str | None:
    unknown = [t for t in tasks if t not in INSTRUCTIONS]
    if unknown:
        return f"unknown task(s) {unknown}; known: {sorted(INSTRUCTIONS)}"
    if args.episodes < 1 or args.episodes > 50:
        return f"--episodes must be in [1, 50] (50 variations per seed), got {args.episodes}"
    if not 1 <= args.max_steps <= 500:
        return f"--max-steps must be in [1, 500], got {args.max_steps}"
    if not 16 <= args.image_size <= 480:
        return f"--image-size must be in [16, 480], got {args.image_size}"
    if any(s < 0 for s in seeds):
        return f"seeds must be >= 0, got {seeds}"
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
    if args.cameras is None or args.image_size is None:  # defaults that compose with eval-bag
        from vla_eqm_sim.bringup import checkpoint_sim_params

        needed = checkpoint_sim_params()
        args.cameras = args.cameras or needed["cameras"]
        args.image_size = args.image_size or needed["image_size"]
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
    plan = plan_episodes(tasks, seeds, args.episodes, args.variation_start)
    out: Path = args.out
    existing = [p.bag_name for p in plan if (out / p.bag_name).exists()
                or (out / "failed" / p.bag_name).exists()]
    if existing and not args.overwrite:
        print(f"error: {len(existing)} bag(s) exist already in {out} (e.g. {existing[0]}); "
              "use --overwrite or another --out", file=sys.stderr)
        return 2
    return _record(plan, args, out, cameras)


def _record(plan, args: argparse.Namespace, out: Path, cameras: list[str]) -> int:
    import shutil

    from tqdm import tqdm

    from vla_eqm_sim.bag_writer import sidecar_path
    from vla_eqm_sim.expert_session import RecordingError, RecordingSession

    out.mkdir(parents=True, exist_ok=True)
    results = []
    t0 = time.monotonic()
    with RecordingSession(plan[0].task, cameras, args.image_size, args.max_steps,
                          args.control) as session:
        bar = tqdm(plan, desc="record", unit="ep", disable=args.no_progress, file=sys.stderr)
        for ep in bar:
            target = out / ep.bag_name
            for old in (target, out / "failed" / ep.bag_name):
                if old.exists():  # only reachable with --overwrite
                    shutil.rmtree(old)
                    sidecar_path(old).unlink(missing_ok=True)
            try:
                outcome = session.record(ep, target)
            except RecordingError as err:
                print(f"error: {err}", file=sys.stderr)
                return 1
            if args.success_only and not outcome.success:
                failed_dir = out / "failed"
                failed_dir.mkdir(exist_ok=True)
                shutil.move(str(target), failed_dir / ep.bag_name)
                shutil.move(str(sidecar_path(target)), sidecar_path(failed_dir / ep.bag_name))
                outcome.bag = failed_dir / ep.bag_name
            results.append(outcome)
            n_ok = sum(r.success for r in results)
            bar.set_postfix(success=f"{n_ok}/{len(results)}", steps=outcome.steps)
    seconds = time.monotonic() - t0
    summary = {
        "out": str(out),
        "episodes": len(results),
        "successes": sum(r.success for r in results),
        "failures": [r.bag.name for r in results if not r.success],
        "incomplete": [r.bag.name for r in results if not r.complete],
        "seconds": round(seconds, 2),
        "episodes_per_minute": round(60.0 * len(results) / seconds, 2) if seconds else None,
        "steps": sum(r.steps for r in results),
        "bags": [str(r.bag) for r in results],
    }
    print(json.dumps(summary))
    return 0
