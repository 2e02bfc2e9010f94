"""What ``vla-eqm demo`` leaves behind: a rosbag2 of the run, an annotated GIF, a contact sheet and
plots of solver depth, written from the recorder (``recorder.py``) through the run's timeline
(``timeline.py``) by ``media.py`` and ``plots.py``. Everything is ROS-free and takes plain data,
so the writers are tested without DDS. The names below are the demo's artifact vocabulary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vla_eqm_train.demo.media import annotated, write_contact_sheet, write_gif
from vla_eqm_train.demo.plots import caption, plot_iterations, plot_residual_traces
from vla_eqm_train.demo.recorder import (
    ACTION_CHUNK,
    DECODER_STATUS,
    EPISODE_STATUS,
    IMAGE,
    Recorded,
    RunRecorder,
    bag_messages,
    demo_topics,
    header_stamp_ns,
    write_bag,
)
from vla_eqm_train.demo.timeline import (
    Decode,
    Frame,
    RecordedChunk,
    boundary_jumps,
    extract,
    latest_decode,
)

__all__ = ["ACTION_CHUNK", "DECODER_STATUS", "EPISODE_STATUS", "IMAGE", "Decode", "Frame",
           "RecordedChunk", "Recorded", "RunRecorder", "annotated", "bag_messages",
           "boundary_jumps", "caption", "demo_topics", "extract", "header_stamp_ns",
           "latest_decode", "plot_iterations", "plot_residual_traces", "write_artifacts",
           "write_bag", "write_contact_sheet", "write_gif"]


def write_artifacts(out: Path, recorder: RunRecorder, camera_topic: str,
                    metadata: dict[str, Any], seed: int, gif_every: int = 4) -> dict[str, Any]:
    """Bag, GIF, contact sheet and plots into ``out``; returns their paths (the JSON's
    ``artifacts``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    recorded = recorder.messages()
    tasks = {e.index: e.task for e in recorder.episodes}
    bag = write_bag(out / "bag", recorded, metadata)
    frames, decodes, _ = extract(recorded, camera_topic)
    text = caption(len(tasks), seed, decodes, str(metadata.get("settings", {}).get("checkpoint",
                                                                                   "")))
    gif_frames = write_gif(out / "camera.gif", frames, decodes, tasks, every=gif_every)
    tiles = write_contact_sheet(out / "contact_sheet.png", frames, decodes, tasks)
    plots = {
        "iterations": plot_iterations(out / "iterations.png", decodes, tasks, text),
        "residual_traces": plot_residual_traces(out / "residual_traces.png", decodes, tasks,
                                                text),
    }
    return {
        "dir": str(out),
        "bag": str(bag),
        "gif": str(out / "camera.gif") if gif_frames else None,
        "gif_frames": gif_frames,
        "contact_sheet": str(out / "contact_sheet.png") if tiles else None,
        "plots": {k: str(v) for k, v in plots.items()},
        "bag_messages": recorder.totals(),
    }
