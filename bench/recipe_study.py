"""The recipe study: which levers move EqM (and FM) on MT10, at one training budget.

    python bench/recipe_study.py --cache ~/vla_data/mt10/cache --out ~/vla_data/study
    python bench/recipe_study.py ... --only base,h32 --parallel 2 --eval-episodes 5

Runs every entry of ``bench/recipe_study.yaml`` (``--spec``) for each of its decoders with
``vla-eqm train`` (one torch thread each, ``--parallel`` at a time), then scores each checkpoint
offline (``vla_eqm_train.evaluation.offline``: cold-start decode MSE on 512 held-out chunks and
the iterations it took), scans the solver settings on the base checkpoints without retraining,
and runs ``vla-eqm eval-sim --suite mt10`` on the runs marked ``eval``. Resumable: a finished run
is read back, an interrupted one continues with ``--resume``, and a finished evaluation is
reused. Prints one JSON object (also ``OUT/results.json``); ``--markdown FILE`` writes the table.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from vla_eqm_sim.workers import domain_base, worker_domain, worker_env

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "bench" / "recipe_study.yaml"


def run_config(spec: dict[str, Any], name: str, decoder: str, cache: Path, out: Path
               ) -> dict[str, Any]:
    """The training YAML of one run: the base config, the study budget, the run's changes."""
    cfg = yaml.safe_load((ROOT / spec["base_config"]).read_text())
    entry = spec["runs"][name]
    cfg.update(copy.deepcopy(spec.get("train", {})))
    cfg.update(copy.deepcopy(entry.get("train", {})))
    for key in ("model", "policy"):
        merged = copy.deepcopy(cfg.get(key, {}))
        for k, v in entry.get(key, {}).items():
            merged[k] = {**merged.get(k, {}), **v} if isinstance(v, dict) else v
        if decoder == "fm":
            merged.pop("eqm", None)
        cfg[key] = merged
    run = out / "runs" / f"{name}_{decoder}"
    cfg.update({"decoder": decoder, "dataset": str(cache), "out": str(run / "ckpt"),
                "run_dir": str(run / "run"), "threads": 1, "time_limit_min": 0})
    return cfg


def train(cfg: dict[str, Any]) -> dict[str, Any]:
    """Train (or continue, or read back) one run; returns its training figures."""
    run_dir, ckpt = Path(cfg["run_dir"]), Path(cfg["out"])
    run_dir.mkdir(parents=True, exist_ok=True)
    done = ckpt / "config.yaml"
    if not (done.is_file() and _provenance(ckpt)["steps"] == cfg["steps"]):
        path = run_dir.parent / "train.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        command = [sys.executable, "-m", "vla_eqm_train.cli", "train", "--config", str(path),
                   "--no-progress"]
        if (run_dir / "train_state.pt").is_file():
            command.append("--resume")
        with open(run_dir.parent / "train.log", "a") as log:
            proc = subprocess.run(command, env=worker_env(worker_domain(domain_base(), 0)),
                                  stdout=log, stderr=log, cwd=ROOT)
        if proc.returncode != 0:
            raise RuntimeError(f"training {ckpt} failed; see {run_dir.parent / 'train.log'}")
    prov = _provenance(ckpt)
    minutes = float(prov["wall_time_min"])
    history = json.loads((run_dir / "history.json").read_text())
    samples = cfg["steps"] * cfg["batch_size"]
    return {"steps": prov["steps"], "train_min": minutes,
            "samples_per_s": round(samples / (60 * minutes), 1) if minutes else None,
            "val_decode_mse_trainer": history["val_decode_mse"][-1][1],
            "params": _param_count(ckpt)}


def _provenance(ckpt: Path) -> dict[str, Any]:
    from vla_eqm_ros.checkpoint import load_config

    return dict(load_config(ckpt).provenance)


def _param_count(ckpt: Path) -> int:
    from safetensors.torch import load_file

    return int(sum(t.numel() for t in load_file(ckpt / "model.safetensors").values()))


