"""Message -> numpy decoding and time alignment, shared by the live node, bag conversion and replay.

Every function here is duck-typed: it reads attributes (``msg.header.stamp.sec``, ``msg.encoding``,
``msg.data`` ...) and never imports rclpy, so the same code decodes rclpy messages (``array.array``
fields) and rosbags-deserialized messages (numpy fields). That shared path is the point: training
and serving cannot disagree about how a topic becomes an ``Observation``.

Bad input raises ``DecodeError`` with a human-readable reason; callers (the node) count and log it
instead of crashing. ``ObservationAssembler`` keeps a short history per input and assembles the
newest consistent observation for a control tick (see ``contract.AlignmentSpec`` for the modes).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla_eqm_ros import images
from vla_eqm_ros.contract import CameraSpec, Contract, StateSpec
from vla_eqm_ros.observation import Observation

# encoding -> (channels, channel order to get RGB); mono is replicated to three channels.
_ENCODINGS: dict[str, tuple[int, tuple[int, ...]]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
}


class DecodeError(ValueError):
    """A message that cannot become part of an observation; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _floats_of(data: Any) -> np.ndarray:
    return np.asarray(data, dtype=np.float64).reshape(-1)


def stamp_of(msg: Any) -> float:
    """header.stamp in seconds (0.0 for an unstamped header)."""
    try:
        stamp = msg.header.stamp
        return float(stamp.sec) + float(stamp.nanosec) * 1e-9
    except AttributeError:
        raise DecodeError(f"{type(msg).__name__} has no header.stamp") from None


def decode_camera(msg: Any, spec: CameraSpec) -> np.ndarray:
    """A camera message of the spec's transport -> (H, W, 3) uint8 RGB at the contract's size."""
    try:
        if spec.transport == "compressed":
            if not hasattr(msg, "format"):
                raise DecodeError(f"camera '{spec.name}': {type(msg).__name__} is not a "
                                  "CompressedImage (the contract says transport: compressed)")
            rgb = images.decode_compressed(msg.data, msg.format)
        else:
            rgb = decode_image(msg, spec)
        return images.fit(rgb, spec.height, spec.width, spec.resize)
    except images.ImageError as exc:
        raise DecodeError(f"camera '{spec.name}': {exc.reason}") from None


def decode_image(msg: Any, spec: CameraSpec) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) uint8 RGB at its own size (``decode_camera`` fits it);
    rejects anything we would have to guess about."""
    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        raise DecodeError(f"camera '{spec.name}': a CompressedImage on a raw camera (set "
                          "transport: compressed in the contract)")
    encoding = str(getattr(msg, "encoding", "")).lower()
    if encoding not in _ENCODINGS:
        raise DecodeError(
            f"camera '{spec.name}': unsupported encoding {encoding!r} "
            f"(accepted: {', '.join(_ENCODINGS)})"
        )
    channels, order = _ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if (height, width) != (spec.height, spec.width) and not spec.resize:
        raise DecodeError(  # before touching the data: the common misconfiguration, named
            f"camera '{spec.name}': size {height}x{width} != contract {spec.height}x{spec.width}"
        )
    row_bytes = width * channels
    if step < row_bytes:
        raise DecodeError(
            f"camera '{spec.name}': step {step} < width*channels {row_bytes} ({encoding})"
        )
    data = images.as_uint8(msg.data)
    if data.size != step * height:
        kind = "truncated" if data.size < step * height else "oversized"
        raise DecodeError(
            f"camera '{spec.name}': {kind} data, {data.size} bytes != step*height {step * height}"
        )
    rows = data.reshape(height, step)[:, :row_bytes].reshape(height, width, channels)
    return np.ascontiguousarray(rows[:, :, list(order)])  # (H, W, 3) RGB, a copy


def decode_joint_state(msg: Any, spec: StateSpec) -> np.ndarray:
    """sensor_msgs/JointState -> the contract's joints, in contract order, as float32."""
    names = [str(n) for n in msg.name]
    values = _floats_of(getattr(msg, spec.field))
    if values.size != len(names):
        raise DecodeError(
            f"{spec.topic}: {len(names)} names but {values.size} {spec.field} values"
        )
    index = {n: i for i, n in enumerate(names)}
    missing = [n for n in spec.names if n not in index]
    if missing:
        raise DecodeError(f"{spec.topic}: missing joints {missing} (got {names})")
    out = values[[index[n] for n in spec.names]]
    if not np.all(np.isfinite(out)):
        bad = [n for n, v in zip(spec.names, out, strict=True) if not math.isfinite(v)]
        raise DecodeError(f"{spec.topic}: non-finite {spec.field} for joints {bad}")
    return out.astype(np.float32)


