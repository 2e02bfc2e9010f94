"""The eval-bag report: ``report.json`` (everything, per setting and per episode) and ``report.md``.

The JSON is the record (plots and the Markdown are derived from it, so they can be regenerated).
Completeness is explicit: ``complete`` is true only when every bag decoded and every (bag, setting)
replay finished; a failed bag or replay is listed with its reason, is excluded from the
aggregates, and the Markdown opens with a warning. A partial result is never reported as complete.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from vla_eqm_train.evaluation.bag.metrics import aggregate_cycles


def setting_aggregates(episodes: list[dict[str, Any]], settings: list[dict[str, Any]]
                       ) -> dict[str, dict[str, Any]]:
    """Per setting: all cycles of the episodes that replayed fully, pooled; counts of failures."""
    out: dict[str, dict[str, Any]] = {}
    for s in settings:
        name = s["name"]
        runs = [e["settings"].get(name) for e in episodes]
        ok = [r for r in runs if r is not None and r["status"] == "ok"]
        cycles = [c for r in ok for c in r["cycles"]]
        out[name] = {"setting": s, "episodes_ok": len(ok),
                     "episodes_failed": len(runs) - len(ok), **aggregate_cycles(cycles)}
    return out


def is_complete(episodes: list[dict[str, Any]], settings: list[dict[str, Any]],
                live: dict[str, Any] | None, interrupted: bool) -> bool:
    if interrupted or not episodes:
        return False
    for e in episodes:
        if e["status"] != "ok" or len(e["settings"]) != len(settings):
            return False
        if any(r["status"] != "ok" for r in e["settings"].values()):
            return False
    return live is None or all(r["status"] == "ok" for r in live.get("episodes", []))


def write_json(out: Path, report: dict[str, Any]) -> Path:
    path = Path(out) / "report.json"
    path.write_text(json.dumps(_finite(report), indent=1) + "\n")
    return path


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: they become null (and the Markdown prints '-')."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _f(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def scan_table(report: dict[str, Any]) -> list[str]:
    """The tau-scan table (one row per setting), the report's headline."""
    lines = ["| setting | episodes ok/failed | decodes | iters mean | iters p50 | iters p95 | "
             "residual p50 | stop reasons | first L1 | first L2 | chunk L1 | chunk L2 | "
             "jump mean | jump p95 | decode ms p50 | decode ms p95 |",
             "|" + "---|" * 16]
    for name, a in report["aggregates"].items():
        if not a.get("cycles"):
            lines.append(f"| {name} | {a['episodes_ok']}/{a['episodes_failed']} | 0 |"
                         + " - |" * 13)
            continue
        stops = ", ".join(f"{k}:{v}" for k, v in sorted(a["stop_reasons"].items()))
        lines.append(
            f"| {name} | {a['episodes_ok']}/{a['episodes_failed']} | {a['cycles']} | "
            f"{_f(a['iterations']['mean'])} | {_f(a['iterations']['p50'])} | "
            f"{_f(a['iterations']['p95'])} | {_f(a['residual_p50'])} | {stops} | "
            f"{_f(a['first_action']['l1'])} | {_f(a['first_action']['l2'])} | "
            f"{_f(a['chunk']['l1'])} | {_f(a['chunk']['l2'])} | {_f(a['jump']['mean'])} | "
            f"{_f(a['jump']['p95'])} | {_f(a['decode_ms']['p50'])} | "
            f"{_f(a['decode_ms']['p95'])} |")
    return lines


