"""``vla-eqm dataset build``: rosbag2 demonstrations -> a memory-mapped training cache.

Bags are decoded once, through the contract and the shared decode path (``bags.read_episodes``;
a continuous session is cut into episodes as the contract's ``episodes`` section says),
and streamed into the cache (``dataset.write_cache``). Prints a progress bar on stderr, a
human-readable summary (episodes, frames, tasks, per-field statistics) and, with ``--json``, the
same summary as one JSON object on stdout. Any bag problem stops the build with an error that
names the bag, the topic and the problem (exit code 1).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_CONTRACT = Path(__file__).resolve().parents[2] / "config" / "metaworld_contract.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)
    build = sub.add_parser("build", help="decode bags into a training cache",
                           description="decode rosbag2 bags once into a memory-mapped cache")
    build.add_argument("bags", nargs="+", type=Path,
                       help="bag directories, or folders searched for bags (failed/ is skipped)")
    build.add_argument("--out", type=Path, required=True, help="cache directory to create")
    build.add_argument("--contract", type=Path, default=DEFAULT_CONTRACT,
                       help="contract YAML (default: the Meta-World contract of vla_eqm_train)")
    build.add_argument("--val-fraction", type=float, default=0.1,
                       help="share of episodes held out for validation (split by episode)")
    build.add_argument("--seed", type=int, default=0, help="seed of the episode split")
    build.add_argument("--include-failures", action="store_true",
                       help="keep episodes whose /episode_info says the demo failed")
    build.add_argument("--overwrite", action="store_true", help="replace an existing cache")
    build.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_lerobot_arguments(sub)


def summarize(meta: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The build summary: counts per task and the statistics the normalizers will use."""
    stats = meta["stats"]
    fields = {"action": dict(zip(meta["action_names"], zip(stats["action"]["mean"],
                                                          stats["action"]["std"], strict=True),
                                 strict=True))}
    if "state" in stats:
        fields["state"] = dict(zip(meta["state_names"], zip(stats["state"]["mean"],
                                                           stats["state"]["std"], strict=True),
                                   strict=True))
    return {
        "cache": meta.get("path", ""),
        "hash": meta["hash"],
        "episodes": len(meta["episodes"]),
        "frames": meta["frames"],
        "train_episodes": len(meta["split"]["train"]),
        "val_episodes": len(meta["split"]["val"]),
        "tasks": {t: {"episodes": sum(e["task"] == t for e in meta["episodes"]),
                      "frames": meta["frames_per_task"][t]} for t in meta["tasks"]},
        "instructions": meta["instructions"],
        "stats_mean_std": {k: {n: [round(m, 4), round(s, 4)] for n, (m, s) in v.items()}
                           for k, v in fields.items()},
        "seconds": round(seconds, 2),
    }


def _print_summary(summary: dict[str, Any], out=sys.stderr) -> None:
    print(f"cache {summary['cache']}  hash {summary['hash'][:12]}", file=out)
    print(f"{summary['episodes']} episodes ({summary['train_episodes']} train / "
          f"{summary['val_episodes']} val), {summary['frames']} frames, "
          f"{summary['seconds']} s", file=out)
    for task, c in summary["tasks"].items():
        print(f"  {task:32s} {c['episodes']:4d} episodes {c['frames']:7d} frames", file=out)
    for group, per_name in summary["stats_mean_std"].items():
        for name, (m, s) in per_name.items():
            print(f"  {group:6s} {name:24s} mean {m:+.4f}  std {s:.4f}", file=out)


def build(bags: list[Path], out: Path, contract_path: Path, *, val_fraction: float = 0.1,
          seed: int = 0, include_failures: bool = False, progress: bool = True
          ) -> dict[str, Any]:
    """Build a cache; returns the summary. Raises BagError / ContractError / DatasetError."""
    from tqdm import tqdm

    from vla_eqm_ros.contract import Contract
    from vla_eqm_train.data.bags import find_bags, read_episodes
    from vla_eqm_train.data.dataset import DatasetError, write_cache

    contract = Contract.from_yaml(contract_path)
    paths = find_bags(bags)
    if not paths:
        raise DatasetError(f"no bags found under {[str(b) for b in bags]}")
    t0 = time.monotonic()
    dropped: list[str] = []

    def episodes():
        bar = tqdm(paths, desc="dataset", unit="bag", disable=not progress, file=sys.stderr)
        for path in bar:
            for ep in read_episodes(path, contract):  # several when the contract cuts a session
                if ep.info.get("success") is False and not include_failures:
                    dropped.append(path.name)
                    continue
                bar.set_postfix(frames=ep.length)
                yield ep

    meta = write_cache(out, episodes(), contract, val_fraction=val_fraction, seed=seed,
                       sources=[str(p) for p in paths])
    meta["path"] = str(out)
    summary = summarize(meta, time.monotonic() - t0)
    summary["dropped_failed_demos"] = dropped
    return summary


