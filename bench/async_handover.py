"""What async execution is for: a solve longer than a control period, commands still at 20 Hz.

The node gets a solve that cannot fit in one 50 ms period: τ = 0 is never reached, so every solve
runs all of ``--k-max`` (default 100) iterations of the shipped checkpoint (about 0.9 ms each on
one core, plus the prefix). The same input stream (``node_latency.py``'s robot, 96 px cameras,
20 Hz, timer trigger so a cycle is due every period whatever the solver does) is served once in
``sync`` (the solve runs inside the cycle) and once in ``async`` (it runs in the solver thread
while the queue executes). Prints one JSON object: per mode the command rate, dropped cycles,
holds, solve time and the chunk-boundary jump at the hand-over (``boundary_jump_*``: the change
from the last executed action of a chunk to the first of the next, in action units).

    python bench/async_handover.py [--seconds 60] [--k-max 100]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from node_latency import build_parser, measure, run_bench  # bench/ is on the path (above)

KEYS = ("rate_hz", "dropped_cycles", "node_holds", "node_last_hold_reason", "node_solve_ms_p50",
        "node_solve_ms_p99", "node_boundary_jump_p50", "node_boundary_jump_max", "e2e_ms_p50",
        "e2e_ms_p99", "iters_p50")


def main(argv: list[str] | None = None) -> int:
    p = build_parser(__doc__.split("\n\n")[0])
    p.add_argument("--modes", nargs="+", default=["sync", "async"])
    args = p.parse_args(argv)
    args.trigger = "timer"
    args.k_max = args.k_max or 100
    args.param = [*args.param, "tau:=0.0"]
    if args.seconds == 120.0:  # node_latency's default; half is enough here
        args.seconds = 60.0
    out: dict = {"k_max": args.k_max, "tau": 0.0, "seconds": args.seconds, "modes": {}}
    for mode in args.modes:
        args.execution = mode
        run = run_bench(args, lambda robot, node: measure(robot, args.seconds, "timer"))
        out["modes"][mode] = {k: run.get(k) for k in KEYS}
        out["control_period_ms"] = 1000.0 / run["control_rate_hz"]
        out["execute_steps"] = run["execute_steps"]
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