def decode_pose(msg: Any, spec: StateSpec) -> np.ndarray:
    """geometry_msgs/PoseStamped (or Pose) -> the contract's pose fields as float32."""
    pose = getattr(msg, "pose", msg)
    try:
        p, q = pose.position, pose.orientation
        values = {"x": p.x, "y": p.y, "z": p.z, "qx": q.x, "qy": q.y, "qz": q.z, "qw": q.w}
    except AttributeError:
        raise DecodeError(f"{spec.topic}: {type(msg).__name__} is not a pose") from None
    out = np.array([float(values[f]) for f in spec.fields], dtype=np.float64)
    if not np.all(np.isfinite(out)):
        raise DecodeError(f"{spec.topic}: non-finite pose fields {out.tolist()}")
    return out.astype(np.float32)


def decode_state(msg: Any, spec: StateSpec) -> np.ndarray:
    """Dispatch on the state spec's type."""
    return decode_joint_state(msg, spec) if spec.type == "joint_state" else decode_pose(msg, spec)


def decode_goal(msg: Any) -> str:
    """std_msgs/String -> the instruction, stripped."""
    return str(getattr(msg, "data", "")).strip()


def decode_command(msg: Any, contract: Contract) -> np.ndarray:
    """Recorded command -> action vector (d,) float32: what bag conversion uses as the label.

    Float64MultiArray: ``data`` must hold exactly d values. JointTrajectory: the first point's
    positions, reordered from ``joint_names`` to the contract's action names.
    """
    spec = contract.action
    if hasattr(msg, "points"):
        if not msg.points:
            raise DecodeError(f"{spec.topic}: JointTrajectory without points")
        names = [str(n) for n in msg.joint_names]
        positions = _floats_of(msg.points[0].positions)
        if positions.size != len(names):
            raise DecodeError(f"{spec.topic}: {len(names)} joints but {positions.size} positions")
        index = {n: i for i, n in enumerate(names)}
        missing = [n for n in spec.names if n not in index]
        if missing:
            raise DecodeError(f"{spec.topic}: trajectory misses joints {missing}")
        out = positions[[index[n] for n in spec.names]]
    else:
        out = _floats_of(getattr(msg, "data", []))
        if out.size != spec.dim:
            raise DecodeError(f"{spec.topic}: {out.size} values, contract expects {spec.dim}")
    if not np.all(np.isfinite(out)):
        raise DecodeError(f"{spec.topic}: non-finite command {out.tolist()}")
    return out.astype(np.float32)


MAX_HISTORY = 1024  # hard cap on frames kept per input (a 1 kHz feed over a 1 s window)


@dataclass
class AssemblyResult:
    """The observation for one tick, or why there is none (``reason`` empty on success)."""

    observation: Observation | None
    reason: str
    ages: dict[str, float] = field(default_factory=dict)  # newest sample age per input, s


@dataclass
class _Sample:
    stamp: float
    value: np.ndarray