def closed_loop(ckpt: Path, out: Path, episodes: int, overrides: list[str], index: int
                ) -> dict[str, Any]:
    """MT10 success and iterations of one checkpoint (``vla-eqm eval-sim``), reused if present;
    ``index`` gives concurrent evaluations their own ROS domains."""
    tag = "".join(f"_{o.lstrip('-')}" for o in overrides)
    path = out / "eval" / f"{ckpt.parent.name}{tag}.json"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "vla_eqm_train.cli", "eval-sim", "--checkpoint",
                   str(ckpt), "--suite", "mt10", "--episodes", str(episodes), "--workers", "1",
                   "--max-steps", "200", "--json", str(path), "--no-progress",
                   "--domain-base", str(domain_base() + 1 + index), *overrides]
        proc = subprocess.run(command, env=worker_env(worker_domain(domain_base(), 0)),
                              capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0 or not path.is_file():
            raise RuntimeError(f"eval-sim {ckpt} failed: {proc.stderr[-2000:]}")
    report = json.loads(path.read_text())
    iters = [r["iters_p50"] for r in report["tasks"].values() if r["iters_p50"] is not None]
    return {"success": report["mean_success"], "episodes": report["episodes_run"],
            "iters_p50_median": sorted(iters)[len(iters) // 2] if iters else None,
            "wall_min": round(report["wall_s"] / 60, 1)}


def offline(ckpt: Path, cache: Path, out: Path, setting: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    """The offline screen of one checkpoint at one solver setting (512 held-out chunks, fixed
    draws), kept under ``OUT/offline`` so a rerun computes only what is missing."""
    from vla_eqm_train.evaluation.offline import offline_decode

    tag = json.dumps(setting or {}, sort_keys=True, separators=(",", ":"))
    path = out / "offline" / f"{ckpt.parent.name}__{tag}.json"
    if path.is_file():
        return json.loads(path.read_text())
    row = offline_decode(ckpt, cache, setting, samples=512)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(row) + "\n")
    return row


def table(results: dict[str, Any]) -> str:
    """The study as markdown: one row per run, then the solver scan."""
    lines = ["| run | decoder | change | val_decode_mse | iterations | val_decode_mse, "
             "early stop | MT10 success | iters p50 (closed loop) | train min | samples/s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["runs"].values():
        cl = r.get("closed_loop") or {}
        succ = f"{100 * cl['success']:.0f}% ({cl['episodes']} ep)" if cl else "–"
        it = cl.get("iters_p50_median")
        its = "–" if it is None else f"{it:.0f}"
        off, tr = r["offline"], r["train"]
        early = "; ".join(f"{v['val_decode_mse']:.4f} at `{k}`"
                          for k, v in (r.get("offline_with") or {}).items()) or "–"
        lines.append(f"| {r['name']} | {r['decoder']} | {r['change']} | "
                     f"{off['val_decode_mse']:.4f} | {off['iterations']:.1f} | {early} | {succ} | "
                     f"{its} | {tr['train_min']:.1f} | {tr['samples_per_s']} |")
    with_rows = [(r, f, cl) for r in results["runs"].values()
                 for f, cl in (r.get("closed_loop_with") or {}).items()]
    if with_rows:
        lines += ["", "| run | decoder | eval-sim flags | MT10 success | iters p50 |",
                  "|---|---|---|---|---|"]
        for r, flags, cl in with_rows:
            it = cl.get("iters_p50_median")
            lines.append(f"| {r['name']} | {r['decoder']} | `{flags}` | "
                         f"{100 * cl['success']:.0f}% ({cl['episodes']} ep) | "
                         f"{'–' if it is None else f'{it:.0f}'} |")
    if results.get("solver_scan"):
        lines += ["", "| base checkpoint | solver setting | val_decode_mse | iterations |",
                  "|---|---|---|---|"]
        for row in results["solver_scan"]:
            lines.append(f"| {row['decoder']} | {row['setting']} | {row['val_decode_mse']:.4f} | "
                         f"{row['iterations']:.1f} |")
    return "\n".join(lines) + "\n"


def _change(entry: dict[str, Any]) -> str:
    parts = [f"{k}: {json.dumps(entry[k], separators=(',', ':'))}" for k in ("model", "policy",
                                                                            "train") if k in entry]
    return "; ".join(parts) or "baseline"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, required=True, help="MT10 dataset cache")
    parser.add_argument("--out", type=Path, required=True, help="study directory (resumable)")
    parser.add_argument("--spec", type=Path, default=SPEC)
    parser.add_argument("--only", default="", help="comma-separated run names")
    parser.add_argument("--parallel", type=int, default=2, help="trainings at a time")
    parser.add_argument("--eval-episodes", type=int, default=5, help="MT10 episodes per task")
    parser.add_argument("--no-eval", action="store_true", help="offline screen only")
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)

    spec = yaml.safe_load(args.spec.read_text())
    names = [n for n in spec["runs"] if not args.only or n in args.only.split(",")]
    jobs = [(n, d) for n in names for d in spec["runs"][n]["decoders"]]
    configs = {(n, d): run_config(spec, n, d, args.cache, args.out) for n, d in jobs}
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        trained = dict(zip(jobs, pool.map(lambda j: train(configs[j]), jobs), strict=True))
    results: dict[str, Any] = {"cache": str(args.cache), "spec": str(args.spec), "runs": {},
                               "solver_scan": []}
    for n, d in jobs:
        ckpt = Path(configs[(n, d)]["out"])
        results["runs"][f"{n}_{d}"] = {
            "name": n, "decoder": d, "change": _change(spec["runs"][n]), "train": trained[(n, d)],
            "offline": offline(ckpt, args.cache, args.out),
            "offline_with": {json.dumps(s): offline(ckpt, args.cache, args.out, s)
                             for s in spec.get("offline_settings", {}).get(d, [])}}
    for d, settings in spec.get("solver_scan", {}).items():
        if ("base", d) not in configs:
            continue
        for setting in settings:
            row = offline(Path(configs[("base", d)]["out"]), args.cache, args.out, setting)
            results["solver_scan"].append({"decoder": d, "setting": json.dumps(setting), **row})
    if not args.no_eval:
        extra = spec.get("eval_settings", {})
        evals = [(n, d, flags) for n, d in jobs if spec["runs"][n].get("eval")
                 for flags in [[], *extra.get(d, [])]]
        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            loops = list(pool.map(lambda ij: closed_loop(Path(configs[ij[1][:2]]["out"]),
                                                         args.out, args.eval_episodes, ij[1][2],
                                                         ij[0]), enumerate(evals)))
        for (n, d, flags), loop in zip(evals, loops, strict=True):
            key = f"{n}_{d}"
            if flags:
                results["runs"][key].setdefault("closed_loop_with", {})[" ".join(flags)] = loop
            else:
                results["runs"][key]["closed_loop"] = loop
    results["wall_min"] = round((time.monotonic() - t0) / 60, 1)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    if args.markdown is not None:
        args.markdown.write_text(table(results))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
