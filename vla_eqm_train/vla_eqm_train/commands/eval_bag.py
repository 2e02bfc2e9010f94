"""``vla-eqm eval-bag``: replay recorded rosbag2 episodes through a checkpoint and report.

Offline (always): every bag is decoded once through the shared decode path (``bags.read_episodes``)
and replayed deterministically for every setting of the scan grid (tau x warm start for EqM,
Euler steps for FM): action errors against the recorded commands (first action and whole chunk,
L1/L2, per dimension), iterations, residual and stop reason, decode latency and chunk-boundary
jumps (``replay.py``, ``bag_metrics.py``), plus per-iterate probes of a few decodes
(``iterate_probe.py``). ``--live`` adds a replay through DDS at recorded timing against the real
policy node (``live_replay.py``). The report (``report.json``, ``report.md``, PNG plots) lands in
``--out``.

Exit status: 0 complete, 1 report written but some bag or replay failed (listed in the report,
never counted as complete), 2 bad arguments / checkpoint / contract (nothing replayed).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from vla_eqm_ros.config import WARM_START_MODES

WARM_STARTS = WARM_START_MODES


def _floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(" ", ",").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}") from None
    if not values or any(not (v >= 0) for v in values):
        raise argparse.ArgumentTypeError(f"expected numbers >= 0, got {text!r}")
    return values


def _ints(text: str) -> list[int]:
    values = _floats(text)
    if any(v != int(v) or v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return [int(v) for v in values]


def _modes(text: str) -> list[str]:
    modes = [m for m in text.replace(" ", ",").split(",") if m]
    bad = [m for m in modes if m not in WARM_STARTS]
    if bad or not modes:
        raise argparse.ArgumentTypeError(f"warm-start modes are {', '.join(WARM_STARTS)}; "
                                         f"got {text!r}")
    return modes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint directory (default: the shipped default_eqm, or "
                             "default_fm with --decoder fm)")
    parser.add_argument("--bags", type=Path, nargs="+", required=True,
                        help="bag directories, or folders searched for bags (failed/ skipped)")
    parser.add_argument("--out", type=Path, required=True, help="report directory")
    parser.add_argument("--tau", type=_floats, default=None,
                        help="comma-separated tau values, e.g. 0.01,0.03,0.1,0.3 "
                             "(default: the checkpoint's)")
    parser.add_argument("--warm-start", type=_modes, default=None,
                        help="comma-separated warm-start modes from none,copy,shifted "
                             "(default: the checkpoint's)")
    parser.add_argument("--decoder", choices=["eqm", "fm"], default=None,
                        help="decoder the checkpoint must have (default: the checkpoint's)")
    parser.add_argument("--fm-steps", type=_ints, default=None,
                        help="FM only: comma-separated Euler step counts (default: checkpoint's)")
    parser.add_argument("--execute-steps", type=int, default=None,
                        help="actions executed per decode (default: the checkpoint's)")
    parser.add_argument("--k-max", type=int, default=None, help="EqM iteration cap override")
    parser.add_argument("--contract", type=Path, default=None,
                        help="contract YAML (default: the checkpoint's)")
    parser.add_argument("--probe-cycles", type=int, default=3,
                        help="EqM: cold tau=0 probe solves per episode for error vs iterations")
    parser.add_argument("--live", action="store_true",
                        help="also play each bag through DDS against the real policy node")
    parser.add_argument("--rate", type=float, default=1.0,
                        help="live playback rate (1.0 = recorded timing)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: shared CPUs)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


class SetupError(RuntimeError):
    """Bad arguments, checkpoint or contract: nothing can be replayed."""


def prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Load the checkpoint, resolve contract and scan grid; raises SetupError naming the cause."""
    from vla_eqm_ros.checkpoint import CheckpointError, load_checkpoint
    from vla_eqm_ros.compat import check_compatible, resolve_contract
    from vla_eqm_ros.policy import DEFAULT_CHECKPOINT
    from vla_eqm_train.evaluation.bag.replay import settings_grid

    ckpt = args.checkpoint
    if ckpt is None:
        ckpt = DEFAULT_CHECKPOINT.parent / "default_fm" if args.decoder == "fm" \
            else DEFAULT_CHECKPOINT
    try:
        cfg, model = load_checkpoint(ckpt)
    except (CheckpointError, OSError, ValueError) as exc:
        raise SetupError(f"checkpoint {ckpt}: {exc}") from exc
    decoder = args.decoder or cfg.decoder
    if decoder != cfg.decoder:
        raise SetupError(f"checkpoint mismatch: {ckpt} holds a {cfg.decoder} decoder, "
                         f"--decoder asks for {decoder}")
    if decoder == "fm" and (args.tau or args.warm_start):
        raise SetupError("--tau and --warm-start apply to EqM only; FM scans --fm-steps")
    try:
        contract = resolve_contract(cfg, args.contract)
        check_compatible(contract, cfg)
    except ValueError as exc:  # ContractError is a ValueError
        raise SetupError(f"checkpoint {ckpt}: {exc}") from exc
    execute = args.execute_steps or cfg.execute_steps
    if not 1 <= execute <= cfg.model.horizon:
        raise SetupError(f"--execute-steps must be in [1, H={cfg.model.horizon}], got {execute}")
    if args.k_max is not None:
        import dataclasses

        try:
            cfg = cfg.replace(solver=dataclasses.replace(cfg.solver, k_max=args.k_max))
        except ValueError as exc:
            raise SetupError(str(exc)) from exc
        model.config = cfg  # every policy on the shared model starts from it (make_policy)
    settings = settings_grid(decoder, args.tau or [cfg.solver.tau],
                             args.warm_start or [cfg.warm_start.mode],
                             args.fm_steps or [cfg.fm.steps], execute)
    return {"checkpoint": Path(ckpt), "cfg": cfg, "model": model, "contract": contract,
            "settings": settings, "decoder": decoder, "execute_steps": execute}


