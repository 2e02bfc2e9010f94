"""The README's latency table, from a folder of ``node_latency.py`` JSON files.

One row per file, in name order: cameras, execution, executor, command rate, e2e p50 / p99
(observation stamp -> command receipt, the bench's figure), the node's own sensor-to-command
p99 (the stamp of the frame a command was computed from -> its publish), dropped cycles and
solve p50. Prints markdown on stdout.

    python bench/latency_table.py bench/results/2026-12-01/node_latency
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def row(d: dict) -> str:
    size = d.get("camera_size", "")
    cams = ("96 px raw" if size.startswith("model size") else
            f"{size} {'JPEG' if d.get('camera_transport', '').startswith('compressed') else 'raw'}")
    executor = d.get("executor", "")
    executor = "single_threaded (default)" if executor.startswith("the YAML") else executor
    return (f"| {cams} | {d['execution'].split()[0]} | {executor} | {d['rate_hz']:.1f} Hz | "
            f"{d['e2e_ms_p50']:.1f} / {d['e2e_ms_p99']:.1f} ms | {d['node_e2e_ms_p99']:.1f} ms | "
            f"{d['dropped_cycles']} | {d['node_solve_ms_p50']:.1f} ms |")


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else Path("bench/results/2026-12-01/node_latency")
    print("| cameras | execution | executor | rate | e2e p50 / p99 | node e2e p99 | dropped "
          "cycles | solve p50 |")
    print("|---|---|---|---|---|---|---|---|")
    for path in sorted(folder.glob("*.json")):
        print(row(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
