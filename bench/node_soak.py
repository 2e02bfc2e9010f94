"""Policy-node soak: memory, dropped cycles and holds over a long run at 20 Hz.

The same two processes as ``node_latency.py`` (which owns every option: camera size, compression,
execution, executor, ...): a Python robot publishes the contract's inputs and the policy node
answers through ``bringup``. Every ``--sample-s`` seconds the bench reads the node process's
resident memory (``/proc/<pid>/status`` VmRSS) and the node's cumulative ``dropped_cycles`` and
``holds`` from ``/diagnostics``. Prints one JSON object and writes ``--plot`` (RSS, dropped cycles
and holds against time).

``rss_growth_pct`` compares the last sample with the one at ``--baseline-s`` (default 60 s: the
first minute holds one-time allocations such as allocator pools and the first solves' buffers);
``rss_growth_pct_from_start`` uses the first sample.

    python bench/node_soak.py --minutes 30 [--sample-s 30] [--plot soak.png] [node_latency options]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from node_latency import build_parser, log, run_bench  # bench/ is on the path (above)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def soak(robot, node, minutes: float, sample_s: float) -> dict:
    time.sleep(3.0)  # warm-up, as node_latency
    t0 = time.time()
    with robot.lock:
        diag0 = robot.diag[-1][1] if robot.diag else {}
        n_cmd0 = len(robot.commands)
    samples = []
    end = t0 + minutes * 60.0
    next_t = t0
    while True:
        now = time.time()
        with robot.lock:
            diag = robot.diag[-1][1] if robot.diag else {}
            commands = len(robot.commands) - n_cmd0
        samples.append({
            "t_s": round(now - t0, 1), "rss_mb": round(rss_mb(node.pid), 2),
            "dropped_cycles": int(diag.get("dropped_cycles", "0"))
            - int(diag0.get("dropped_cycles", "0")),
            "holds": int(diag.get("holds", "0")) - int(diag0.get("holds", "0")),
            "commands": commands,
            "e2e_ms_p99": float(diag.get("sensor_to_command_ms_p99", "nan"))})
        if len(samples) % 10 == 1:
            log(f"soak {samples[-1]}")
        if now >= end or node.poll() is not None:
            break
        next_t += sample_s
        time.sleep(max(0.0, min(next_t, end) - time.time()))
    return {"samples": samples, "alive_at_end": node.poll() is None}


def summarize(run: dict, baseline_s: float, seconds: float) -> dict:
    s = run["samples"]
    base = next((x for x in s if x["t_s"] >= baseline_s), s[0])
    last = s[-1]
    return {
        "rss_mb_start": s[0]["rss_mb"], "rss_mb_baseline": base["rss_mb"],
        "rss_mb_end": last["rss_mb"], "rss_mb_max": max(x["rss_mb"] for x in s),
        "rss_growth_pct": round(100.0 * (last["rss_mb"] - base["rss_mb"]) / base["rss_mb"], 2),
        "rss_growth_pct_from_start": round(
            100.0 * (last["rss_mb"] - s[0]["rss_mb"]) / s[0]["rss_mb"], 2),
        "baseline_s": base["t_s"], "dropped_cycles": last["dropped_cycles"],
        "holds": last["holds"], "rate_hz": round(last["commands"] / max(1.0, last["t_s"]), 2),
        "duration_s": last["t_s"], "planned_s": seconds,
    }


def plot(run: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = run["samples"]
    t = [x["t_s"] / 60.0 for x in s]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    ax1.plot(t, [x["rss_mb"] for x in s], "-o", ms=3)
    ax1.set_ylabel("node RSS, MB")
    ax1.set_title(title, fontsize=9)
    ax1.grid(alpha=0.3)
    ax2.plot(t, [x["dropped_cycles"] for x in s], label="dropped cycles")
    ax2.plot(t, [x["holds"] for x in s], label="holds")
    ax2.set_xlabel("minutes")
    ax2.set_ylabel("cumulative count")
    ax2.legend()
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = build_parser(__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--sample-s", type=float, default=30.0)
    p.add_argument("--baseline-s", type=float, default=60.0)
    p.add_argument("--plot", type=Path, default=Path("node_soak.png"))
    args = p.parse_args(argv)
    args.seconds = args.minutes * 60.0
    # the node's default window: a window sized to the whole run would itself grow the memory
    args.param.append("diagnostics_window:=200")
    result = run_bench(args, lambda robot, node: soak(robot, node, args.minutes, args.sample_s))
    result.update(summarize(result, args.baseline_s, args.seconds))
    plot(result, args.plot, f"policy node soak: {args.minutes:g} min at {args.rate:g} Hz, "
                            f"{result['execution']}, {result['camera_size']}")
    result["plot"] = str(args.plot)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