def collect_bags(paths: list[Path]) -> tuple[list[Path], list[dict[str, str]]]:
    """Bags under the given paths, and an entry for each path that holds none."""
    from vla_eqm_train.data.bags import BagError, find_bags

    bags: list[Path] = []
    missing: list[dict[str, str]] = []
    for p in paths:
        try:
            found = find_bags([p])
        except BagError as exc:
            missing.append({"bag": str(p), "reason": exc.problem})
            continue
        if not found:
            missing.append({"bag": str(p), "reason": "no rosbag2 bag (metadata.yaml) found"})
        bags.extend(b for b in found if b not in bags)
    return bags, missing


def _replay_bag(job: dict[str, Any], bag: Path, probe_cycles: int,
                bar: Any) -> list[dict[str, Any]]:
    """Decode one bag and replay each of its episodes under every setting; failures are
    recorded, not raised (an unreadable bag is one failed entry)."""
    from vla_eqm_train.data.bags import BagError
    from vla_eqm_train.evaluation.bag.replay import load_episodes

    settings = job["settings"]
    try:
        episodes = load_episodes(bag, job["contract"])
    except BagError as exc:
        bar.update(len(settings))
        return [{"bag": str(bag), "name": bag.name, "status": "failed", "error": str(exc),
                 "settings": {}}]
    if len(episodes) > 1:  # a continuous recording: the bar counts replays, not bags
        bar.total += (len(episodes) - 1) * len(settings)
        bar.refresh()
    return [_replay_episode(job, bag, episode, probe_cycles, bar) for episode in episodes]


