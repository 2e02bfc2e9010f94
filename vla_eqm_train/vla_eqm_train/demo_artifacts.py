"""What ``vla-eqm demo`` leaves behind: a rosbag2 of the run, an annotated GIF, a contact sheet and
plots of solver depth.

Everything here is ROS-free (rosbags, numpy, Pillow, matplotlib) and takes plain data, so the
writers are tested without DDS. The one ROS-facing piece, ``RunRecorder.subscribe``, imports rclpy
lazily: the demo hands it its recorder node, and the subscriptions are raw, so the bag holds the CDR
bytes exactly as they came off the wire (as ``ros2 bag record`` stores them).

Only the first camera is recorded: the bag exists to show what the policy saw and did, and a second
96x96 stream would double its size (about 28 kB per frame) for no new insight. The GIF and the plots
are drawn from the recorded bytes, so they show exactly what the bag holds.
"""

from __future__ import annotations

import struct
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vla_eqm_sim.bag_types import make_typestore
from vla_eqm_sim.bag_writer import BufferedMessage, write_episode_bag

DECODER_STATUS = "vla_eqm_msgs/msg/DecoderStatus"
ACTION_CHUNK = "vla_eqm_msgs/msg/ActionChunk"
EPISODE_STATUS = "vla_eqm_msgs/msg/EpisodeStatus"
IMAGE = "sensor_msgs/msg/Image"
# Types without a header: their bag time comes from the observation they answer (see bag_messages)
UNSTAMPED = frozenset({"std_msgs/msg/Float64MultiArray", "std_msgs/msg/String"})
LATCHED = frozenset({"/language_goal"})
TASK_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
               "tab:pink", "tab:gray", "tab:olive", "tab:cyan")


def demo_topics(camera: str, command_topic: str, command_type: str,
                node: str = "/policy_node") -> dict[str, str]:
    """The recorded topics (name -> rosbags type name)."""
    return {
        f"/camera/{camera}/image_raw": IMAGE,
        "/joint_states": "sensor_msgs/msg/JointState",
        "/ee_pose": "geometry_msgs/msg/PoseStamped",
        "/language_goal": "std_msgs/msg/String",
        "/episode_status": EPISODE_STATUS,
        command_topic: command_type,
        f"{node}/decoder_status": DECODER_STATUS,
        f"{node}/action_chunk": ACTION_CHUNK,
    }


def header_stamp_ns(cdr: bytes) -> int:
    """Header stamp of a CDR message that starts with std_msgs/Header (sec at offset 4)."""
    sec, nanosec = struct.unpack_from("<iI" if cdr[1] & 1 else ">iI", cdr, 4)
    return sec * 1_000_000_000 + nanosec


@dataclass(frozen=True)
class Recorded:
    """One message as it arrived: raw CDR, its header stamp (None when it has none), episode."""

    topic: str
    msgtype: str
    data: bytes
    stamp_ns: int | None
    episode: int


@dataclass(frozen=True)
class EpisodeTag:
    index: int
    task: str
    variation: int


class RunRecorder:
    """Buffers every recorded message of the run in memory, tagged with the running episode.

    Episodes are tagged by arrival, not by stamp: the bridge's reset observation carries the same
    sim time as the previous episode's last one, so stamps alone cannot split episodes. The demo
    waits for the pipeline to go quiet before it starts the next episode, so arrival is exact.
    """

    def __init__(self, topics: dict[str, str]) -> None:
        self.topics = dict(topics)
        self.episodes: list[EpisodeTag] = []
        self._messages: list[Recorded] = []
        self._counts: Counter[tuple[str, int]] = Counter()
        self._lock = threading.Lock()
        self._episode: int | None = None
        self._subs: list[Any] = []

    def subscribe(self, node: Any, depth: int = 1000) -> None:
        """Raw, reliable subscriptions on ``node`` (an rclpy node); deep enough that a lockstep
        episode never overruns them (the publishers step only as fast as the policy answers)."""
        import importlib

        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        reliable = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        for topic, msgtype in self.topics.items():
            pkg, _, name = msgtype.split("/")
            cls = getattr(importlib.import_module(f"{pkg}.msg"), name)
            self._subs.append(node.create_subscription(
                cls, topic, self._callback(topic, msgtype),
                latched if topic in LATCHED else reliable, raw=True))

    def matched(self) -> bool:
        """Every subscription sees a publisher (lockstep: a message sent before is lost)."""
        return bool(self._subs) and all(s.get_publisher_count() >= 1 for s in self._subs)

    def _callback(self, topic: str, msgtype: str):
        def on_message(data: bytes) -> None:
            self.add(topic, msgtype, bytes(data))
        return on_message

    def add(self, topic: str, msgtype: str, data: bytes) -> None:
        """Buffer one message if an episode is running (also the test entry point)."""
        stamp = None if msgtype in UNSTAMPED else header_stamp_ns(data)
        with self._lock:
            if self._episode is None:
                return
            self._messages.append(Recorded(topic, msgtype, data, stamp, self._episode))
            self._counts[(topic, self._episode)] += 1

    def begin_episode(self, task: str, variation: int) -> int:
        with self._lock:
            self.episodes.append(EpisodeTag(len(self.episodes), task, variation))
            self._episode = len(self.episodes) - 1
            return self._episode

    def stop(self) -> None:
        with self._lock:
            self._episode = None

    def count(self, topic: str, episode: int | None = None) -> int:
        """Messages of ``topic`` in ``episode`` (default: the running or last one)."""
        with self._lock:
            ep = len(self.episodes) - 1 if episode is None else episode
            return self._counts[(topic, ep)]

    def messages(self) -> list[Recorded]:
        with self._lock:
            return list(self._messages)

    def totals(self) -> dict[str, int]:
        with self._lock:
            out: Counter[str] = Counter(m.topic for m in self._messages)
        return {t: out[t] for t in self.topics}