class ObservationAssembler:
    """Newest decoded sample per input -> the newest consistent ``Observation`` at a tick.

    Inputs are named by camera name (cameras) and by topic (state sources). Feed messages as they
    arrive (live) or in bag order (conversion); call ``assemble(now)`` at each control tick.
    """

    def __init__(self, contract: Contract, history: int = MAX_HISTORY) -> None:
        """``history`` caps the frames kept per input; the window itself is time (see
        ``window_s``), so a camera that floods at 1 kHz still covers the partners' stamps."""
        self.contract = contract
        self._cameras = {c.topic: c for c in contract.cameras}
        self._states = {s.topic: s for s in contract.state}
        self.input_names = [c.name for c in contract.cameras] + [s.topic for s in contract.state]
        self.max_ages = {c.name: c.max_age for c in contract.cameras}
        self.max_ages.update({s.topic: s.max_age for s in contract.state})
        self._samples: dict[str, deque[_Sample]] = {
            n: deque(maxlen=history) for n in self.input_names
        }
        self.goal: str | None = contract.goal.default or None
        self._last_reference = -math.inf

    def feed(self, topic: str, msg: Any, recv_time: float | None = None) -> str:
        """Decode ``msg`` from ``topic`` and keep it; returns the input name. Raises DecodeError.

        The header stamp dates the sample; an unstamped header (0) falls back to ``recv_time``.
        """
        if topic == self.contract.goal.topic:
            self.set_goal(decode_goal(msg))
            return "goal"
        stamp = stamp_of(msg)
        if stamp == 0.0 and recv_time is not None:
            stamp = recv_time
        if topic in self._cameras:
            spec = self._cameras[topic]
            self._keep(spec.name, _Sample(stamp, decode_camera(msg, spec)))
            return spec.name
        if topic in self._states:
            self._keep(topic, _Sample(stamp, decode_state(msg, self._states[topic])))
            return topic
        raise DecodeError(f"topic {topic!r} is not in the contract")

    @property
    def topics(self) -> set[str]:
        """The topics this assembler decodes (cameras, state sources and the goal)."""
        return {*self._cameras, *self._states, self.contract.goal.topic}

    def window_s(self) -> float:
        """How far back a sample can still matter: the largest maximum age plus the skew allowed
        between inputs (an older sample is stale, or too far from any fresh partner)."""
        return max(self.max_ages.values(), default=0.0) + self.contract.alignment.max_skew

    def _keep(self, name: str, sample: _Sample) -> None:
        """Append, then drop what fell out of the time window (at least the newest stays)."""
        buf = self._samples[name]
        buf.append(sample)
        horizon = sample.stamp - self.window_s()
        while len(buf) > 1 and buf[0].stamp < horizon:
            buf.popleft()

    def set_goal(self, goal: str) -> bool:
        """Latch a goal; returns True when it differs from the current one (warm start resets)."""
        changed = goal != self.goal
        self.goal = goal
        return changed

    def newest(self, name: str) -> tuple[float, np.ndarray] | None:
        """(stamp, value) of the newest sample of an input, or None."""
        buf = self._samples[name]
        return (buf[-1].stamp, buf[-1].value) if buf else None

    def clear(self) -> None:
        for buf in self._samples.values():
            buf.clear()
        self._last_reference = -math.inf

    def ages(self, now: float) -> dict[str, float]:
        return {n: (now - b[-1].stamp) if b else math.inf for n, b in self._samples.items()}

    def assemble(self, now: float) -> AssemblyResult:
        """The newest observation whose inputs are fresh and (asof/drop) within max_skew."""
        ages = self.ages(now)
        missing = [n for n in self.input_names if not self._samples[n]]
        if self.goal is None:
            missing.append("goal")
        if missing:
            return AssemblyResult(None, f"missing: {', '.join(missing)}", ages)
        stale = [
            f"{n} ({ages[n]:.3f} s > {self.max_ages[n]:.3f} s)"
            for n in self.input_names
            if ages[n] > self.max_ages[n]
        ]
        if stale:
            return AssemblyResult(None, f"stale: {', '.join(stale)}", ages)
        mode = self.contract.alignment.mode
        if mode == "hold":
            picked = {n: self._samples[n][-1] for n in self.input_names}
        else:
            found = self._align(now)
            if isinstance(found, str):
                return AssemblyResult(None, found, ages)
            picked = found
            ref = picked[self.input_names[0]].stamp
            if mode == "drop":
                if ref <= self._last_reference:
                    return AssemblyResult(None, "no new reference frame", ages)
                self._last_reference = ref
        return AssemblyResult(self._observation(picked, now), "", ages)

    def _align(self, now: float) -> dict[str, _Sample] | str:
        """Reference input = first camera (or first state); newest reference candidate first."""
        skew_max = self.contract.alignment.max_skew
        ref_name, others = self.input_names[0], self.input_names[1:]
        fresh = {
            n: [s for s in self._samples[n] if now - s.stamp <= self.max_ages[n]]
            for n in self.input_names
        }
        first_failure = ""
        for ref in reversed(fresh[ref_name]):
            picked = {ref_name: ref}
            worst = ""
            for n in others:
                if not fresh[n]:
                    worst = f"{n} has no fresh sample"
                    break
                ref_stamp = ref.stamp
                # newest first: of samples equally close (equal stamps: a simulator reset does not
                # advance time, so an episode's first frame shares the previous one's last stamp)
                # the one that arrived last wins, never the previous episode's
                best = min(reversed(fresh[n]), key=lambda sample: abs(sample.stamp - ref_stamp))
                if abs(best.stamp - ref.stamp) > skew_max:
                    worst = (
                        f"{n} is {best.stamp - ref.stamp:+.3f} s from {ref_name} "
                        f"(max_skew {skew_max:.3f} s)"
                    )
                    break
                picked[n] = best
            if not worst:
                return picked
            first_failure = first_failure or worst
        return f"skew: {first_failure}"

    def _observation(self, picked: dict[str, _Sample], now: float) -> Observation:
        images = {c.name: picked[c.name].value for c in self.contract.cameras}
        parts = [picked[s.topic].value for s in self.contract.state]
        state = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
        stamp = max(s.stamp for s in picked.values())
        ages = {n: now - s.stamp for n, s in picked.items()}
        return Observation(images=images, state=state, goal=self.goal or "", stamp=stamp, ages=ages)