def run(args: argparse.Namespace) -> int:
    from vla_eqm_ros.contract import ContractError
    from vla_eqm_train.data.bags import BagError
    from vla_eqm_train.data.dataset import DatasetError

    if args.dataset_command in LEROBOT_COMMANDS:
        return _run_lerobot(args)
    out: Path = args.out
    if out.exists() and any(out.iterdir()):
        if not args.overwrite:
            print(f"error: {out} exists and is not empty; use --overwrite", file=sys.stderr)
            return 2
        shutil.rmtree(out)
    try:
        summary = build(args.bags, out, args.contract, val_fraction=args.val_fraction,
                        seed=args.seed, include_failures=args.include_failures,
                        progress=not args.no_progress)
    except (BagError, ContractError, DatasetError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        shutil.rmtree(out, ignore_errors=True)  # never leave a half-written cache behind
        return 1
    _print_summary(summary)
    if args.json:
        print(json.dumps(summary))
    return 0


# --- LeRobotDataset v3.0 interop (vla_eqm_train.data.lerobot) ---

LEROBOT_COMMANDS = ("export-lerobot", "import-lerobot")


def _add_lerobot_arguments(sub: Any) -> None:
    exp = sub.add_parser("export-lerobot", help="write a cache as a LeRobotDataset v3.0",
                         description="write a training cache as a LeRobotDataset v3.0 directory "
                                     "(parquet + AV1 MP4 per camera; see docs/training.md)")
    exp.add_argument("cache", type=Path, help="training cache directory (with meta.json)")
    exp.add_argument("--out", type=Path, required=True, help="dataset directory to create")
    exp.add_argument("--fps", type=int, default=None,
                     help="frames per second (default: 1 / the contract's control period)")
    exp.add_argument("--crf", type=int, default=None,
                     help="video quality, lower is closer to the cache (default: LeRobot's 30)")
    imp = sub.add_parser("import-lerobot", help="read a LeRobotDataset v3.0 into a cache",
                         description="read a LeRobotDataset v3.0 directory (ours or anyone's) "
                                     "into a training cache that `vla-eqm train` reads")
    imp.add_argument("src", type=Path, help="LeRobotDataset v3.0 directory (with meta/info.json)")
    imp.add_argument("--out", type=Path, required=True, help="cache directory to create")
    imp.add_argument("--cameras", default=None,
                     help="comma-separated camera names to keep (default: every camera)")
    imp.add_argument("--val-fraction", type=float, default=0.1,
                     help="validation share when the dataset carries no split of its own")
    imp.add_argument("--seed", type=int, default=0, help="seed of that split")
    for p in (exp, imp):
        p.add_argument("--overwrite", action="store_true", help="replace an existing output")
        p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run_lerobot(args: argparse.Namespace) -> int:
    """export-lerobot / import-lerobot: exit 0, 1 on any error (nothing left behind), 2 when
    the output exists and --overwrite is not given."""
    from vla_eqm_ros.contract import ContractError
    from vla_eqm_train.data.dataset import DatasetError
    from vla_eqm_train.data.lerobot import export_lerobot, import_lerobot

    out: Path = args.out
    src: Path = args.cache if args.dataset_command == "export-lerobot" else args.src
    if out.resolve() == src.resolve():
        print(f"error: --out {out} is the input itself", file=sys.stderr)
        return 1
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not args.overwrite:
            print(f"error: {out} exists and is not empty; use --overwrite", file=sys.stderr)
            return 2
        if out.is_dir():
            shutil.rmtree(out)
        else:
            out.unlink()
    try:
        if args.dataset_command == "export-lerobot":
            summary = export_lerobot(src, out, fps=args.fps, crf=args.crf,
                                     progress=not args.no_progress)
            print(f"LeRobotDataset v3.0 {out}: {summary['episodes']} episodes, "
                  f"{summary['frames']} frames, {summary['tasks']} tasks, {summary['fps']} fps, "
                  f"video {sorted(set(summary['video'].values()))}, {summary['seconds']} s",
                  file=sys.stderr)
        else:
            cameras = None if args.cameras is None else [c for c in args.cameras.split(",") if c]
            meta = import_lerobot(src, out, cameras=cameras, val_fraction=args.val_fraction,
                                  seed=args.seed, progress=not args.no_progress)
            summary = summarize(meta, meta["seconds"])
            summary["contract"] = meta["contract_origin"]
            _print_summary(summary)
            print(f"contract: {summary['contract']}", file=sys.stderr)
    except (ContractError, DatasetError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary))
    return 0