def _replay_episode(job: dict[str, Any], bag: Path, episode: Any, probe_cycles: int,
                    bar: Any) -> dict[str, Any]:
    from vla_eqm_train.evaluation.bag.iterate_probe import probe_iterates, probe_ticks
    from vla_eqm_train.evaluation.bag.metrics import aggregate_cycles
    from vla_eqm_train.evaluation.bag.replay import (
        episode_observations,
        episode_seed,
        make_policy,
        replay_episode,
    )

    settings, contract, cfg, model = job["settings"], job["contract"], job["cfg"], job["model"]
    info = episode.info
    entry: dict[str, Any] = {"bag": str(bag), "name": episode.name, "status": "ok",
                             "error": None, "settings": {}}
    entry.update(task=info.get("task"), seed=info.get("seed"),
                 variation=info.get("variation"), success=info.get("success"),
                 length=episode.length, skipped_ticks=episode.skipped_ticks, goal=episode.goal)
    # warm-up decode, not measured: the first decode of a process loads the language encoder
    warm = make_policy(model, cfg, None, 0)
    with contextlib.suppress(Exception):  # the measured replays report any problem, per setting
        warm.predict_action_chunk(episode_observations(episode, contract.control_period)[0], 0)
    for setting in settings:
        bar.set_postfix_str(f"{episode.name[:30]} {setting.name}")
        try:
            run = replay_episode(model, cfg, episode, setting, contract.control_period)
            cycles = [c.to_dict() for c in run.cycles]
            entry["settings"][setting.name] = {
                "status": "ok", "error": None, "seed": run.seed, "setting": setting.to_dict(),
                "summary": aggregate_cycles(cycles), "cycles": cycles}
        except Exception as exc:  # a replay that fails midway is failed, never partial
            entry["settings"][setting.name] = {
                "status": "failed", "seed": episode_seed(episode.name, setting.decoder),
                "setting": setting.to_dict(), "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=3), "cycles": []}
        bar.update(1)
    if job["decoder"] == "eqm" and probe_cycles > 0:
        seed = episode_seed(episode.name, "probe")
        policy = make_policy(model, cfg, None, seed)
        obs = episode_observations(episode, contract.control_period)
        entry["probe"] = [probe_iterates(policy, obs[t], episode.actions, t, cfg.solver.k_max,
                                         seed + t)
                          for t in probe_ticks(episode.length, probe_cycles)]
    return entry


def build_report(job: dict[str, Any], episodes: list[dict[str, Any]],
                 missing: list[dict[str, str]], live: dict[str, Any] | None, wall_s: float,
                 interrupted: bool, args: argparse.Namespace) -> dict[str, Any]:
    from vla_eqm_train.evaluation.bag.report import is_complete, setting_aggregates

    cfg = job["cfg"]
    settings = [s.to_dict() for s in job["settings"]]
    failed = missing + [{"bag": e["bag"], "reason": e["error"]} for e in episodes
                        if e["status"] != "ok"]
    failed_replays = sum(1 for e in episodes for r in e["settings"].values()
                         if r["status"] != "ok")
    return {
        "tool": "vla-eqm eval-bag",
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "complete": is_complete(episodes, settings, live, interrupted) and not missing,
        "interrupted": interrupted,
        "checkpoint": str(job["checkpoint"]), "decoder": job["decoder"],
        "checkpoint_provenance": {k: cfg.provenance.get(k) for k in (
            "steps", "final_val_loss", "weights", "dataset_hash", "commit")},
        "settings": settings,
        "solver": {"tau": cfg.solver.tau, "k_max": cfg.solver.k_max,
                   "step_size": cfg.solver.step_size, "momentum": cfg.solver.momentum,
                   "deadline_ms": cfg.solver.deadline_ms,
                   "warm_start_fraction": cfg.warm_start.fraction,
                   "warm_start_tail": cfg.warm_start.tail, "fm_steps": cfg.fm.steps},
        "execute_steps": job["execute_steps"], "horizon": cfg.model.horizon,
        "control_period": job["contract"].control_period,
        "action_names": list(job["contract"].action.names),
        "contract": job["contract"].to_dict(),
        "tasks": sorted({e["task"] for e in episodes if e.get("task")}),
        "bags": {"total": len(episodes) + len(missing),
                 "ok": sum(e["status"] == "ok" for e in episodes), "failed": failed},
        "failed_replays": failed_replays,
        "probe": {"cycles_per_episode": args.probe_cycles if job["decoder"] == "eqm" else 0,
                  "k_max": cfg.solver.k_max},
        "aggregates": setting_aggregates(episodes, settings),
        "episodes": episodes,
        "live": live,
        "machine": f"{os.cpu_count()} CPU cores, torch threads {args.threads} (shared machine)",
        "wall_s": wall_s,
    }


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from vla_eqm_train.evaluation.bag.plots import write_plots
    from vla_eqm_train.evaluation.bag.report import scan_table, write_json, write_markdown

    t0 = time.monotonic()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        job = prepare(args)
    except SetupError as exc:
        print(f"eval-bag: {exc}", file=sys.stderr)
        return 2
    bags, missing = collect_bags(args.bags)
    for m in missing:
        print(f"eval-bag: {m['bag']}: {m['reason']}", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    live_bags = len(bags) if args.live else 0
    bar = tqdm(total=len(bags) * len(job["settings"]) + live_bags, desc="eval-bag",
               unit="replay", disable=args.no_progress, file=sys.stderr)
    episodes: list[dict[str, Any]] = []
    live = None
    interrupted = False
    try:
        for bag in bags:
            for entry in _replay_bag(job, bag, args.probe_cycles, bar):
                if entry["status"] != "ok":
                    print(f"eval-bag: FAILED {entry['error']}", file=sys.stderr)
                episodes.append(entry)
        if args.live:
            from vla_eqm_train.evaluation.live.replay import run_live

            played = dict.fromkeys(Path(e["bag"]) for e in episodes if e["status"] == "ok")
            live = run_live(job, list(played),
                            args.out, args.rate, bar, tau=args.tau, warm_start=args.warm_start)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    report = build_report(job, episodes, missing, live, time.monotonic() - t0, interrupted, args)
    write_json(args.out, report)
    plots = write_plots(report, args.out)
    write_markdown(args.out, report, plots)
    print("\n".join(scan_table(report)))
    state = "complete" if report["complete"] else "INCOMPLETE"
    print(f"eval-bag: {state} report in {args.out / 'report.md'}", file=sys.stderr)
    if interrupted:
        return 130
    return 0 if report["complete"] else 1