def bag_messages(recorded: Sequence[Recorded]) -> list[BufferedMessage]:
    """Bag times: header stamps (sim time); an unstamped message (command, goal) or one with a
    zero stamp gets the stamp of the observation it answers, found by order: the i-th command of
    an episode answers its i-th observation (lockstep), the goal precedes the first."""
    obs: dict[int, list[int]] = defaultdict(list)
    for m in recorded:
        if m.msgtype == EPISODE_STATUS and m.stamp_ns is not None:
            obs[m.episode].append(m.stamp_ns)
    seen: Counter[tuple[str, int]] = Counter()
    out = []
    for m in recorded:
        stamp = m.stamp_ns
        if not stamp:
            stamps = obs.get(m.episode) or [0]
            i = 0 if m.topic in LATCHED else seen[(m.topic, m.episode)]
            seen[(m.topic, m.episode)] += 1
            stamp = stamps[min(i, len(stamps) - 1)]
        out.append(BufferedMessage(m.topic, m.msgtype, stamp, m.data, m.topic in LATCHED))
    return out


def write_bag(path: Path, recorded: Sequence[Recorded], metadata: dict[str, Any]) -> Path:
    """The run as one MCAP bag; ``metadata`` (settings, episodes) goes where the project's
    recorder puts it: ``custom_data``, an ``/episode_info`` message and a JSON sidecar."""
    return write_episode_bag(Path(path), bag_messages(recorded), metadata)


# --------------------------------------------------------------------------- plain run data


@dataclass(frozen=True)
class Frame:
    episode: int
    step: int
    stamp_ns: int
    image: np.ndarray  # (H, W, 3) uint8


@dataclass(frozen=True)
class Decode:
    episode: int
    stamp_ns: int
    iterations: int
    residual: float
    tau: float
    trace: tuple[float, ...]
    warm: bool


@dataclass(frozen=True)
class Chunk:
    """An installed chunk: ``rows`` (H, d), produced at sim step ``step``, executed from row
    ``first_step`` on."""

    episode: int
    step: int
    first_step: int
    rows: np.ndarray


def extract(recorded: Sequence[Recorded], camera_topic: str
            ) -> tuple[list[Frame], list[Decode], list[Chunk]]:
    """Decode the camera frames, decoder statuses and action chunks of a recording."""
    store = make_typestore()
    steps: dict[tuple[int, int], int] = {}  # (episode, stamp) -> sim step of that observation
    for m in recorded:
        if m.msgtype == EPISODE_STATUS:
            steps[(m.episode, m.stamp_ns or 0)] = int(store.deserialize_cdr(m.data, m.msgtype).step)
    frames, decodes, chunks = [], [], []
    per_episode: Counter[int] = Counter()
    for m in recorded:
        key = (m.episode, m.stamp_ns or 0)
        if m.topic == camera_topic:
            msg = store.deserialize_cdr(m.data, m.msgtype)
            image = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, -1)
            if msg.encoding == "bgr8":
                image = image[:, :, ::-1]
            frames.append(Frame(m.episode, steps.get(key, per_episode[m.episode]), key[1],
                                np.ascontiguousarray(image[:, :, :3])))
            per_episode[m.episode] += 1
        elif m.msgtype == DECODER_STATUS:
            msg = store.deserialize_cdr(m.data, m.msgtype)
            decodes.append(Decode(m.episode, key[1], int(msg.iterations), float(msg.residual),
                                  float(msg.tau), tuple(float(r) for r in msg.residual_trace),
                                  bool(msg.warm_start_used)))
        elif m.msgtype == ACTION_CHUNK and key in steps:
            msg = store.deserialize_cdr(m.data, m.msgtype)
            rows = np.asarray(msg.data, float).reshape(int(msg.horizon), int(msg.action_dim))
            chunks.append(Chunk(m.episode, steps[key], int(msg.first_step), rows))
    return frames, decodes, chunks


