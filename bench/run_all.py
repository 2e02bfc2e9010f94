"""The benchmark suite: every bench and closed-loop comparison, one JSON, one Markdown page, plots.

    python bench/run_all.py                          # the whole suite (~30-45 min on 2 cores)
    python bench/run_all.py --only tau,warm --episodes 5
    python bench/run_all.py --quick --out /tmp/smoke  # tiny settings: does the machinery work?

Writes ``<out>/<date>.json`` (the record), ``<out>/<date>.md`` (the summary, with the command
behind every table and figure) and ``<out>/<date>/*.png``. Sections, in this order (the two that
measure latency run first, while the machine is quietest):

- ``latency``: ``bench/node_latency.py`` (the live policy node over loopback DDS), a black box
  that prints one JSON object;
- ``decoder``: ``bench/decoder.py`` (solver latency, warm-start depth on replayed demos);
- ``budget``: EqM at several (tau, k_max) vs FM at several Euler step counts, closed loop
  (``vla-eqm eval-sim``), success against iterations and against decode time;
- ``tau``: a tau scan per task: is the optimum interior and task-dependent, as the paper says?
- ``warm``: warm start none / copy / shifted;
- ``execution``: sync vs async execution through the real policy node (``vla-eqm demo``).

Every setting's raw JSON goes to ``<out>/<date>/raw/<section>__<setting>.json`` and is reused when
present (unless ``--fresh``), so a crash or an interrupt loses nothing: run the same command again.
A setting shared between sections (the default EqM run, tau 0.1, k_max 50, shifted warm start, is
in budget, tau and warm) has one key, named after the first section that uses it, and runs once.
The setting part of a key ends in a digest of everything that changes the numbers (tasks,
episodes, seeds, step limit, workers), so a cached run is never reused for different settings.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402  (bench/report.py, next to this file)

EQM_CKPT = "vla_eqm_ros/vla_eqm_ros/checkpoints/default_eqm"
FM_CKPT = "vla_eqm_ros/vla_eqm_ros/checkpoints/default_fm"
SECTIONS = ("latency", "decoder", "budget", "tau", "warm", "execution")
CLOSED_LOOP = ("budget", "tau", "warm", "execution")
# pick-place: the hard task (EqM 5/20 at tau 0.1); handle-press: the one taking most iterations
DEFAULT_TASKS = ("pick-place-v3", "handle-press-v3")
DEFAULT_SEED = 1000  # eval-sim's held-out variation seed (the demos used seed 0)
DEFAULT_EQM = {"tau": 0.1, "k_max": 50, "warm_start": "shifted"}  # shared by three sections
DEMO_FLAGS = ("--execution", "--no-progress", "--no-artifacts", "--json", "--tasks",
              "--episodes", "--max-steps", "--seed")


@dataclass(frozen=True)
class Grid:
    """Which settings each closed-loop section sweeps."""

    budget_eqm: tuple[tuple[float, int], ...]  # (tau, k_max)
    budget_fm: tuple[int, ...]  # Euler steps
    taus: tuple[float, ...]
    tau_k_max: int
    warm: tuple[str, ...]
    execution: tuple[str, ...]


FULL = Grid(budget_eqm=((0.2, 50), (0.1, 50), (0.05, 50), (0.1, 8), (0.1, 4)),
            budget_fm=(2, 5, 10), taus=(0.02, 0.05, 0.1, 0.2, 0.4), tau_k_max=50,
            warm=("none", "copy", "shifted"), execution=("sync", "async"))
QUICK = Grid(budget_eqm=((0.1, 50), (0.1, 4)), budget_fm=(2,), taus=(0.05, 0.1, 0.4),
             tau_k_max=50, warm=("none", "shifted"), execution=("sync", "async"))

# Observed wall time of one episode in one eval-sim worker (runs/eval/default_eqm.json, 2 workers,
# 200-step limit, 2-core machine); unlisted tasks get the mean. The estimate is only a guide.
EPISODE_S = {"handle-press-v3": 6.5, "pick-place-v3": 16.7, "button-press-topdown-v3": 10.4,
             "drawer-open-v3": 15.2, "drawer-close-v3": 14.6}
EVAL_OVERHEAD_S = 20.0  # worker start-up: torch, checkpoint, language encoder, DDS discovery
DEMO_OVERHEAD_S = 25.0


@dataclass
class Run:
    """One setting: how to run it, how to show the command, and where its raw JSON lives."""

    section: str
    key: str
    label: str
    short: str
    series: str
    params: dict[str, Any]
    argv: list[str]
    display: str
    estimate_s: float
    json_flag: bool = True  # the tool writes its JSON to --json (else: stdout)


def domain(base: int, offset: int) -> int:
    """A private ROS domain, the same formula eval-sim uses for its workers (1 + (b+k) % 200)."""
    return 1 + (base + offset) % 200


def digest(params: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]


def episode_s(task: str, max_steps: int) -> float:
    """One episode in one worker: the observed time, capped by what max_steps allows."""
    observed = EPISODE_S.get(task, sum(EPISODE_S.values()) / len(EPISODE_S))
    return min(observed, 3.0 + 0.085 * max_steps)


def _common(args: argparse.Namespace) -> dict[str, Any]:
    return {"tasks": list(args.tasks), "episodes": args.episodes, "max_steps": args.max_steps,
            "seed": args.seed, "policy_seed": 0, "variation_start": 0}


def eval_sim_run(args: argparse.Namespace, section: str, setting: dict[str, Any], raw_dir: Path
                 ) -> Run:
    """An eval-sim run of one decoder setting (EqM: tau/k_max/warm_start; FM: fm_steps)."""
    fm = "fm_steps" in setting
    params = {"tool": "eval-sim", "checkpoint": FM_CKPT if fm else EQM_CKPT,
              "decoder": "fm" if fm else "eqm", **setting, **_common(args),
              "workers": args.workers}
    if fm:
        slug, label = f"fm-steps{setting['fm_steps']}", f"FM {setting['fm_steps']} steps"
        short = f"{setting['fm_steps']} st"
    else:
        slug = f"eqm-tau{setting['tau']:g}-k{setting['k_max']}-{setting['warm_start']}"
        label = f"EqM τ={setting['tau']:g} K={setting['k_max']} {setting['warm_start']}"
        short = f"τ{setting['tau']:g}/K{setting['k_max']}"
    key = f"{section}__{slug}-n{args.episodes}-{digest(params)}"
    tool_args = ["--checkpoint", params["checkpoint"], "--tasks", ",".join(args.tasks),
                 "--episodes", str(args.episodes), "--seed", str(args.seed),
                 "--max-steps", str(args.max_steps), "--workers", str(args.workers),
                 "--policy-seed", "0", "--domain-base", str(args.domain_base), "--no-progress"]
    tool_args += (["--fm-steps", str(setting["fm_steps"])] if fm else
                  ["--tau", f"{setting['tau']:g}", "--k-max", str(setting["k_max"]),
                   "--warm-start", setting["warm_start"]])
    out = raw_dir / f"{key}.json"
    workers = max(1, min(args.workers, args.episodes * len(args.tasks)))
    est = EVAL_OVERHEAD_S + sum(args.episodes * episode_s(t, args.max_steps)
                                for t in args.tasks) / workers
    return Run(section, key, label, short, "FM" if fm else "EqM", params,
               [sys.executable, "-m", "vla_eqm_train.cli", "eval-sim", *tool_args],
               shlex.join(["vla-eqm", "eval-sim", *tool_args, "--json", _rel(out)]), est)


def demo_run(args: argparse.Namespace, mode: str, raw_dir: Path) -> Run:
    """``vla-eqm demo --execution MODE``: the real policy node, so chunk hand-overs are real."""
    params = {"tool": "demo", "checkpoint": EQM_CKPT, "execution": mode, **_common(args)}
    key = f"execution__{mode}-n{args.episodes}-{digest(params)}"
    tool_args = ["--checkpoint", EQM_CKPT, "--tasks", *args.tasks, "--episodes",
                 str(args.episodes), "--max-steps", str(args.max_steps), "--seed", str(args.seed),
                 "--execution", mode, "--no-progress", "--no-artifacts"]
    out = raw_dir / f"{key}.json"
    env = f"ROS_DOMAIN_ID={domain(args.domain_base, 7)}"
    est = DEMO_OVERHEAD_S + sum(args.episodes * episode_s(t, args.max_steps) for t in args.tasks)
    return Run("execution", key, mode, mode, mode, params,
               [sys.executable, "-m", "vla_eqm_train.cli", "demo", *tool_args],
               f"{env} " + shlex.join(["vla-eqm", "demo", *tool_args, "--json", _rel(out)]), est)


def bench_run(args: argparse.Namespace, section: str, execution: str = "sync") -> Run:
    """A ``bench/<name>.py`` subprocess that prints one JSON object on stdout.

    The latency bench runs once per execution mode: sync answers each frame from a chunk
    solved on it (the solve is on the e2e path every ``execute_steps`` frames), async from the
    chunk solved in the background (the solve is off the path).
    """
    if section == "latency":
        script = "bench/node_latency.py"
        tool_args = ["--seconds", f"{args.node_seconds:g}", "--execution", execution]
        params: dict[str, Any] = {"tool": "node_latency", "seconds": args.node_seconds,
                                  "execution": execution}
        slug, est, off = f"{execution}-s{args.node_seconds:g}", args.node_seconds + 45.0, 5
    else:
        script, tool_args = "bench/decoder.py", ["--cycles", str(args.decoder_cycles)]
        params = {"tool": "decoder", "cycles": args.decoder_cycles}
        slug, est, off = f"cycles{args.decoder_cycles}", 20.0 + 1.2 * args.decoder_cycles, 9
    key = f"{section}__{slug}-{digest(params)}"
    env = f"ROS_DOMAIN_ID={domain(args.domain_base, off)}"
    return Run(section, key, script, section, section, params,
               [sys.executable, script, *tool_args],
               f"{env} " + shlex.join(["python", script, *tool_args]), est, json_flag=False)


def plan(args: argparse.Namespace, raw_dir: Path) -> dict[str, list[Run]]:
    """Runs per selected section; a setting used by several sections is one Run (one key).

    Ownership is decided over *all* closed-loop sections, not just the selected ones, so the
    default run's key is the same whether or not ``budget`` is selected this time.
    """
    grid = QUICK if args.quick else FULL
    wanted: dict[str, list[dict[str, Any]]] = {
        "budget": [{"tau": t, "k_max": k, "warm_start": "shifted"} for t, k in grid.budget_eqm]
                  + [{"fm_steps": s} for s in grid.budget_fm],
        "tau": [{"tau": t, "k_max": grid.tau_k_max, "warm_start": "shifted"} for t in grid.taus],
        "warm": [{**DEFAULT_EQM, "warm_start": w} for w in grid.warm],
    }
    owned: dict[str, Run] = {}  # json of setting -> its run
    out: dict[str, list[Run]] = {}
    for section in ("budget", "tau", "warm"):
        runs = []
        for setting in wanted[section]:
            ident = json.dumps(setting, sort_keys=True)
            if ident not in owned:
                owned[ident] = eval_sim_run(args, section, setting, raw_dir)
            runs.append(owned[ident])
        out[section] = runs
    out["execution"] = [demo_run(args, m, raw_dir) for m in grid.execution]
    out["latency"] = [bench_run(args, "latency", m) for m in ("sync", "async")]
    out["decoder"] = [bench_run(args, "decoder")]
    return {s: out[s] for s in SECTIONS if s in args.only}


# ----------------------------------------------------------------------------- running


def subprocess_env(args: argparse.Namespace, offset: int = 0) -> dict[str, str]:
    """The project's environment, DDS forced onto loopback on a private domain."""
    pkgs = [str(ROOT / p) for p in ("vla_eqm_ros", "vla_eqm_sim", "vla_eqm_train")]
    env = dict(os.environ)
    env.update({"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
                "ROS_DOMAIN_ID": str(domain(args.domain_base, offset)),
                "MUJOCO_GL": env.get("MUJOCO_GL", "osmesa"),
                "PYOPENGL_PLATFORM": env.get("PYOPENGL_PLATFORM", "osmesa"),
                "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "PYTHONPATH": os.pathsep.join(pkgs + [env.get("PYTHONPATH", "")])})
    return env


def parse_json_stdout(text: str) -> dict[str, Any]:
    """The JSON object a bench prints; tolerant of log lines printed before it."""
    with contextlib.suppress(json.JSONDecodeError):
        return json.loads(text)
    starts = [i for i, line in enumerate(text.splitlines(keepends=True)) if line.startswith("{")]
    lines = text.splitlines(keepends=True)
    for i in reversed(starts):
        with contextlib.suppress(json.JSONDecodeError):
            return json.loads("".join(lines[i:]))
    raise ValueError("no JSON object on stdout")


def load_cached(path: Path, params: dict[str, Any]) -> dict[str, Any] | None:
    """The raw JSON of an earlier run with the same parameters, else None."""
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    meta = raw.get("run_all") if isinstance(raw, dict) else None
    return raw if meta and meta.get("params") == params else None


def execute(run: Run, args: argparse.Namespace, raw_dir: Path, log_dir: Path
            ) -> tuple[dict[str, Any] | None, bool, str]:
    """(raw JSON, from cache?, error): run the setting unless its raw JSON is already there."""
    path = raw_dir / f"{run.key}.json"
    if not args.fresh and (cached := load_cached(path, run.params)) is not None:
        return cached, True, ""
    offset = {"latency": 5, "decoder": 9, "execution": 7}.get(run.section, 0)
    tmp = raw_dir / f"{run.key}.json.tmp"
    tmp.unlink(missing_ok=True)
    argv = run.argv + (["--json", str(tmp)] if run.json_flag else [])
    log = log_dir / f"{run.key}.log"
    t0 = time.monotonic()
    timeout = max(600.0, 5.0 * run.estimate_s)
    with log.open("w") as err:
        err.write(f"# {run.display}\n")
        err.flush()
        proc = subprocess.Popen(argv, cwd=ROOT, env=subprocess_env(args, offset),
                                stdout=subprocess.PIPE, stderr=err, text=True,
                                start_new_session=True)  # its own group: eval workers die too
        try:
            stdout, _ = proc.communicate(timeout=timeout)
        except BaseException:  # timeout or Ctrl-C: stop the whole group we started, then report
            _stop_group(proc)
            if not isinstance(sys.exc_info()[1], subprocess.TimeoutExpired):
                raise
            return None, False, f"timed out after {timeout:.0f} s (log: {_rel(log)})"
    wall = time.monotonic() - t0
    try:
        result = json.loads(tmp.read_text()) if run.json_flag else parse_json_stdout(stdout)
    except (OSError, ValueError) as exc:
        return None, False, f"exit {proc.returncode}, no JSON ({exc}); log: {_rel(log)}"
    finally:
        tmp.unlink(missing_ok=True)
    warning = ""
    if proc.returncode != 0:
        # eval-sim exits 1 when episodes are missing: never keep that. The demo writes its JSON
        # last, after every episode; a crash after that (seen: an intermittent abort in the
        # async node's teardown) leaves complete numbers, kept with the exit code on record.
        if run.params["tool"] != "demo":
            return None, False, f"exit {proc.returncode} (log: {_rel(log)})"
        warning = f"exited {proc.returncode} after writing its JSON (log: {_rel(log)})"
    result["run_all"] = {"params": run.params, "command": run.display, "wall_s": round(wall, 1),
                         "returncode": proc.returncode, "warning": warning,
                         "created": dt.datetime.now().isoformat(timespec="seconds"),
                         "git_commit": GIT_COMMIT, "load_end": round(os.getloadavg()[0], 2)}
    path.write_text(json.dumps(report.finite(result), indent=1) + "\n")
    return result, False, ""


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGINT, then SIGKILL, to the process group of one child this script started."""
    for sig, wait in ((signal.SIGINT, 15.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def record(run: Run, raw: dict[str, Any] | None, cached: bool, error: str) -> dict[str, Any]:
    """The summary's entry for one run (metrics derived from its raw JSON)."""
    if raw is None:
        metrics = None
    elif run.params["tool"] == "eval-sim":
        metrics = report.eval_metrics(raw)
    else:
        metrics = {k: v for k, v in raw.items() if k != "run_all"}
    meta = (raw or {}).get("run_all", {})
    return {"key": run.key, "label": run.label, "short": run.short, "series": run.series,
            "params": run.params, "command": run.display, "cached": cached,
            "wall_s": meta.get("wall_s"), "status": "ok" if raw is not None else "failed",
            "error": error, "warning": meta.get("warning", ""), "metrics": metrics}


def demo_precheck() -> str:
    """Why the execution section cannot run yet ('' when ``vla-eqm demo`` has every flag)."""
    try:
        help_text = subprocess.run([sys.executable, "-m", "vla_eqm_train.cli", "demo", "--help"],
                                   cwd=ROOT, capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`vla-eqm demo --help` failed: {exc}"
    missing = [f for f in DEMO_FLAGS if f not in help_text]
    return (f"`vla-eqm demo` lacks {', '.join(missing)} (the sync/async demo flags are not in "
            f"this checkout yet); nothing was run" if missing else "")


# ----------------------------------------------------------------------------- the summary


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


GIT_COMMIT = "unknown"


def machine() -> dict[str, Any]:
    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch_version = "not installed"
    return {"cores": os.cpu_count(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "torch": torch_version,
            "load_start": round(os.getloadavg()[0], 2),
            "note": "1-minute load averages; the machine may be shared with other jobs"}


def section_command(args: argparse.Namespace, section: str) -> str:
    """The run_all line that redoes one section with this invocation's settings."""
    argv = ["python", "bench/run_all.py", "--only", section, "--date", args.date,
            "--out", _rel(args.out), "--domain-base", str(args.domain_base)]
    if args.quick:
        argv.append("--quick")
    if section in CLOSED_LOOP:
        argv += ["--episodes", str(args.episodes), "--tasks", ",".join(args.tasks),
                 "--max-steps", str(args.max_steps), "--seed", str(args.seed)]
        if section != "execution":
            argv += ["--workers", str(args.workers)]
    elif section == "latency":
        argv += ["--node-seconds", f"{args.node_seconds:g}"]
    else:
        argv += ["--decoder-cycles", str(args.decoder_cycles)]
    return shlex.join(argv)


def write_outputs(summary: dict[str, Any], out: Path, date: str) -> Path:
    """JSON first (the record), then plots and Markdown derived from it."""
    report.analyze(summary)
    path = out / f"{date}.json"
    path.write_text(json.dumps(report.finite(summary), indent=1) + "\n")
    plots = report.write_plots(summary, out / date)
    (out / f"{date}.md").write_text(report.render_markdown(summary, plots, date))
    return path


def _rel(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _csv(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", type=_csv, default=list(SECTIONS),
                    help=f"comma-separated sections (default all: {','.join(SECTIONS)})")
    ap.add_argument("--episodes", type=int, default=None,
                    help="episodes per task per closed-loop setting (default 10; --quick: 1)")
    ap.add_argument("--tasks", type=_csv, default=None,
                    help="tasks of the closed-loop sections (default "
                         f"{','.join(DEFAULT_TASKS)}; --quick: handle-press-v3)")
    ap.add_argument("--max-steps", type=int, default=None,
                    help="episode step limit (default 200; --quick: 30)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="held-out variation seed")
    ap.add_argument("--workers", type=int, default=2, help="eval-sim worker processes")
    ap.add_argument("--node-seconds", type=float, default=None,
                    help="node_latency.py measurement window (default 120; --quick: 5)")
    ap.add_argument("--decoder-cycles", type=int, default=None,
                    help="decoder.py --cycles (default 40; --quick: 6)")
    ap.add_argument("--quick", action="store_true",
                    help="tiny smoke settings (1 episode, 30 steps, fewer settings); default "
                         "--out becomes bench/results/quick so real results stay clean")
    ap.add_argument("--out", type=Path, default=None, help="results folder (default bench/results)")
    ap.add_argument("--date", default=None,
                    help="YYYY-MM-DD of the results to write or resume (default today)")
    ap.add_argument("--fresh", action="store_true", help="ignore cached raw JSON, rerun all")
    ap.add_argument("--domain-base", type=int, default=None,
                    help="private ROS domains base+1.. (default $ROS_DOMAIN_ID, else 160)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--dry-run", action="store_true",
                    help="print the plan, the estimate and every command; run nothing")
    args = ap.parse_args(argv)
    bad = [s for s in args.only if s not in SECTIONS]
    if bad:
        ap.error(f"unknown section(s) {bad}; choose from {','.join(SECTIONS)}")
    q = args.quick
    args.episodes = args.episodes or (1 if q else 10)
    args.tasks = args.tasks or (["handle-press-v3"] if q else list(DEFAULT_TASKS))
    args.max_steps = args.max_steps or (30 if q else 200)
    args.node_seconds = args.node_seconds or (5.0 if q else 120.0)
    args.decoder_cycles = args.decoder_cycles or (6 if q else 40)
    args.out = (args.out or ROOT / "bench" / "results" / ("quick" if q else "")).resolve()
    args.date = args.date or dt.date.today().isoformat()
    if args.domain_base is None:
        args.domain_base = int(os.environ.get("ROS_DOMAIN_ID") or 160)
    return args


def main(argv: list[str] | None = None) -> int:
    global GIT_COMMIT
    args = parse_args(argv)
    from tqdm import tqdm

    t_start = time.monotonic()
    out, date = args.out, args.date
    raw_dir, log_dir = out / date / "raw", out / date / "logs"
    GIT_COMMIT = git_commit()
    sections = plan(args, raw_dir)

    precheck = demo_precheck() if "execution" in sections else ""
    todo: dict[str, Run] = {}
    for name, runs in sections.items():
        if name == "execution" and precheck:
            continue
        for r in runs:
            if args.fresh or load_cached(raw_dir / f"{r.key}.json", r.params) is None:
                todo[r.key] = r
    estimate = sum(r.estimate_s for r in todo.values())
    unique = {r.key for name, runs in sections.items() for r in runs
              if not (name == "execution" and precheck)}
    print(f"run_all: {len(unique)} setting(s) in {', '.join(sections)}; {len(todo)} to run, "
          f"{len(unique) - len(todo)} cached; estimate ~{estimate / 60:.0f} min on this machine "
          f"({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})", file=sys.stderr)
    counted: set[str] = set()
    for name, runs in sections.items():
        new = [r for r in runs if r.key in todo and r.key not in counted]
        counted.update(r.key for r in new)
        print(f"  {name:<10} {len(runs)} setting(s), {len(new)} to run here, "
              f"~{sum(r.estimate_s for r in new) / 60:.1f} min", file=sys.stderr)
    if precheck:
        print(f"  execution: skipped: {precheck}", file=sys.stderr)
    if args.dry_run:
        for r in todo.values():
            print(f"[{r.key}] ~{r.estimate_s:.0f} s\n  {r.display}")
        return 0
    raw_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)

    summary: dict[str, Any] = {"date": date,
                               "created": dt.datetime.now().isoformat(timespec="seconds"),
                               "command": shlex.join(["python", "bench/run_all.py",
                                                      *(sys.argv[1:] if argv is None else argv)]),
                               "git_commit": GIT_COMMIT, "machine": machine(),
                               "config": {"episodes": args.episodes, "tasks": args.tasks,
                                          "seed": args.seed, "policy_seed": 0,
                                          "max_steps": args.max_steps, "workers": args.workers,
                                          "quick": args.quick, "node_seconds": args.node_seconds,
                                          "decoder_cycles": args.decoder_cycles,
                                          "raw_dir": _rel(raw_dir)},
                               "estimate_s": round(estimate), "sections": {}}
    previous = out / f"{date}.json"  # sections of an earlier invocation today are kept
    if previous.is_file():
        with contextlib.suppress(OSError, json.JSONDecodeError):
            for name, sec in json.loads(previous.read_text()).get("sections", {}).items():
                if name not in sections and name in SECTIONS:
                    summary["sections"][name] = {**sec, "carried_over": True}
    bar = tqdm(total=len(unique), desc="run_all", unit="setting", file=sys.stderr,
               disable=args.no_progress)
    done: dict[str, tuple[dict[str, Any] | None, str]] = {}  # key -> (raw, error), this call
    path = previous
    try:
        for name, runs in sections.items():
            t0, load0 = time.monotonic(), round(os.getloadavg()[0], 2)
            sec: dict[str, Any] = {"status": "running", "load_start": load0, "runs": [],
                                   "command": section_command(args, name),
                                   "git_commit": GIT_COMMIT}
            summary["sections"][name] = sec
            if name == "execution" and precheck:
                sec.update(status="skipped", reason=precheck, wall_s=0.0, load_end=load0,
                           runs=[{**record(r, None, False, "not run"), "status": "not run"}
                                 for r in runs])
                path = write_outputs(_ordered(summary), out, date)
                continue
            for r in runs:
                bar.set_postfix_str(r.key.split("__")[1][:40])
                if r.key in done:  # shared with an earlier section: never run (or fail) twice
                    raw, error = done[r.key]
                    sec["runs"].append(record(r, raw, raw is not None, error))
                    continue
                raw, cached, error = execute(r, args, raw_dir, log_dir)
                done[r.key] = (raw, error)
                sec["runs"].append(record(r, raw, cached, error))
                if error:
                    tqdm.write(f"run_all: {r.key} failed: {error}", file=sys.stderr)
                bar.update(1)
            ok = sum(x["status"] == "ok" for x in sec["runs"])
            sec.update(status="ok" if ok == len(runs) else "partial" if ok else "failed",
                       wall_s=round(time.monotonic() - t0, 1),
                       load_end=round(os.getloadavg()[0], 2))
            path = write_outputs(_ordered(summary), out, date)
    except KeyboardInterrupt:
        bar.close()
        summary["interrupted"] = True
        summary["wall_s"] = round(time.monotonic() - t_start, 1)
        path = write_outputs(_ordered(summary), out, date)
        print(f"interrupted; finished settings are cached in {_rel(raw_dir)}; partial summary: "
              f"{_rel(path)}", file=sys.stderr)
        return 130
    bar.close()
    summary["wall_s"] = round(time.monotonic() - t_start, 1)
    summary["machine"]["load_end"] = round(os.getloadavg()[0], 2)
    path = write_outputs(_ordered(summary), out, date)
    failed = [n for n, s in summary["sections"].items()
              if s.get("status") in ("failed", "partial") and not s.get("carried_over")]
    print(f"run_all: markdown {_rel(out / f'{date}.md')}, plots {_rel(out / date)}/"
          + (f"; failed or partial: {', '.join(failed)}" if failed else ""), file=sys.stderr)
    print(_rel(path))
    return 1 if failed else 0


def _ordered(summary: dict[str, Any]) -> dict[str, Any]:
    """Sections in suite order, whichever invocation produced them."""
    secs = summary["sections"]
    summary["sections"] = {n: secs[n] for n in SECTIONS if n in secs}
    return summary


if __name__ == "__main__":
    sys.exit(main())