def _per_dim_table(report: dict[str, Any]) -> list[str]:
    names = report.get("action_names") or []
    head = " | ".join(f"first L1 {n} | first L2 {n}" for n in names)
    chead = " | ".join(f"chunk L1 {n} | chunk L2 {n}" for n in names)
    lines = [f"| setting | {head} | {chead} |", "|" + "---|" * (1 + 4 * len(names))]
    for name, a in report["aggregates"].items():
        if not a.get("cycles"):
            continue
        fa, ch = a["first_action"], a["chunk"]
        cells = [f"{_f(x)} | {_f(y)}" for x, y in zip(fa["l1_per_dim"], fa["l2_per_dim"],
                                                       strict=True)]
        cells += [f"{_f(x)} | {_f(y)}" for x, y in zip(ch["l1_per_dim"], ch["l2_per_dim"],
                                                       strict=True)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _episode_table(report: dict[str, Any]) -> list[str]:
    lines = ["| bag | task | seed | ticks | setting | status | iters mean | first L2 | "
             "chunk L2 | jump mean |", "|" + "---|" * 10]
    for e in report["episodes"]:
        if e["status"] != "ok":
            lines.append(f"| {e['name']} | {e.get('task') or '-'} | - | - | (all) | "
                         f"FAILED: {e['error']} | - | - | - | - |")
            continue
        for name, r in e["settings"].items():
            if r["status"] != "ok":
                lines.append(f"| {e['name']} | {e.get('task') or '-'} | {r.get('seed')} | "
                             f"{e['length']} | {name} | FAILED: {r['error']} | - | - | - | - |")
                continue
            s = r["summary"]
            lines.append(f"| {e['name']} | {e.get('task') or '-'} | {r['seed']} | {e['length']} "
                         f"| {name} | ok | {_f(s['iterations']['mean'])} | "
                         f"{_f(s['first_action']['l2'])} | {_f(s['chunk']['l2'])} | "
                         f"{_f(s['jump']['mean'])} |")
    return lines


def _live_section(live: dict[str, Any]) -> list[str]:
    lines = ["## Live replay (DDS, recorded timing)", "",
             f"Policy node: trigger `{live['trigger']}`, use_sim_time (the player publishes "
             f"/clock from the bag), playback rate {live['rate']:g}; node settings "
             f"`{json.dumps(live['node_parameters'])}`. Recorded command topics are not replayed.",
             "",
             "| bag | status | frames played | commands | decodes | cmd L2 (time-aligned) | "
             "first L2 (obs-aligned) | chunk L2 | iters p50 | e2e ms p50 | e2e ms p95 | "
             "output bag |", "|" + "---|" * 12]
    for e in live["episodes"]:
        if e["status"] != "ok":
            lines.append(f"| {e['name']} | FAILED: {e['error']} |" + " - |" * 10)
            continue
        c, ch, lat = e["commands"], e["chunks"], e["latency_ms"]
        lines.append(
            f"| {e['name']} | ok | {e['frames_played']} | {c['count']} | {ch.get('cycles', 0)} | "
            f"{_f(c['l2'])} | {_f(ch.get('first_action', {}).get('l2'))} | "
            f"{_f(ch.get('chunk', {}).get('l2'))} | {_f(ch.get('iterations', {}).get('p50'))} | "
            f"{_f(lat['p50'])} | {_f(lat['p95'])} | `{e['output_bag']}` |")
    return lines + [""]


def write_markdown(out: Path, report: dict[str, Any], plots: list[str]) -> Path:
    """A human summary of ``report.json`` with the plots inlined."""
    bags = report["bags"]
    lines = ["# vla-eqm eval-bag report", ""]
    if not report["complete"]:
        why = "interrupted; " if report.get("interrupted") else ""
        lines += [f"> **INCOMPLETE** ({why}{len(bags['failed'])} of {bags['total']} bags failed, "
                  f"{report['failed_replays']} replays failed). Aggregates cover only what "
                  "finished.", ""]
    lines += [
        f"- checkpoint: `{report['checkpoint']}` (decoder {report['decoder']}; "
        f"`{json.dumps(report.get('checkpoint_provenance') or {})}`)",
        f"- bags: {bags['ok']} ok of {bags['total']}; tasks: {', '.join(report['tasks']) or '-'}",
        f"- control period {report['control_period']:g} s, execute_steps "
        f"{report['execute_steps']}, horizon {report['horizon']}; solver "
        f"`{json.dumps(report['solver'])}`",
        f"- noise seed per bag: crc32(bag name | decoder), shared by all settings (paired "
        f"comparison); probe: {report['probe']['cycles_per_episode']} cold tau=0 solves per "
        f"episode to k={report['probe']['k_max']}",
        f"- wall time {report['wall_s']:.0f} s on {report['machine']}", "",
        "## Scan (pooled over episodes; errors in action units)", "",
        *scan_table(report), "",
        "first = the first action of each chunk vs the recorded command at that tick; chunk = all "
        "H rows vs the next H recorded commands (masked at the episode end); L1 = mean |error|, "
        "L2 = Euclidean norm per action (chunk: mean row norm). jump = ||new chunk[0] - previous "
        "chunk's plan for that tick||.", "",
        "## Per action dimension", "", *_per_dim_table(report), "",
    ]
    if bags["failed"]:
        lines += ["## Failed bags", ""] + [f"- `{f['bag']}`: {f['reason']}"
                                            for f in bags["failed"]] + [""]
    if report.get("live"):
        lines += _live_section(report["live"])
    lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    lines += ["## Per episode", "", *_episode_table(report), ""]
    path = Path(out) / "report.md"
    path.write_text("\n".join(lines))
    return path
