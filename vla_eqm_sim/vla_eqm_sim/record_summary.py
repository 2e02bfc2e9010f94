"""``OUT/record_summary.json``: what a recording folder holds, per task, read from its sidecars.

The summary is derived from the files on disk, not from one run's memory, so it is the same after
a resumed run as after one uninterrupted run, and it lists the experts that fell short of their
target instead of hiding them. Run-time figures (wall time, episodes per minute, the JPEG pixel
error) are merged in from the runs that measured them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

SUMMARY_NAME = "record_summary.json"
SETTINGS_KEYS = ("cameras", "image_size", "image_transport", "control_mode", "max_steps")


def sidecars(out: Path) -> list[dict[str, Any]]:
    """Every finished episode under ``out`` (and ``out/failed``): its sidecar plus bag bytes."""
    found = []
    for where in (out, out / "failed"):
        if not where.is_dir():
            continue
        for path in sorted(where.glob("*.json")):
            bag = path.with_suffix("")
            if path.name == SUMMARY_NAME or not bag.is_dir():
                continue
            meta = json.loads(path.read_text())
            meta["bytes"] = sum(f.stat().st_size for f in bag.iterdir() if f.is_file())
            found.append(meta)
    return found


def settings_of(meta: dict[str, Any]) -> dict[str, Any]:
    """The settings a folder's episodes must share (mixing them would mix two data sets)."""
    return {k: meta.get(k, "raw" if k == "image_transport" else None) for k in SETTINGS_KEYS}


def mismatched(out: Path, wanted: dict[str, Any]) -> str | None:
    """A reason when ``out`` holds episodes recorded with other settings, else None."""
    for meta in sidecars(out):
        have = settings_of(meta)
        diff = {k: (have[k], wanted[k]) for k in SETTINGS_KEYS if have[k] != wanted[k]}
        if diff:
            name = f"{meta.get('task')}__var{meta.get('variation', 0):02d}__seed{meta.get('seed')}"
            pairs = ", ".join(f"{k}: {a!r} there, {b!r} asked" for k, (a, b) in diff.items())
            return f"{out} holds {name} recorded with other settings ({pairs})"
    return None


def _pixel_error(acc: dict[str, float] | None) -> dict[str, Any] | None:
    if not acc or not acc.get("values"):
        return None
    mse = acc["sq_sum"] / acc["values"]
    return {"mean_abs": round(acc["abs_sum"] / acc["values"], 3),
            "rmse": round(math.sqrt(mse), 3),
            "psnr_db": round(10 * math.log10(255.0 ** 2 / mse), 2) if mse > 0 else None,
            "max_abs": int(acc["max_abs"]), "frames": int(acc["frames"]),
            "measured_on": "the last frame of each episode recorded, both cameras, against "
                           "the raw render"}


def merge_error(a: dict[str, float] | None, b: dict[str, float] | None) -> dict[str, float] | None:
    """Sum two pixel-error accumulators (``record_worker.PixelError.to_dict``)."""
    if not a:
        return b
    if not b:
        return a
    return {"abs_sum": a["abs_sum"] + b["abs_sum"], "sq_sum": a["sq_sum"] + b["sq_sum"],
            "max_abs": max(a["max_abs"], b["max_abs"]), "values": a["values"] + b["values"],
            "frames": a["frames"] + b["frames"]}


def build(out: Path, tasks: list[str], target: int, settings: dict[str, Any],
          runs: list[dict[str, Any]], error_acc: dict[str, float] | None) -> dict[str, Any]:
    """The summary of ``out``: ``tasks`` (target successes each) and any other task it holds;
    ``runs`` are the timing records of the runs so far (this one last)."""
    per_task: dict[str, dict[str, Any]] = {}
    episodes = sidecars(out)
    requested = list(tasks)
    tasks = list(dict.fromkeys([*tasks, *(m.get("task") for m in episodes)]))
    for task in tasks:
        mine = [m for m in episodes if m.get("task") == task]
        ok = [m for m in mine if m.get("success")]
        per_task[task] = {
            "attempts": len(mine), "successes": len(ok),
            "expert_success_rate": round(len(ok) / len(mine), 4) if mine else None,
            "frames": sum(int(m["steps"]) + 1 for m in ok),
            "frames_all": sum(int(m["steps"]) + 1 for m in mine),
            "bytes": sum(m["bytes"] for m in mine),
            "steps_mean": round(sum(int(m["steps"]) for m in ok) / len(ok), 1) if ok else None,
        }
    total_bytes = sum(v["bytes"] for v in per_task.values())
    seconds = sum(r["seconds"] for r in runs)
    new = sum(r["episodes"] for r in runs)
    codec = ({"codec": "jpeg", "jpeg_quality": settings.get("jpeg_quality"),
              "format": "rgb8; jpeg compressed bgr8"}
             if settings.get("image_transport") == "compressed" else {"codec": "raw rgb8"})
    return {
        "out": str(out),
        "target_per_task": target,
        "settings": {**settings, **codec},
        "tasks": per_task,
        "short": {t: per_task[t]["successes"] for t in requested
                  if per_task[t]["successes"] < target},
        "totals": {
            "tasks": len(tasks),
            "attempts": sum(v["attempts"] for v in per_task.values()),
            "successes": sum(v["successes"] for v in per_task.values()),
            "frames": sum(v["frames"] for v in per_task.values()),
            "bytes": total_bytes, "gb": round(total_bytes / 1e9, 3),
            "bytes_per_frame": (round(total_bytes / max(1, sum(v["frames_all"]
                                for v in per_task.values())), 1)),
        },
        "pixel_error": _pixel_error(error_acc),
        "pixel_error_acc": error_acc,
        "runs": runs,
        "episodes_per_minute": round(60.0 * new / seconds, 2) if seconds > 0 else None,
    }


def load(out: Path) -> dict[str, Any]:
    path = out / SUMMARY_NAME
    return json.loads(path.read_text()) if path.is_file() else {}


def write(out: Path, summary: dict[str, Any]) -> Path:
    path = out / SUMMARY_NAME
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, indent=1) + "\n")
    tmp.replace(path)
    return path