def boundary_jumps(chunks: Iterable[Chunk]) -> list[float]:
    """The node's chunk-boundary jump at every hand-over, from the published chunks alone.

    As in ``ChunkQueue.install``: a chunk produced at step P and installed from row b replaces the
    previous chunk (produced at P', installed from b'), which would have executed its row
    (P + b) - P' at that tick; the jump is the distance of the two rows. The first chunk of an
    episode has nothing to compare with (the node clears its queue on reset).
    """
    out: list[float] = []
    prev: Chunk | None = None
    for c in chunks:
        if prev is not None and prev.episode == c.episode:
            old_row = c.step + c.first_step - prev.step
            if 0 <= old_row < len(prev.rows) and c.first_step < len(c.rows):
                new, old = c.rows[c.first_step], prev.rows[old_row]
                if np.all(np.isfinite(new)) and np.all(np.isfinite(old)):
                    out.append(float(np.linalg.norm(new - old)))
        prev = c
    return out


def latest_decode(decodes: Sequence[Decode], episode: int, stamp_ns: int) -> Decode | None:
    """The most recent decode of ``episode`` whose observation is not newer than ``stamp_ns``."""
    best = None
    for d in decodes:
        if d.episode == episode and d.stamp_ns <= stamp_ns and (
                best is None or d.stamp_ns >= best.stamp_ns):
            best = d
    return best


# --------------------------------------------------------------------------- GIF, contact sheet


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def annotated(frame: Frame, decode: Decode | None, task: str, scale: int = 3):
    """The frame upscaled (nearest) with a caption band: task, step, iterations, residual."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(frame.image).resize(
        (frame.image.shape[1] * scale, frame.image.shape[0] * scale), Image.NEAREST)
    size = max(9, 4 * scale)
    band = 2 * size + 8
    canvas = Image.new("RGB", (img.width, img.height + band), (20, 20, 20))
    canvas.paste(img, (0, 0))
    draw = ImageDraw.Draw(canvas)
    font = _font(size)
    if decode is None:
        solver = "no decode yet"
    else:
        solver = (f"k={decode.iterations} r={decode.residual:.3g} tau={decode.tau:.3g}"
                  f"{' warm' if decode.warm else ' cold'}")
    draw.text((4, img.height + 2), f"{task[:30]}  step {frame.step}", fill=(255, 255, 255),
              font=font)
    draw.text((4, img.height + 4 + size), solver, fill=(255, 220, 90), font=font)
    return canvas


def _pick(frames: Sequence[Frame], every: int) -> list[Frame]:
    """Every ``every``-th sim step of each episode, plus each episode's last frame."""
    out = []
    for i, f in enumerate(frames):
        last = i + 1 == len(frames) or frames[i + 1].episode != f.episode
        if f.step % every == 0 or last:
            out.append(f)
    return out


def write_gif(path: Path, frames: Sequence[Frame], decodes: Sequence[Decode],
              tasks: dict[int, str], every: int = 4, scale: int = 3,
              frame_ms: int = 80) -> int:
    """An animated GIF of ``frames`` (one every ``every`` sim steps); returns its frame count."""
    picked = _pick(frames, max(1, every))
    if not picked:
        return 0
    images = [annotated(f, latest_decode(decodes, f.episode, f.stamp_ns),
                        tasks.get(f.episode, "?"), scale) for f in picked]
    images[0].save(path, save_all=True, append_images=images[1:], duration=frame_ms, loop=0,
                   optimize=False)
    return len(images)


