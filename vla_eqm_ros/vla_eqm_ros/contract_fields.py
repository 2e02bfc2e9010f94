"""The contract's parts, one dataclass per section (cameras, state, goal, action, alignment).

Each part validates its own YAML mapping and names the offending key and value; ``contract.py``
assembles them into a ``Contract`` and documents the whole schema. ROS-free (YAML types only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
TRANSPORTS = ("raw", "compressed")
JOINT_STATE_TYPE = "sensor_msgs/msg/JointState"
POSE_TYPE = "geometry_msgs/msg/PoseStamped"
STRING_TYPE = "std_msgs/msg/String"
ACTION_TYPES = {
    "float64_multi_array": "std_msgs/msg/Float64MultiArray",
    "joint_trajectory": "trajectory_msgs/msg/JointTrajectory",
}
STATE_TYPES = {"joint_state": JOINT_STATE_TYPE, "pose": POSE_TYPE}
JOINT_FIELDS = ("position", "velocity", "effort")
POSE_FIELDS = ("x", "y", "z", "qx", "qy", "qz", "qw")
ACTION_KINDS = ("cartesian_delta", "cartesian_absolute", "joint")
ALIGNMENT_MODES = ("asof", "hold", "drop")


class ContractError(ValueError):
    """A contract that cannot be served or trained on; the message names the bad key."""


def _need(d: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(d, Mapping):
        raise ContractError(f"{where}: expected a mapping, got {type(d).__name__}")
    if key not in d:
        raise ContractError(f"{where}: missing key '{key}'")
    return d[key]


def _positive(value: Any, where: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ContractError(f"{where}: expected a number, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ContractError(f"{where}: must be a finite number > 0, got {value!r}")
    return v


def _topic(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or " " in value:
        raise ContractError(f"{where}: expected a topic name, got {value!r}")
    return value


def _names(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise ContractError(f"{where}: expected a non-empty list of names, got {value!r}")
    names = tuple(str(v) for v in value)
    if len(set(names)) != len(names):
        raise ContractError(f"{where}: duplicate names in {list(names)}")
    return names


@dataclass(frozen=True)
class CameraSpec:
    """One camera: frames reach the model at exactly height x width.

    ``transport``: ``raw`` (sensor_msgs/Image) or ``compressed`` (sensor_msgs/CompressedImage,
    image_transport's JPEG/PNG: topic ``.../image_raw/compressed``). ``resize``: scale frames of
    another size to height x width (``images.fit``); off by default, so a mismatch is an error
    and nothing is resized silently.
    """

    name: str
    topic: str
    height: int
    width: int
    max_age: float = 0.2  # s
    transport: str = "raw"  # raw | compressed
    resize: bool = False

    @property
    def ros_type(self) -> str:
        return COMPRESSED_IMAGE_TYPE if self.transport == "compressed" else IMAGE_TYPE

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "cameras[]") -> CameraSpec:
        h, w = int(_need(d, "height", where)), int(_need(d, "width", where))
        if h <= 0 or w <= 0:
            raise ContractError(f"{where}: height and width must be > 0, got {h}x{w}")
        transport = str(d.get("transport", "raw"))
        if transport not in TRANSPORTS:
            raise ContractError(f"{where}.transport: expected one of {TRANSPORTS}, "
                                f"got {transport!r}")
        resize = d.get("resize", False)
        if not isinstance(resize, bool):
            raise ContractError(f"{where}.resize: expected true or false, got {resize!r}")
        return cls(name=str(_need(d, "name", where)),
                   topic=_topic(_need(d, "topic", where), f"{where}.topic"), height=h, width=w,
                   max_age=_positive(d.get("max_age", 0.2), f"{where}.max_age"),
                   transport=transport, resize=resize)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "topic": self.topic, "height": self.height,
                               "width": self.width, "max_age": self.max_age}
        if self.transport != "raw":  # defaults stay out: older checkpoints read back unchanged
            out["transport"] = self.transport
        if self.resize:
            out["resize"] = True
        return out


@dataclass(frozen=True)
class StateSpec:
    """One state source: a slice of ``Observation.state`` taken from one topic."""

    topic: str
    type: str  # joint_state | pose
    names: tuple[str, ...] = ()  # joint names (joint_state)
    field: str = "position"  # position | velocity | effort (joint_state)
    fields: tuple[str, ...] = ()  # subset of x y z qx qy qz qw (pose)
    max_age: float = 0.2  # s

    @property
    def dim(self) -> int:
        return len(self.names) if self.type == "joint_state" else len(self.fields)

    @property
    def labels(self) -> list[str]:
        """Human-readable name of each state dimension this spec contributes."""
        if self.type == "joint_state":
            return [f"{n}.{self.field}" for n in self.names]
        return [f"{self.topic}.{f}" for f in self.fields]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "state[]") -> StateSpec:
        kind = str(_need(d, "type", where))
        if kind not in STATE_TYPES:
            raise ContractError(
                f"{where}.type: expected one of {sorted(STATE_TYPES)}, got {kind!r}"
            )
        topic = _topic(_need(d, "topic", where), f"{where}.topic")
        max_age = _positive(d.get("max_age", 0.2), f"{where}.max_age")
        if kind == "joint_state":
            fld = str(d.get("field", "position"))
            if fld not in JOINT_FIELDS:
                raise ContractError(f"{where}.field: expected one of {JOINT_FIELDS}, got {fld!r}")
            names = _names(_need(d, "names", where), f"{where}.names")
            return cls(topic=topic, type=kind, names=names, field=fld, max_age=max_age)
        fields = _names(d.get("fields", ["x", "y", "z"]), f"{where}.fields")
        bad = [f for f in fields if f not in POSE_FIELDS]
        if bad:
            raise ContractError(f"{where}.fields: unknown {bad}; allowed {list(POSE_FIELDS)}")
        return cls(topic=topic, type=kind, fields=fields, max_age=max_age)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"topic": self.topic, "type": self.type, "max_age": self.max_age}
        if self.type == "joint_state":
            out.update(names=list(self.names), field=self.field)
        else:
            out["fields"] = list(self.fields)
        return out


@dataclass(frozen=True)
class GoalSpec:
    """The language goal: latched (reliable + transient local); ``default`` until one arrives."""

    topic: str = "/language_goal"
    default: str = ""


@dataclass(frozen=True)
class ActionSpec:
    """The action vector: names, output message, hard limits and what "hold position" means."""

    names: tuple[str, ...]
    topic: str
    type: str  # float64_multi_array | joint_trajectory
    low: tuple[float, ...]
    high: tuple[float, ...]
    kind: str = "joint"  # cartesian_delta | cartesian_absolute | joint
    hold: tuple[float | None, ...] = ()  # per dim; None = keep the last commanded value
    delta_scale: float = 1.0  # m per action unit (cartesian_delta)

    @property
    def dim(self) -> int:
        return len(self.names)

    @property
    def ros_type(self) -> str:
        return ACTION_TYPES[self.type]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "action") -> ActionSpec:
        names = _names(_need(d, "names", where), f"{where}.names")
        kind_of_msg = str(d.get("type", "float64_multi_array"))
        if kind_of_msg not in ACTION_TYPES:
            raise ContractError(
                f"{where}.type: expected one of {sorted(ACTION_TYPES)}, got {kind_of_msg!r}"
            )
        default_kind = "joint" if kind_of_msg == "joint_trajectory" else "cartesian_delta"
        kind = str(d.get("kind", default_kind))
        if kind not in ACTION_KINDS:
            raise ContractError(f"{where}.kind: expected one of {ACTION_KINDS}, got {kind!r}")
        n = len(names)
        low = _vector(d.get("low", [-math.inf] * n), n, f"{where}.low")
        high = _vector(d.get("high", [math.inf] * n), n, f"{where}.high")
        if any(lo >= hi for lo, hi in zip(low, high, strict=True)):
            raise ContractError(f"{where}: every low must be < high, got {low} and {high}")
        raw_hold = d.get("hold")
        if raw_hold is None:
            raw_hold = [0.0] * n if kind == "cartesian_delta" else [None] * n
        if not isinstance(raw_hold, Sequence) or len(raw_hold) != n:
            raise ContractError(f"{where}.hold: expected {n} values or nulls, got {raw_hold!r}")
        hold = tuple(None if v is None else float(v) for v in raw_hold)
        for i, v in enumerate(hold):
            if v is not None and not (low[i] <= v <= high[i]):
                raise ContractError(f"{where}.hold[{i}]={v} lies outside [{low[i]}, {high[i]}]")
        return cls(names=names, topic=_topic(d.get("topic", "/command"), f"{where}.topic"),
                   type=kind_of_msg, low=low, high=high, kind=kind, hold=hold,
                   delta_scale=_positive(d.get("delta_scale", 1.0), f"{where}.delta_scale"))

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "topic": self.topic, "type": self.type,
                "kind": self.kind, "low": list(self.low), "high": list(self.high),
                "hold": list(self.hold), "delta_scale": self.delta_scale}


def _vector(value: Any, n: int, where: str) -> tuple[float, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != n:
        raise ContractError(f"{where}: expected {n} numbers, got {value!r}")
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ContractError(f"{where}: expected {n} numbers, got {value!r}") from None
    if any(math.isnan(v) for v in out):
        raise ContractError(f"{where}: NaN is not a limit, got {value!r}")
    return out


@dataclass(frozen=True)
class AlignmentSpec:
    """How inputs are paired in time (see the module docstring for the three modes)."""

    mode: str = "asof"
    max_skew: float = 0.05  # s, largest stamp difference between inputs of one observation

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "alignment") -> AlignmentSpec:
        mode = str(d.get("mode", "asof"))
        if mode not in ALIGNMENT_MODES:
            raise ContractError(f"{where}.mode: expected one of {ALIGNMENT_MODES}, got {mode!r}")
        return cls(mode=mode, max_skew=_positive(d.get("max_skew", 0.05), f"{where}.max_skew"))


EPISODE_SPLITS = ("bag", "marker", "gap")
INSTRUCTION_SOURCES = ("goal", "marker", "metadata", "sidecar")
MARKER_TYPES = ("std_msgs/msg/Bool", STRING_TYPE)
MARKER_END_WORDS = ("", "end", "stop", "done")  # a String marker with this text ends an episode


@dataclass(frozen=True)
class EpisodeSpec:
    """How a recorded bag becomes episodes: bag conversion and replay only, never the live node.

    A teleoperation session is often one long bag; ``marker`` and ``gap`` cut it, and the
    instruction of each piece comes from the goal topic, the String marker's text, the bag's
    ``custom_data`` or a sidecar file (``vla_eqm_train.data.episodes`` applies the rules).
    """

    split: str = "bag"  # bag | marker | gap
    marker: str | None = None  # topic (std_msgs/Bool or String) for split: marker
    gap: float = 1.0  # s without the reference input that ends an episode (split: gap)
    instruction: str = "goal"  # goal | marker | metadata | sidecar

    @property
    def is_default(self) -> bool:
        return self == EpisodeSpec()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "episodes") -> EpisodeSpec:
        if not isinstance(d, Mapping):
            raise ContractError(f"{where}: expected a mapping, got {type(d).__name__}")
        unknown = sorted(set(d) - {"split", "marker", "gap", "instruction"})
        if unknown:
            raise ContractError(f"{where}: unknown keys {unknown}")
        split = str(d.get("split", "bag"))
        if split not in EPISODE_SPLITS:
            raise ContractError(f"{where}.split: expected one of {EPISODE_SPLITS}, got {split!r}")
        marker = d.get("marker")
        if split == "marker" and marker is None:
            raise ContractError(f"{where}.marker: split: marker needs a marker topic")
        instruction = str(d.get("instruction", "goal"))
        if instruction not in INSTRUCTION_SOURCES:
            raise ContractError(f"{where}.instruction: expected one of {INSTRUCTION_SOURCES}, "
                                f"got {instruction!r}")
        if instruction == "marker" and split != "marker":
            raise ContractError(f"{where}.instruction: 'marker' needs split: marker")
        return cls(split=split, marker=None if marker is None else _topic(marker,
                                                                           f"{where}.marker"),
                   gap=_positive(d.get("gap", 1.0), f"{where}.gap"), instruction=instruction)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"split": self.split, "gap": self.gap,
                               "instruction": self.instruction}
        if self.marker is not None:
            out["marker"] = self.marker
        return out
