"""LeRobotDataset v3.0 interop: our training cache <-> the layout LeRobot publishes on the Hub.

Why: LeRobot's v3.0 format is what robot-learning datasets are shared in. Exporting lets our
demonstrations be browsed, trained on and published with LeRobot's tools; importing lets
``vla-eqm train`` learn from anyone's v3.0 dataset. LeRobot itself is *not* a dependency: the
format is plain Parquet (``pyarrow``), JSON and MP4 (``av``, PyAV), so both directions are written
here against the published layout (``codebase_version`` "v3.0", LeRobot >= 0.4)::

    meta/info.json                                   schema, fps, counts, path templates
    meta/stats.json                                  per-feature min/max/mean/std/count/q01..q99
    meta/tasks.parquet                               task string (index "task") -> task_index
    meta/episodes/chunk-000/file-000.parquet         one row per episode: length, tasks, row
                                                     range, video file + time range, stats/...
    data/chunk-000/file-000.parquet                  one row per frame: observation.state,
                                                     action, timestamp, frame_index,
                                                     episode_index, index, task_index
    videos/observation.images.<cam>/chunk-000/file-000.mp4   every episode, concatenated

What maps to what: camera ``<cam>`` <-> video feature ``observation.images.<cam>``; the state
vector <-> ``observation.state`` (names: ``Contract.state_labels``); the action <-> ``action``
(names: the contract's action names); an episode's instruction (``goal``) <-> its LeRobot task
string. A LeRobot frame's time in its video is the episode's ``from_timestamp`` plus the frame's
``timestamp`` (frame_index / fps).

Video codec: LeRobot's default, AV1 through ``libsvtav1`` (bundled in the PyAV wheel), with its
default settings (``g=2`` so any frame is at most one frame from a key frame, ``crf=30``,
``preset=12``) and ``pix_fmt=yuv420p``. AV1 codes odd frame sizes in 4:2:0 (the chroma plane
rounds up), so odd sizes stay yuv420p. Only if a PyAV build lacks libsvtav1 does the export fall
back to ``libx264`` (h264; yuv444p for odd sizes, which 4:2:0 h264 cannot code), then to
``mpeg4``. The round trip is lossy in the images only: state and action are float32 in Parquet
and come back bit for bit; pixels come back within the codec error (measured in
``docs/training.md``).

What LeRobot cannot hold, and what we keep anyway, goes under one extra info.json key,
``"vla_eqm"`` (LeRobot ignores unknown info.json keys on load; a LeRobot tool that rewrites
info.json drops it, and the import then treats the dataset as foreign):

    contract      the cache's contract (``Contract.to_dict()``): topics, limits, control period
    split         the exact train/val episode lists (LeRobot's own ``splits`` only holds
                  "start:end" ranges and every LeRobot writer sets it to {"train": "0:N"}, which
                  is what ``splits`` says here too)
    episodes      per-episode fields of our meta.json that LeRobot has no column for (bag, task
                  name, variation, seed, success, skipped ticks, ...)
    cache_hash, cache_version, sources, video   provenance of the export

The import of a foreign dataset (no ``vla_eqm`` key) builds a contract from the features:
camera sizes from the video shape, state and action names from the features' ``names``, action
limits 50 % wider than the dataset's min/max (``meta/stats.json``, else the data), control period
1 / fps, action kind ``joint`` with "hold" = repeat the last command (most LeRobot datasets record
absolute joint targets; edit the contract if yours are deltas). Its split comes from ``splits``
when that names a validation range, else it is drawn by episode as ``vla-eqm dataset build`` does.
"""

from vla_eqm_train.data.lerobot.export import export_lerobot
from vla_eqm_train.data.lerobot.layout import LeRobotError
from vla_eqm_train.data.lerobot.reader import import_lerobot

__all__ = ["LeRobotError", "export_lerobot", "import_lerobot"]
