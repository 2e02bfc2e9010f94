"""One ``vla-eqm record`` worker process: a recording session that takes (task, seed) jobs from
stdin and records each until it holds its target of successful demonstrations.

Started by ``record_cli`` through ``workers.JobPool`` as ``python -m vla_eqm_sim.record_worker
SETTINGS_JSON``. A job resumes by itself: the attempts whose sidecars exist are counted, not
recorded again, and a bag directory without its sidecar (an interrupted write) is recorded anew.
Attempt i of a job plays variation ``variation_of(start + i, seed)``, so a rerun plays the same
start states in the same order. Prints one JSON line per episode and one ``job_done`` line per job.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from vla_eqm_sim.bag_writer import sidecar_path


def variation_of(index: int, seed: int) -> tuple[int, int]:
    """(variation, seed) of the index-th start state: Meta-World holds 50 variations per seed,
    so index 50 is variation 0 of seed + 1 (eval-sim follows the same rule)."""
    return index % 50, seed + index // 50


def attempt_plan(task: str, seed: int, variation_start: int, attempts: int) -> list[Any]:
    """The EpisodePlans of a job's attempts, in order."""
    from vla_eqm_sim.expert_session import EpisodePlan

    return [EpisodePlan(task, *variation_of(variation_start + i, seed)) for i in range(attempts)]


def existing_outcome(out: Path, bag_name: str) -> dict[str, Any] | None:
    """The sidecar of a finished attempt (in ``out`` or ``out/failed``), or None."""
    for where in (out, out / "failed"):
        path = sidecar_path(where / bag_name)
        if path.is_file() and (where / bag_name).is_dir():
            return json.loads(path.read_text())
    return None


class PixelError:
    """JPEG's error against the raw render of the same frame, accumulated over frames."""

    def __init__(self) -> None:
        self.abs_sum = 0.0
        self.sq_sum = 0.0
        self.max_abs = 0
        self.values = 0
        self.frames = 0

    def add(self, raw: np.ndarray, decoded: np.ndarray) -> None:
        diff = raw.astype(np.int16) - decoded.astype(np.int16)
        self.abs_sum += float(np.abs(diff).sum())
        self.sq_sum += float((diff.astype(np.float64) ** 2).sum())
        self.max_abs = max(self.max_abs, int(np.abs(diff).max()))
        self.values += diff.size
        self.frames += 1

    def to_dict(self) -> dict[str, Any]:
        return {"abs_sum": self.abs_sum, "sq_sum": self.sq_sum, "max_abs": self.max_abs,
                "values": self.values, "frames": self.frames}


def _measure(session: Any, error: PixelError, quality: int) -> None:
    """Encode the bridge's current frames as its publisher does and compare to the raw render."""
    from vla_eqm_ros.images import decode_compressed, encode_compressed

    size = session.image_size
    for frame in session.bridge.backend.render(session.cameras, (size, size)).values():
        error.add(frame, decode_compressed(encode_compressed(frame, "jpeg", quality), "jpeg"))


def run_job(session: Any, job: dict[str, Any], emit) -> None:
    out = Path(job["out"])
    successes = 0
    error = PixelError()
    for plan in attempt_plan(job["task"], job["seed"], job["variation_start"],
                             job["max_attempts"]):
        done = existing_outcome(out, plan.bag_name)
        if done is not None:
            successes += bool(done.get("success"))
            continue
        if successes >= job["target"]:
            break
        target = out / plan.bag_name
        if target.exists():  # an interrupted write: no sidecar, so never counted
            shutil.rmtree(target)
        outcome = session.record(plan, target)
        if job["success_only"] and not outcome.success:
            failed = out / "failed"
            failed.mkdir(exist_ok=True)
            shutil.rmtree(failed / plan.bag_name, ignore_errors=True)
            shutil.move(str(sidecar_path(target)), sidecar_path(failed / plan.bag_name))
            shutil.move(str(target), failed / plan.bag_name)
            outcome.bag = failed / plan.bag_name
        successes += outcome.success
        if session.image_transport == "compressed":
            _measure(session, error, session.jpeg_quality)
        emit({"event": "episode", "task": plan.task, "variation": plan.variation,
              "seed": plan.seed, "bag": str(outcome.bag), "success": outcome.success,
              "steps": outcome.steps, "complete": outcome.complete,
              "seconds": round(outcome.seconds, 3)})
    emit({"event": "job_done", "task": job["task"], "seed": job["seed"], "successes": successes,
          "pixel_error": error.to_dict() if error.frames else None})


def main(argv: list[str] | None = None) -> int:
    from vla_eqm_sim.expert_session import RecordingError, RecordingSession
    from vla_eqm_sim.workers import serve

    settings = json.loads((argv or sys.argv[1:])[0])

    def start(job: dict[str, Any]) -> RecordingSession:
        return RecordingSession(job["task"], settings["cameras"], settings["image_size"],
                                settings["max_steps"], settings["control"],
                                image_transport=settings["image_transport"],
                                jpeg_quality=settings["jpeg_quality"], log_level="warn")

    return serve(start, run_job, (RecordingError, OSError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
