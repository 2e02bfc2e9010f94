"""The contract: which ROS topics feed which observation and action fields, and how to align them.

One YAML file serves live inference (the policy node), bag-to-dataset conversion and bag replay, so
training and serving read the robot through exactly the same mapping (DESIGN.md section 6; the idea
follows iblnkn/rosetta). The checkpoint stores its contract, so a node serving a checkpoint
subscribes to what the model was trained on.

Schema (every key is validated; errors name the offending key and value)::

    cameras:                       # one per camera, in model order; images are never resized:
      - name: corner               #   a frame whose size differs from height x width is rejected
        topic: /camera/corner/image_raw
        height: 96
        width: 96
        max_age: 0.2               # s; older frames count as stale
    state:                         # concatenated in this order into Observation.state
      - {topic: /joint_states, type: joint_state, names: [r_close, l_close],
         field: position, max_age: 0.2}          # field: position | velocity | effort
      - {topic: /ee_pose, type: pose, fields: [x, y, z], max_age: 0.2}
                                   # pose fields from x y z qx qy qz qw (PoseStamped or Pose)
    goal: {topic: /language_goal, default: ""}   # latched String; default until one arrives
    action:
      names: [dx, dy, dz, gripper] # joint names for joint_trajectory
      topic: /command
      type: float64_multi_array    # float64_multi_array | joint_trajectory
      kind: cartesian_delta        # cartesian_delta | cartesian_absolute | joint  (for plots, hold)
      low: [-1, -1, -1, -1]        # hard limits; never published outside them
      high: [1, 1, 1, 1]
      hold: [0, 0, 0, null]        # "hold position" action; null = repeat the last commanded value
      delta_scale: 0.01            # m per unit of a cartesian_delta action (Meta-World: 1/100)
    ee_pose_topic: /ee_pose        # optional: end-effector pose for drawing the plan (rviz)
    control_period: 0.05           # s between consecutive actions of a chunk
    alignment: {mode: asof, max_skew: 0.05}
                                   # asof: newest inputs with stamp <= tick, bounded skew
                                   # hold: newest inputs, skew not checked (zero-order hold)
                                   # drop: like asof, but a tick without a new reference frame
                                   #       yields no observation (bag conversion without repeats)

"Hold position" for ``joint_trajectory`` actions is a one-point trajectory at the measured joint
positions (the node builds it); ``action.hold`` applies to ``float64_multi_array`` actions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

IMAGE_TYPE = "sensor_msgs/msg/Image"
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
    """One camera: images must arrive at exactly height x width (we never resize silently)."""

    name: str
    topic: str
    height: int
    width: int
    max_age: float = 0.2  # s

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "cameras[]") -> CameraSpec:
        h, w = int(_need(d, "height", where)), int(_need(d, "width", where))
        if h <= 0 or w <= 0:
            raise ContractError(f"{where}: height and width must be > 0, got {h}x{w}")
        return cls(name=str(_need(d, "name", where)),
                   topic=_topic(_need(d, "topic", where), f"{where}.topic"), height=h, width=w,
                   max_age=_positive(d.get("max_age", 0.2), f"{where}.max_age"))


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


@dataclass(frozen=True)
class Contract:
    """Topics -> observation/action fields, limits, control period and time alignment."""

    cameras: tuple[CameraSpec, ...]
    state: tuple[StateSpec, ...]
    action: ActionSpec
    goal: GoalSpec = field(default_factory=GoalSpec)
    control_period: float = 0.05  # s
    alignment: AlignmentSpec = field(default_factory=AlignmentSpec)
    ee_pose_topic: str | None = None

    def __post_init__(self) -> None:
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ContractError(f"cameras: duplicate camera names {names}")
        topics = [c.topic for c in self.cameras] + [s.topic for s in self.state]
        if len(set(topics)) != len(topics):
            raise ContractError(f"each camera and state source needs its own topic, got {topics}")
        if not self.cameras and not self.state:
            raise ContractError("a contract needs at least one camera or state source")

    @property
    def state_dim(self) -> int:
        return sum(s.dim for s in self.state)

    @property
    def action_dim(self) -> int:
        return self.action.dim

    @property
    def camera_names(self) -> list[str]:
        return [c.name for c in self.cameras]

    @property
    def state_labels(self) -> list[str]:
        return [label for s in self.state for label in s.labels]

    def input_topics(self) -> list[tuple[str, str]]:
        """(topic, ROS type) of every subscription the contract needs, goal last."""
        out = [(c.topic, IMAGE_TYPE) for c in self.cameras]
        out += [(s.topic, STATE_TYPES[s.type]) for s in self.state]
        out.append((self.goal.topic, STRING_TYPE))
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Contract:
        if not isinstance(d, Mapping):
            raise ContractError(f"contract: expected a mapping, got {type(d).__name__}")
        known = {"cameras", "state", "goal", "action", "control_period", "alignment",
                 "ee_pose_topic"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ContractError(f"contract: unknown keys {unknown}; known keys {sorted(known)}")
        cams = d.get("cameras") or []
        states = d.get("state") or []
        if not isinstance(cams, Sequence) or not isinstance(states, Sequence):
            raise ContractError("contract: 'cameras' and 'state' must be lists")
        goal = d.get("goal") or {}
        ee = d.get("ee_pose_topic")
        return cls(
            cameras=tuple(CameraSpec.from_dict(c, f"cameras[{i}]") for i, c in enumerate(cams)),
            state=tuple(StateSpec.from_dict(s, f"state[{i}]") for i, s in enumerate(states)),
            action=ActionSpec.from_dict(_need(d, "action", "contract")),
            goal=GoalSpec(
                topic=_topic(goal.get("topic", "/language_goal"), "goal.topic"),
                default=str(goal.get("default", "")),
            ),
            control_period=_positive(d.get("control_period", 0.05), "control_period"),
            alignment=AlignmentSpec.from_dict(d.get("alignment") or {}),
            ee_pose_topic=None if ee is None else _topic(ee, "ee_pose_topic"),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "cameras": [{"name": c.name, "topic": c.topic, "height": c.height, "width": c.width,
                         "max_age": c.max_age} for c in self.cameras],
            "state": [s.to_dict() for s in self.state],
            "goal": {"topic": self.goal.topic, "default": self.goal.default},
            "action": self.action.to_dict(),
            "control_period": self.control_period,
            "alignment": {"mode": self.alignment.mode, "max_skew": self.alignment.max_skew},
        }
        if self.ee_pose_topic is not None:
            out["ee_pose_topic"] = self.ee_pose_topic
        return out

    @classmethod
    def default_for(
        cls,
        cameras: Sequence[tuple[str, int, int]],
        state_names: Sequence[str],
        action_names: Sequence[str],
        control_period: float = 0.05,
    ) -> Contract:
        """The conventional contract for a checkpoint that stores none (DESIGN.md section 5).

        Cameras on /camera/<name>/image_raw, the state as joint positions on /joint_states, the
        action as a Float64MultiArray on /command limited to [-1, 1] (Meta-World's action box),
        holding with zero motion and the last value of a dimension named "gripper".
        """
        hold = [None if n == "gripper" else 0.0 for n in action_names]
        return cls.from_dict({
            "cameras": [{"name": n, "topic": f"/camera/{n}/image_raw", "height": h, "width": w}
                        for n, h, w in cameras],
            "state": [{"topic": "/joint_states", "type": "joint_state",
                       "names": list(state_names)}] if state_names else [],
            "action": {"names": list(action_names), "topic": "/command",
                       "type": "float64_multi_array", "kind": "cartesian_delta",
                       "low": [-1.0] * len(action_names), "high": [1.0] * len(action_names),
                       "hold": hold},
            "control_period": control_period,
        })

    @classmethod
    def from_yaml(cls, path: str | Path) -> Contract:
        try:
            data = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ContractError(f"cannot read contract {path}: {exc}") from exc
        return cls.from_dict(data)

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