def write_contact_sheet(path: Path, frames: Sequence[Frame], decodes: Sequence[Decode],
                        tasks: dict[int, str], columns: int = 6, per_episode: int = 6,
                        scale: int = 3) -> int:
    """A PNG grid: ``per_episode`` evenly spaced frames of each episode, one row per episode
    (wrapped at ``columns``); returns the tile count."""
    from PIL import Image

    by_episode: dict[int, list[Frame]] = defaultdict(list)
    for f in frames:
        by_episode[f.episode].append(f)
    tiles = []
    for ep, fs in by_episode.items():
        idx = np.unique(np.linspace(0, len(fs) - 1, min(per_episode, len(fs))).round().astype(int))
        row = [annotated(fs[i], latest_decode(decodes, ep, fs[i].stamp_ns), tasks.get(ep, "?"),
                         scale) for i in idx]
        tiles.extend(row + [None] * (-len(row) % columns))  # each episode starts a new row
    if not tiles:
        return 0
    w, h = next(t for t in tiles if t is not None).size
    rows = len(tiles) // columns
    sheet = Image.new("RGB", (columns * w, rows * h), (255, 255, 255))
    for k, tile in enumerate(tiles):
        if tile is not None:
            sheet.paste(tile, ((k % columns) * w, (k // columns) * h))
    sheet.save(path)
    return sum(t is not None for t in tiles)


# --------------------------------------------------------------------------- plots


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(fig, out: Path, caption: str, title: str) -> Path:
    plt = _plt()
    fig.suptitle(title, fontsize=12)
    fig.text(0.5, 0.005, caption, ha="center", va="bottom", fontsize=7.5, wrap=True)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _task_colors(tasks: dict[int, str]) -> dict[str, str]:
    names = list(dict.fromkeys(tasks.values()))
    return {t: TASK_COLORS[i % len(TASK_COLORS)] for i, t in enumerate(names)}


def plot_iterations(path: Path, decodes: Sequence[Decode], tasks: dict[int, str],
                    caption: str) -> Path:
    """Solver iterations per control cycle, one line per episode, colored by task; cold solves
    (the first of an episode) are marked."""
    plt = _plt()
    colors = _task_colors(tasks)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    labelled: set[str] = set()
    for ep, task in tasks.items():
        ds = [d for d in decodes if d.episode == ep]
        if not ds:
            continue
        x = np.arange(len(ds))
        ax.plot(x, [d.iterations for d in ds], "-", lw=1.2, alpha=0.8, color=colors[task],
                label=None if task in labelled else task)
        labelled.add(task)
        cold = [i for i, d in enumerate(ds) if not d.warm]
        ax.plot(cold, [ds[i].iterations for i in cold], "o", ms=4, mfc="none",
                color=colors[task])
    ax.plot([], [], "o", ms=4, mfc="none", color="black", label="cold start")
    ax.set_xlabel("decode index within the episode (one per solve)")
    ax.set_ylabel("solver iterations")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="task")
    return _finish(fig, path, caption, "Iterations per control cycle")


def plot_residual_traces(path: Path, decodes: Sequence[Decode], tasks: dict[int, str],
                         caption: str) -> Path:
    """Every solve's residual trace r_k (log scale) with the stop threshold tau."""
    plt = _plt()
    colors = _task_colors(tasks)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    labelled: set[str] = set()
    alpha = float(np.clip(12.0 / max(1, len(decodes)), 0.12, 0.9))
    for d in decodes:
        trace = [r for r in d.trace if r > 0 and np.isfinite(r)]
        if not trace:
            continue
        task = tasks.get(d.episode, "?")
        ax.semilogy(np.arange(len(trace)), trace, lw=0.9, alpha=alpha,
                    color=colors.get(task, "black"),
                    label=None if task in labelled else task)
        labelled.add(task)
    for tau in sorted({d.tau for d in decodes if d.tau > 0}):
        ax.axhline(tau, color="black", ls="--", lw=1, label=f"tau = {tau:g}")
    ax.set_yscale("log")
    ax.set_xlabel("iteration k")
    ax.set_ylabel("residual r_k = ||f|| / sqrt(H d)")
    ax.grid(alpha=0.3, which="both")
    if labelled:
        leg = ax.legend(fontsize=8)
        for line in leg.get_lines():
            line.set_alpha(1.0)
    return _finish(fig, path, caption, "Residual traces of every solve")


def caption(episodes: int, seed: int, decodes: Sequence[Decode], checkpoint: str = "") -> str:
    taus = sorted({d.tau for d in decodes})
    tau = ", ".join(f"{t:g}" for t in taus) or "-"
    head = f"{Path(checkpoint).name} | " if checkpoint else ""
    return (f"{head}{episodes} episode(s), variation seed {seed} | {len(decodes)} solves | "
            f"tau = {tau}")


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
